"""The paper's optimiser: RMSProp with TF1 semantics, warm-up + staircase decay, L2 on kernels.

TF1's RMSProp (which the reference TPU code uses) differs from PyTorch's in two ways that optax
exposes as options: the mean-square accumulator starts at 1 (``initial_scale=1``), and epsilon
is added inside the square root (``eps_in_sqrt=True``). Its momentum accumulates
``lr * g / sqrt(ms + eps)``, which is optax's order too (learning-rate scaling before ``trace``).
Weight decay is TF's L2 loss term ``wd * sum(w**2) / 2`` on conv and dense kernels, i.e. ``wd * w``
added to their gradients before RMSProp scaling.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mnas_jax.train.config import TrainConfig


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    """Linear warm-up to the scaled peak, then x decay_rate every decay_epochs (staircase).

    As in the reference code the decay counts from step 0 and the warm-up replaces the rate
    while it lasts. Warm-up is capped at ``max_warmup_fraction`` of the run so that short runs
    (a 5-epoch training, a proxy child) are not all warm-up.
    """
    peak = config.learning_rate
    warmup = min(config.warmup_epochs * steps_per_epoch, config.max_warmup_fraction * total_steps)
    warmup = float(warmup)
    decay_steps = max(config.decay_epochs * steps_per_epoch, 1.0)

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        decayed = peak * config.decay_rate ** jnp.floor(step / decay_steps)
        return jnp.where(step < warmup, peak * step / max(warmup, 1.0), decayed)

    return schedule


def decay_mask(params: Any) -> Any:
    """True for conv and dense kernels; False for BN scale/bias and every bias."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params
    )


class OptimizerParts(NamedTuple):
    """The optimiser cut at its learning-rate scaling: ``before`` (L2 + RMS scaling) and
    ``after`` (momentum). A layer-wise trainer applies ``-lr`` between them itself, so one
    compiled update serves any schedule."""

    before: optax.GradientTransformation
    after: optax.GradientTransformation


def optimizer_parts(config: TrainConfig) -> OptimizerParts:
    """L2 on kernels (coupled, like TF's loss term) + TF1 RMS scaling; momentum trace."""
    before = optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
        optax.scale_by_rms(decay=config.rmsprop_decay, eps=config.rmsprop_epsilon,
                           initial_scale=config.rmsprop_initial_scale, eps_in_sqrt=True),
    )
    return OptimizerParts(before, optax.trace(decay=config.rmsprop_momentum))


def make_optimizer(config: TrainConfig, steps_per_epoch: int, total_steps: int) -> optax.GradientTransformation:
    """L2 then TF1-style RMSProp with momentum (optax.rmsprop's order), on the schedule."""
    parts = optimizer_parts(config)
    schedule = learning_rate_schedule(config, steps_per_epoch, total_steps)
    return optax.chain(parts.before, optax.scale_by_learning_rate(schedule), parts.after)


def ema_decay_at(decay: float, step: jax.Array) -> jax.Array:
    """TF's ExponentialMovingAverage with num_updates: min(decay, (1 + t) / (10 + t))."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))
