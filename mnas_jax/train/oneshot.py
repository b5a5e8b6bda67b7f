"""Scoring a child by its path through the supernet: one program serves every child (the path
is an argument, never a new program).

A child's accuracy is its path's accuracy on validation images after its BN statistics are
recomputed on a batch of training images (the shared averages belong to no child), as TuNAS
does. This masked route computes every op at full width; `oneshot_eval` scores a path with the
child's own padded stage programs instead, and `oneshot_train` trains the shared weights path
by path with them (a one-program supernet training step compiled for over 10 minutes here).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.init import fill_variables
from mnas_jax.models.supernet import Supernet
from mnas_jax.models.supernet_layout import SupernetLayout
from mnas_jax.train.optim import OptimizerParts
from mnas_jax.train.recipe import batch_statistics, eval_sums

Path = dict[str, Any]


class SupernetState(NamedTuple):
    """The shared weights, their BN averages and optimiser state, and the step count."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt: tuple


def abstract_variables(model: Supernet, path: Path, batch: int = 1) -> Any:
    """The shapes of the supernet's variables (no computation)."""
    lay = model.layout
    x = jax.ShapeDtypeStruct((batch, lay.input_size, lay.input_size, lay.input_channels), jnp.float32)
    return jax.eval_shape(lambda v, p: model.init({"params": jax.random.key(0)}, v, p, False), x, path)


def init_state(model: Supernet, path: Path, parts: OptimizerParts, seed: int) -> SupernetState:
    """Shared weights filled from `seed` by the same rules as a child's (`models.init`)."""
    variables = fill_variables(abstract_variables(model, path), seed)
    params = variables["params"]
    opt = (parts.before.init(params), parts.after.init(params))
    return SupernetState(jnp.zeros((), jnp.int32), params, variables["batch_stats"], opt)


def path_batch_stats(params: Any, batch_stats: Any, images: jax.Array, path: Path, *,
                     model: Supernet) -> Any:
    """The path's BN statistics on `images` (a train-mode forward from zero averages)."""
    zeros = jax.tree.map(jnp.zeros_like, batch_stats)
    _, upd = model.apply({"params": params, "batch_stats": zeros}, images, path, True, mutable=["batch_stats"],
                         rngs={"dropout": jax.random.key(0)})
    return batch_statistics(upd["batch_stats"])


def evaluate_path(params: Any, batch_stats: Any, calibration: jax.Array, images: jax.Array, labels: jax.Array,
                  mask: jax.Array, path: Path, *, model: Supernet) -> dict[str, jax.Array]:
    """Evaluation sums (correct, loss, count) of the child on `path`, its BN statistics
    recomputed on `calibration` images first."""
    stats = path_batch_stats(params, batch_stats, calibration, path, model=model)
    logits = model.apply({"params": params, "batch_stats": stats}, images, path, False)
    return eval_sums(logits, labels, mask)


def supernet(layout: SupernetLayout, impl: DepthwiseImpl) -> Supernet:
    """The supernet module of `layout`."""
    return Supernet(layout, impl)
