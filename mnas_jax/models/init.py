"""Fast initialisation: shapes from `jax.eval_shape`, values from a seeded NumPy generator.

`model.init` of a whole network compiles hundreds of random-number ops (seconds per child on
CPU: benchmarks/reports/measured_earlier.md); this fills the same tree in
milliseconds. Conv kernels are He-normal on fan-out (as
the reference implementation), dense kernels uniform on fan-in, biases and BN shifts zero, BN
scales one, running statistics (0, 1).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _leaf(path: tuple[str, ...], shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    name = path[-1]
    if path[0] == "batch_stats":
        return np.zeros(shape, np.float32) if name == "mean" else np.ones(shape, np.float32)
    if name == "kernel" and len(shape) == 4:  # conv (kh, kw, in/groups, out)
        fan_out = shape[0] * shape[1] * shape[3]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_out)).astype(np.float32)
    if name == "kernel" and len(shape) == 2:  # dense (in, out)
        bound = 1.0 / np.sqrt(shape[0])
        return rng.uniform(-bound, bound, shape).astype(np.float32)
    if name == "scale":
        return np.ones(shape, np.float32)
    return np.zeros(shape, np.float32)  # biases, BN bias


def init_variables(model: nn.Module, input_shape: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Variables for `model` on inputs of `input_shape`, reproducible from `seed`."""
    x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
    return fill_variables(jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x), seed)


def fill_variables(shapes: Any, seed: int) -> dict[str, Any]:
    """A variables tree of the given abstract `shapes`, filled by the rules above from `seed`."""
    return jax.tree.map(jnp.asarray, fill_host_variables(shapes, seed))


def fill_host_variables(shapes: Any, seed: int) -> dict[str, Any]:
    """`fill_variables` as host (numpy) arrays: the same values, nothing placed on a device."""
    rng = np.random.default_rng(seed)
    flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
    leaves = [_leaf(tuple(getattr(p, "key", str(p)) for p in path), tuple(leaf.shape), rng) for path, leaf in flat]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shapes), leaves)
