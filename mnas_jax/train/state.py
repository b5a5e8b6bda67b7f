"""Training state as a NamedTuple pytree, and its creation from a model."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mnas_jax.models.layers import BN_MOMENTUM


class TrainState(NamedTuple):
    """Model variables, optimiser state and (optionally) the EMA of the weights."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    ema_params: Any  # None when no EMA is kept
    initial_batch_stats: Any  # BN moving averages at step 0, to remove their start-up bias

    def raw_params(self) -> Any:
        """The trained weights themselves (not their EMA)."""
        return self.params

    def eval_variables(self) -> dict[str, Any]:
        """Weights to evaluate (the EMA when kept, as the reference code does) with BN moving
        averages corrected for their start-up bias.

        BN keeps ``r_t = m r_(t-1) + (1 - m) b_t`` from ``r_0`` (mean 0, variance 1) with
        m = 0.99, so after t steps a share m**t of r_t is still r_0: 74% after 30 steps, 5% after
        300. ``(r_t - m**t r_0) / (1 - m**t)`` removes that share exactly (Adam's correction of
        its moments); after a few thousand steps it equals ``r_t``. It does not remove the
        statistics of earlier, different weights: very short runs also need BN recalibration
        (``TrainConfig.bn_recalibration_examples``), which replaces these statistics.
        """
        params = self.params if self.ema_params is None else self.ema_params
        return {"params": params, "batch_stats": debiased_batch_stats(self.batch_stats, self.initial_batch_stats, self.step)}


def debiased_batch_stats(stats: Any, initial: Any, step: jax.Array, momentum: float = BN_MOMENTUM) -> Any:
    """Remove the weight of the initial value from BN's exponential moving averages."""
    kept = jnp.asarray(momentum, jnp.float32) ** jnp.asarray(step, jnp.float32)
    scale = 1.0 / jnp.maximum(1.0 - kept, 1e-12)
    return jax.tree.map(lambda r, r0: jnp.where(step > 0, (r - kept * r0) * scale, r), stats, initial)


def create_train_state(variables: dict[str, Any], tx: optax.GradientTransformation, ema: bool) -> TrainState:
    """A fresh state at step 0 (call inside jit or on replicated arrays)."""
    params, batch_stats = variables["params"], variables["batch_stats"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=batch_stats,
        opt_state=tx.init(params),
        ema_params=jax.tree.map(jnp.copy, params) if ema else None,
        initial_batch_stats=jax.tree.map(jnp.copy, batch_stats),
    )
