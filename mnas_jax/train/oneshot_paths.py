"""The shared weights as host arrays, and a sampled child's padded stage variables cut out of them.

The supernet's weights, BN averages and optimiser moments live in host numpy arrays, one per
supernet variable (`SharedWeights`). A child's step gathers its padded stage variables (and the
matching optimiser slices) from them, runs the child's cached stage programs, and scatters the
updated real slices back in place; nothing off the path is read or written. Copying a child's
slices costs milliseconds where copying every tensor a child touches would cost tens (one op's
tensors of a wide slot hold ~1M weights), so the arrays are updated in place: a step consumes
the weights it is given (as donated JAX buffers are), `copy_weights` keeps a snapshot.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.stages import Stage, net_stages, stage_variables
from mnas_jax.models.supernet_layout import SupernetLayout
from mnas_jax.models.supernet_slices import (LeafSlice, Path, StageSlices, gather, key_path, scatter,
                                             stage_slices)
from mnas_jax.space.spec import ArchSpec
from mnas_jax.train.optim import OptimizerParts

Flat = dict[Path, np.ndarray]


class SharedWeights(NamedTuple):
    """The supernet's variables, flattened, as writable host arrays: weights, BN averages, and
    each optimiser moment (a params-shaped part of the optimiser state, by its place in it)."""

    step: int
    params: Flat
    batch_stats: Flat
    moments: dict[Path, Flat]


def moment_fills(parts: OptimizerParts) -> dict[Path, float]:
    """Where the optimiser state keeps params-shaped moments (RMSProp's, momentum's), and the
    value each starts at."""
    state = (parts.before.init({"w": jnp.zeros(2)}), parts.after.init({"w": jnp.zeros(2)}))
    fills: dict[Path, float] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        values = np.unique(np.asarray(leaf))
        if leaf.shape != (2,) or key_path(path)[:-1] in fills or len(values) != 1:
            raise ValueError("the optimiser keeps state that is not shaped like the weights; the one-shot "
                             "trainer shares only params-shaped optimiser state")
        fills[key_path(path)[:-1]] = float(values[0])
    return fills


def _split_moment(path: Path, moments: tuple[Path, ...]) -> tuple[Path, Path]:
    for m in moments:
        if path[:len(m)] == m:
            return m, path[len(m):]
    raise ValueError(f"optimiser state leaf {'/'.join(path)} is not a params-shaped moment")


def fresh_weights(variables: dict[str, Any], parts: OptimizerParts) -> SharedWeights:
    """Shared weights holding the host arrays `variables` (not copied) and a fresh optimiser state."""
    flat = {c: flax.traverse_util.flatten_dict(variables[c]) for c in ("params", "batch_stats")}
    moments = {m: {k: np.full(v.shape, fill, np.float32) for k, v in flat["params"].items()}
               for m, fill in moment_fills(parts).items()}
    return SharedWeights(0, flat["params"], flat["batch_stats"], moments)


def supernet_variables(weights: SharedWeights) -> dict[str, Any]:
    """The Supernet module's variables (trees) holding `weights`' arrays (no copy)."""
    return {"params": flax.traverse_util.unflatten_dict(weights.params),
            "batch_stats": flax.traverse_util.unflatten_dict(weights.batch_stats)}


def copy_weights(weights: SharedWeights) -> SharedWeights:
    """A snapshot that later steps do not change."""
    copy = lambda flat: {k: v.copy() for k, v in flat.items()}  # noqa: E731
    return SharedWeights(weights.step, copy(weights.params), copy(weights.batch_stats),
                         {m: copy(f) for m, f in weights.moments.items()})


@dataclasses.dataclass(frozen=True)
class ChildPlan:
    """A child's padded stages, where their variables sit in the shared ones, and where their
    optimiser state's leaves do (moment, leaf), with its tree structure."""

    spec: ArchSpec
    stages: tuple[Stage, ...]
    slices: tuple[StageSlices, ...]
    opt: tuple[tuple[jax.tree_util.PyTreeDef, tuple[tuple[Path, LeafSlice], ...]], ...]


def _opt_layout(stage: Stage, parts: OptimizerParts, moments: tuple[Path, ...]) -> tuple:
    """The optimiser state's tree structure of a stage, and each leaf's (moment, params path)."""
    state = jax.eval_shape(lambda p: (parts.before.init(p), parts.after.init(p)), stage_variables(stage)["params"])
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    return treedef, tuple(_split_moment(key_path(p), moments) for p, _ in flat)


def _moment_leaf(leaf: LeafSlice) -> LeafSlice:
    # a moment of a variable that is not shared (a gate) starts at zero, not at the gate's value
    return leaf if leaf.source is not None else dataclasses.replace(leaf, fill=0.0)


def child_plan(layout: SupernetLayout, spec: ArchSpec, impl: DepthwiseImpl, weights: SharedWeights,
               parts: OptimizerParts, opt_cache: dict | None = None) -> ChildPlan:
    """The plan of `spec` (at its own input size); `opt_cache` keeps the optimiser layouts of
    stages seen before (tracing optax's init costs a few ms a stage)."""
    stages = net_stages(spec, impl, pad=True)
    if not any(s.padding for s in stages):
        raise ValueError(f"{spec.arch_id} has no channel-padded stages; the one-shot trainer needs them")
    shapes = {"params": {k: v.shape for k, v in weights.params.items()},
              "batch_stats": {k: v.shape for k, v in weights.batch_stats.items()}}
    slices = stage_slices(layout, spec, stages, shapes)
    cache = {} if opt_cache is None else opt_cache
    opt = []
    for stage, s in zip(stages, slices):
        key = (stage.key, stage.in_shape)
        if key not in cache:
            cache[key] = _opt_layout(stage, parts, tuple(weights.moments))
        treedef, paths = cache[key]
        by_path = {leaf.path: _moment_leaf(leaf) for leaf in s.leaves["params"]}
        opt.append((treedef, tuple((m, by_path[path]) for m, path in paths)))
    return ChildPlan(spec, stages, slices, tuple(opt))


class StageVariables(NamedTuple):
    """Per stage: padded params, BN averages and optimiser state (host or device trees)."""

    params: list
    stats: list
    opt: list


def gather_child(weights: SharedWeights, plan: ChildPlan) -> StageVariables:
    """The child's padded stage variables and optimiser state, copied out of `weights`."""
    params, stats, opt = [], [], []
    for s, (treedef, leaves) in zip(plan.slices, plan.opt):
        params.append(jax.tree_util.tree_unflatten(s.treedefs["params"], gather(weights.params, s.leaves["params"])))
        stats.append(jax.tree_util.tree_unflatten(s.treedefs["batch_stats"],
                                                  gather(weights.batch_stats, s.leaves["batch_stats"])))
        opt.append(jax.tree_util.tree_unflatten(treedef, [gather(weights.moments[m], [leaf])[0] for m, leaf in leaves]))
    return StageVariables(params, stats, opt)


def scatter_child(weights: SharedWeights, plan: ChildPlan, new: StageVariables) -> None:
    """Write the child's updated real slices back into `weights` (in place; nothing else changes)."""
    for s, (_, leaves), p, st, o in zip(plan.slices, plan.opt, new.params, new.stats, new.opt):
        scatter(weights.params, s.leaves["params"], jax.tree.leaves(p))
        scatter(weights.batch_stats, s.leaves["batch_stats"], jax.tree.leaves(st))
        for (m, leaf), value in zip(leaves, jax.tree.leaves(o)):
            scatter(weights.moments[m], [leaf], [value])


class WeightsTree(NamedTuple):
    """`SharedWeights` as nested trees with string keys (what orbax checkpoints hold)."""

    step: np.ndarray
    params: dict
    batch_stats: dict
    moments: dict


def weights_tree(weights: SharedWeights) -> WeightsTree:
    """The tree of `weights` (arrays shared, not copied)."""
    nest = flax.traverse_util.unflatten_dict
    return WeightsTree(np.asarray(weights.step, np.int64), nest(weights.params), nest(weights.batch_stats),
                       {"/".join(m): nest(flat) for m, flat in weights.moments.items()})


def tree_weights(tree: WeightsTree) -> SharedWeights:
    """`SharedWeights` from a tree (e.g. restored): writable host copies."""
    flat = lambda t: {k: np.array(v, np.float32) for k, v in flax.traverse_util.flatten_dict(t).items()}  # noqa: E731
    return SharedWeights(int(tree.step), flat(tree.params), flat(tree.batch_stats),
                         {tuple(m.split("/")): flat(t) for m, t in tree.moments.items()})
