"""The whole-network training step, evaluation step and BN-statistics step: pure functions,
compiled by `compile`. Their arithmetic is `recipe`'s, shared with the stage-by-stage trainer."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mnas_jax.data.source import Batch
from mnas_jax.train.optim import ema_decay_at
from mnas_jax.train.recipe import (batch_statistics, correct_count, ema_update, eval_sums, example_count,
                                   masked_loss, smoothed_targets, step_dropout_key)
from mnas_jax.train.state import TrainState


def train_step(
    state: TrainState,
    batch: Batch,
    key: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    num_classes: int,
    label_smoothing: float,
    ema_decay: float | None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Forward + backward + RMSProp update + EMA; metrics stay on device."""
    dropout_key = step_dropout_key(key, state.step)
    targets = smoothed_targets(batch.labels, num_classes, label_smoothing)
    count = example_count(batch.mask)

    def loss_fn(params: Any) -> tuple[jax.Array, tuple[jax.Array, Any]]:
        logits, updates = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            batch.images,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": dropout_key},
        )
        return masked_loss(logits, targets, batch.mask, count), (logits, updates["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = state._replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
    if ema_decay is not None:
        decay = ema_decay_at(ema_decay, state.step)
        new = new._replace(ema_params=ema_update(state.ema_params, params, decay))
    correct = correct_count(logits, batch.labels, batch.mask)
    metrics = {"loss": loss, "accuracy": correct / count, "grad_norm": optax.global_norm(grads)}
    return new, metrics


def eval_step(variables: dict[str, Any], batch: Batch, *, model: nn.Module) -> dict[str, jax.Array]:
    """Sums over the real rows of a batch: correct predictions, cross-entropy, row count."""
    return eval_sums(model.apply(variables, batch.images, train=False), batch.labels, batch.mask)


def batch_stats_step(variables: dict[str, Any], batch: Batch, *, model: nn.Module) -> Any:
    """Each BN layer's batch mean and variance on one batch (train-mode forward, final weights)."""
    zeros = jax.tree.map(jnp.zeros_like, variables["batch_stats"])
    _, updates = model.apply(
        {"params": variables["params"], "batch_stats": zeros}, batch.images, train=True,
        mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)},
    )
    return batch_statistics(updates["batch_stats"])
