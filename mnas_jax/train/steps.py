"""One training step and one evaluation step: pure functions, jitted by the loop."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mnas_jax.data.source import Batch
from mnas_jax.models.layers import BN_MOMENTUM
from mnas_jax.train.optim import ema_decay_at
from mnas_jax.train.state import TrainState


def _ema(decay: jax.Array, average: Any, value: Any) -> Any:
    return jax.tree.map(lambda a, v: a * decay + v * (1.0 - decay), average, value)


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
    dropout_key = jax.random.fold_in(key, state.step)
    targets = optax.smooth_labels(jax.nn.one_hot(batch.labels, num_classes), label_smoothing)
    count = jnp.maximum(jnp.sum(batch.mask), 1.0)

    def loss_fn(params: Any) -> tuple[jax.Array, tuple[jax.Array, Any]]:
        logits, updates = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            batch.images,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": dropout_key},
        )
        loss = jnp.sum(optax.softmax_cross_entropy(logits, targets) * batch.mask) / count
        return loss, (logits, updates["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = state._replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
    if ema_decay is not None:
        decay = ema_decay_at(ema_decay, state.step)
        new = new._replace(ema_params=_ema(decay, state.ema_params, params))
    correct = jnp.sum((jnp.argmax(logits, -1) == batch.labels) * batch.mask)
    metrics = {"loss": loss, "accuracy": correct / count, "grad_norm": optax.global_norm(grads)}
    return new, metrics


def eval_step(variables: dict[str, Any], batch: Batch, *, model: nn.Module) -> dict[str, jax.Array]:
    """Sums over the real rows of a batch: correct predictions, cross-entropy, row count."""
    logits = model.apply(variables, batch.images, train=False)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels)
    correct = (jnp.argmax(logits, -1) == batch.labels).astype(jnp.float32)
    return {
        "correct": jnp.sum(correct * batch.mask),
        "loss": jnp.sum(ce * batch.mask),
        "count": jnp.sum(batch.mask),
    }


def batch_stats_step(variables: dict[str, Any], batch: Batch, *, model: nn.Module) -> Any:
    """Each BN layer's batch mean and variance on one batch (train-mode forward, final weights).

    BN updates ``r <- m r + (1 - m) b``; starting from r = 0 the update returns (1 - m) b.
    """
    zeros = jax.tree.map(jnp.zeros_like, variables["batch_stats"])
    _, updates = model.apply(
        {"params": variables["params"], "batch_stats": zeros}, batch.images, train=True,
        mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)},
    )
    return jax.tree.map(lambda r: r / (1.0 - BN_MOMENTUM), updates["batch_stats"])
