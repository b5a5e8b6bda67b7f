"""Where a child's channel-padded stage variables sit in the supernet's shared tensors.

The one-shot trainer runs a sampled child with the channel-padded stage programs
(`stages.net_stages(pad=True)`, shared by every child with the same stage keys). The real part
of each padded leaf (its leading slice: `padding`'s convention) is one slice of one supernet
variable (a channel prefix, a 3x3 kernel the centre of the 5x5, expansion 3 the first half of
the expanded channels: `supernet_layout`'s sharing); the rest of the leaf is zeros, or a
gate's value. A `StageSlices` says that per leaf. It is computed from the child's layer specs
by the supernet's shape rules (`_real_shape`), not by tracing the child's modules (~40 ms a
layer, more than a training step), so gathering a child's variables and scattering them back
are numpy slice copies. tests/test_oneshot_train.py checks the rules against `child_variables`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from mnas_jax.models.stages import Stage, stage_variables
from mnas_jax.models.supernet_child import cut_index, source_key
from mnas_jax.models.supernet_layout import SupernetLayout, body_layers, layer_slots
from mnas_jax.space.spec import ArchSpec, LayerSpec

Path = tuple[str, ...]
Store = Mapping[Path, np.ndarray]  # one collection of the supernet's variables, flattened
COLLECTIONS = ("params", "batch_stats")

# the SE of an op acts on the output of this module of the op
_SE_INPUT = {"conv_se": "conv", "sep_se": "sep_dw", "mb_se": "mb_dw"}


@dataclasses.dataclass(frozen=True)
class LeafSlice:
    """One leaf of a padded stage: its shape, and where its real part comes from."""

    path: Path  # in the padded stage's collection
    shape: tuple[int, ...]  # the padded leaf
    source: Path | None  # the supernet variable holding its real part; None: not shared
    index: tuple[slice, ...] = ()  # the real part's place in the source
    real: tuple[int, ...] = ()  # the real part's shape: the leaf's leading slice
    fill: float = 0.0  # the value of a leaf that is not shared (a gate's), or of the padding

    @property
    def lead(self) -> tuple[slice, ...]:
        """The real part's place in the padded leaf."""
        return tuple(slice(0, n) for n in self.real)


@dataclasses.dataclass(frozen=True)
class StageSlices:
    """A padded stage's leaves per collection, in the flattening order of its variables."""

    leaves: dict[str, tuple[LeafSlice, ...]]
    treedefs: dict[str, jax.tree_util.PyTreeDef]


def key_path(path: tuple) -> Path:
    """A JAX key path (dict keys, attributes, sequence indices) as a tuple of strings."""
    return tuple(str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path)


def _layer_dims(layer: LayerSpec) -> dict[str, tuple[int, int, int]]:
    """(input channels, output channels, kernel) of each conv module of a supernet slot on
    `layer`'s path (input 1: depthwise)."""
    i, o, k = layer.in_channels, layer.out_channels, layer.kernel
    m = i * layer.expansion
    return {"conv": (i, o, k), "sep_dw": (1, i, k), "sep_pw": (i, o, 1), "mb_expand": (i, m, 1),
            "mb_dw": (1, m, k), "mb_project": (m, o, 1), "proj": (i, o, 1)}


def _real_shape(source: Path, full: tuple[int, ...], layer: LayerSpec | None, last: int,
                head: bool) -> tuple[int, ...] | None:
    """The shape of the child's variable cut from the supernet variable `source` of shape
    `full` (None: the child has no such variable); `last`: the channels entering the tail."""
    top, leaf = source[0], source[-1]
    if top == "stem" or (top == "classifier" and head) or (top in ("head", "classifier") and leaf != "kernel"):
        return full
    if top == "head":
        return (*full[:2], last, full[3])
    if top == "classifier":
        return (last, full[1])
    assert layer is not None, source
    module, rest = source[2], source[3:]
    dims = _layer_dims(layer)
    if module in _SE_INPUT:
        if not layer.se_channels:
            return None
        c, se = dims[_SE_INPUT[module]][1], layer.se_channels
        return {("reduce", "kernel"): (c, se), ("reduce", "bias"): (se,), ("expand", "kernel"): (se, c),
                ("expand", "bias"): (c,)}[rest]
    cin, f, k = dims[module]
    return (k, k, cin, f) if rest == ("kernel",) else (f,)


def stage_slices(layout: SupernetLayout, spec: ArchSpec, stages: Sequence[Stage],
                 shapes: Mapping[str, Store]) -> tuple[StageSlices, ...]:
    """The leaves of each of `spec`'s padded `stages` (`net_stages(spec, impl, pad=True)`);
    `shapes`: the supernet's variable shapes per collection, flattened."""
    layers = body_layers(spec)
    layer_map = {f"layer{i}": (f"b{slot.block}", slot.name, layer.op)
                 for i, (slot, layer) in enumerate(zip(layer_slots(layout, spec), layers))}
    last = stages[-1].padding.real_in_shape[2] if stages[-1].padding else stages[-1].in_shape[2]
    out = []
    for i, stage in enumerate(stages):
        layer = layers[i - 1] if 0 < i < len(stages) - 1 else None
        gates = dict(stage.padding.gates) if stage.padding else {}
        abstract = stage_variables(stage)
        leaves, treedefs = {}, {}
        for collection in COLLECTIONS:
            flat, treedefs[collection] = jax.tree_util.tree_flatten_with_path(abstract.get(collection, {}))
            row = []
            for path, leaf in flat:
                path, shape = key_path(path), tuple(leaf.shape)
                if collection == "params" and path in gates:
                    row.append(LeafSlice(path, shape, None, fill=gates[path]))
                    continue
                child = (stage.names[0], *path) if not stage.tail else path
                source = source_key(child, layer_map)
                if source not in shapes[collection]:
                    raise KeyError(f"supernet has no {collection} {'/'.join(source)} for stage {stage.key}")
                full = shapes[collection][source]
                real = _real_shape(source, full, layer, last, bool(spec.head_channels))
                if real is None:  # a variable the child lacks (SE behind a closed gate)
                    row.append(LeafSlice(path, shape, None))
                else:
                    row.append(LeafSlice(path, shape, source, cut_index(full, real), real))
            leaves[collection] = tuple(row)
        out.append(StageSlices(leaves, treedefs))
    return tuple(out)


def gather(store: Store, leaves: Sequence[LeafSlice]) -> list[np.ndarray]:
    """The padded leaves, their real parts copied out of `store` (fresh arrays)."""
    out = []
    for leaf in leaves:
        if leaf.source is not None and leaf.real == leaf.shape:
            out.append(np.array(store[leaf.source][leaf.index], np.float32))
            continue
        a = np.full(leaf.shape, leaf.fill, np.float32)
        if leaf.source is not None:
            a[leaf.lead] = store[leaf.source][leaf.index]
        out.append(a)
    return out


def scatter(store: Mapping[Path, np.ndarray], leaves: Sequence[LeafSlice], values: Sequence[np.ndarray]) -> None:
    """Write the real part of each padded leaf back into its slice of `store` (in place)."""
    for leaf, value in zip(leaves, values):
        if leaf.source is not None:
            store[leaf.source][leaf.index] = np.asarray(value)[leaf.lead]

