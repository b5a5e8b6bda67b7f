"""Training state as a NamedTuple pytree, and its creation from a model."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

# Initialisation runs once per child, so its compile time matters more than its run time:
# XLA's lowest backend optimisation level roughly halves the compile of a full net's init.
_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


class TrainState(NamedTuple):
    """Model variables, optimiser state and (optionally) the EMA of the variables."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    ema_params: Any  # None when no EMA is kept
    ema_batch_stats: Any

    def eval_variables(self) -> dict[str, Any]:
        """The variables to evaluate with: the EMA when kept (as the reference code does)."""
        if self.ema_params is not None:
            return {"params": self.ema_params, "batch_stats": self.ema_batch_stats}
        return {"params": self.params, "batch_stats": self.batch_stats}


def init_variables(
    model: nn.Module, key: jax.Array, image_shape: tuple[int, int, int], sharding: jax.sharding.Sharding | None = None
) -> tuple[dict[str, Any], float]:
    """Initialise 'params' and 'batch_stats' (batch of 1); returns them and the compile seconds."""
    x = jnp.zeros((1, *image_shape), jnp.float32)

    def init(k: jax.Array) -> dict[str, Any]:
        return dict(model.init({"params": k, "dropout": k}, x, train=False))

    start = time.perf_counter()
    compiled = jax.jit(init, out_shardings=sharding).lower(key).compile(_INIT_COMPILER_OPTIONS)
    seconds = time.perf_counter() - start
    variables = compiled(key)
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}, seconds


def create_train_state(variables: dict[str, Any], tx: optax.GradientTransformation, ema: bool) -> TrainState:
    """A fresh state at step 0 (call inside jit or on replicated arrays)."""
    params, batch_stats = variables["params"], variables["batch_stats"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=batch_stats,
        opt_state=tx.init(params),
        ema_params=jax.tree.map(jnp.copy, params) if ema else None,
        ema_batch_stats=jax.tree.map(jnp.copy, batch_stats) if ema else None,
    )
