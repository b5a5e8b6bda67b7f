"""Random, non-zero variables for latency-only exports, without a slow `model.init`.

Why not `mnas_jax.models.init_variables`: it sets biases, BN shifts and running means to zero and
BN scales/variances to one, which is right for training but wrong for timing. The TFLite
converter folds constants, so a zero bias disappears from the graph and the timed model is not
the model that runs after training. Here every leaf of `params` and `batch_stats` is random and
non-zero (BN variances positive); conv kernels are He-normal on fan-in and every BN's gain
scale/sqrt(var+eps) is below one, so activations of deep residual ReLU nets stay O(1) (no
overflow, no denormals) instead of growing by orders of magnitude as with unit gains. Shapes
come from `jax.eval_shape(model.init)`, values from a seeded NumPy generator, so it is fast
even for a 224x224 net (numbers: benchmarks/reports/measured_earlier.md).

With these data-free statistics the input-dependent part of a deep net's output is small (the
BN shifts dominate). `calibrate_batch_stats` sets the running statistics from one forward pass,
as training would; the numerical tests of the converter use it.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.models.layers import BN_EPSILON, BN_MOMENTUM

#: Range of each BN channel's gain scale / sqrt(var + eps). Below one so that residual
#: stacks of ReLU layers neither explode nor, thanks to the random shifts, vanish.
GAIN_RANGE = (0.5, 1.0)


def _nonzero(values: np.ndarray, floor: float) -> np.ndarray:
    """Push values away from zero so no constant is ever folded away."""
    return np.where(np.abs(values) < floor, np.copysign(floor, values), values)


def random_leaf(collection: str, name: str, shape: tuple[int, ...],
                rng: np.random.Generator) -> np.ndarray:
    """One variable: `collection` is 'params' or 'batch_stats', `name` the Flax leaf name."""
    if collection == "batch_stats":
        if name == "mean":
            return _nonzero(rng.normal(0.0, 0.1, shape), 1e-3).astype(np.float32)
        if name == "var":
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        raise ValueError(f"unknown batch_stats leaf {name!r}; expected 'mean' or 'var'")
    if name == "scale":  # BN scale
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if name == "bias":  # BN shift or dense bias
        return _nonzero(rng.normal(0.0, 0.1, shape), 1e-3).astype(np.float32)
    if name == "kernel" and len(shape) == 4:  # conv (kh, kw, in/groups, out)
        fan_in = shape[0] * shape[1] * shape[2]
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        return _nonzero(w, 1e-4).astype(np.float32)
    if name == "kernel" and len(shape) == 2:  # dense (in, out)
        bound = np.sqrt(3.0 / shape[0])
        return _nonzero(rng.uniform(-bound, bound, shape), 1e-4).astype(np.float32)
    raise ValueError(f"no random rule for {collection} leaf {name!r} of shape {shape}; "
                     "add one to latency.weights.random_leaf")


def random_variables(model: nn.Module, input_shape: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Variables for `model` on inputs of `input_shape`: every leaf random and non-zero."""
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    rng = np.random.default_rng(seed)
    flat, tree = jax.tree_util.tree_flatten_with_path(shapes)
    paths = [tuple(str(getattr(p, "key", p)) for p in path) for path, _ in flat]
    values = {path: random_leaf(path[0], path[-1], tuple(leaf.shape), rng)
              for path, (_, leaf) in zip(paths, flat)}
    for path in paths:  # BN gain scale / sqrt(var + eps) drawn in GAIN_RANGE
        var = ("batch_stats", *path[1:-1], "var")
        if path[0] == "params" and path[-1] == "scale" and var in values:
            gain = rng.uniform(*GAIN_RANGE, values[path].shape)
            values[path] = (gain * np.sqrt(values[var] + BN_EPSILON)).astype(np.float32)
    return jax.tree_util.tree_unflatten(tree, [jnp.asarray(values[p]) for p in paths])


def check_variables(model: nn.Module, input_shape: tuple[int, ...], variables: Any) -> None:
    """ValueError unless `variables` has the tree and leaf shapes `model` expects."""
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    expected = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    expected = {k: v for k, v in expected.items() if k in ("params", "batch_stats")}
    given = {k: v for k, v in dict(variables).items() if k in ("params", "batch_stats")}
    if jax.tree.structure(expected) != jax.tree.structure(given):
        raise ValueError("variables do not match the architecture (different layer tree); pass "
                         "the 'params' and 'batch_stats' trained for this exact spec")
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(expected)[0],
                            jax.tree.leaves(given)):
        if tuple(a.shape) != tuple(np.shape(b)):
            where = "/".join(str(getattr(p, "key", p)) for p in path)
            raise ValueError(f"variable {where} has shape {tuple(np.shape(b))}, the architecture "
                             f"needs {tuple(a.shape)}; pass variables trained for this spec")


def batch_stats_from(model: nn.Module, variables: dict[str, Any], x: jax.Array) -> Any:
    """The batch statistics every BN sees on `x` (pure; jit it, or use calibrate_batch_stats)."""
    zeroed = {**variables, "batch_stats": jax.tree.map(jnp.zeros_like, variables["batch_stats"])}
    _, updates = model.apply(zeroed, x, train=True, mutable=["batch_stats"],
                             rngs={"dropout": jax.random.key(0)})
    # Flax updates running = momentum * running + (1 - momentum) * batch; running started at 0.
    return jax.tree.map(lambda s: s / (1.0 - BN_MOMENTUM), updates["batch_stats"])


def calibrate_batch_stats(model: nn.Module, variables: dict[str, Any],
                          input_shape: tuple[int, ...], seed: int,
                          batch: int = 4) -> dict[str, Any]:
    """`variables` with every BN's running statistics set to its batch statistics on random
    normal inputs, as if trained: each BN then normalises, so a deep random ReLU net keeps an
    O(1), input-dependent signal (without it the signal fades to ~1e-3 of the output). Costs one
    compiled forward pass (1-3 s for a 224x224 net here), so latency-only exports skip it;
    numerical checks of the converter use it.
    """
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, *input_shape[1:])).astype(np.float32))
    stats = jax.jit(lambda v, x: batch_stats_from(model, v, x))(variables, x)
    return {**variables, "batch_stats": stats}
