"""A network cut into stages: stem, one stage per layer, and the tail (head conv, pool, classifier).

Each stage is a standalone module whose variables are exactly one subtree of ``Net``'s (the tail
takes ``head`` and ``classifier``), so a layer-wise trainer can compile one executable per
distinct stage and reuse it across every network that contains that stage, while the variables it
trains stay interchangeable with ``Net``'s (export, evaluation, checkpoints).
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.layers import Act, ConvBN
from mnas_jax.models.net import ACTIVATIONS, build_layer
from mnas_jax.models.padding import Path, can_pad, pad_tree, padded_layer, padded_width, unpad_tree
from mnas_jax.space.spec import ArchSpec, LayerSpec

class Tail(nn.Module):
    """Net's ending: optional 1x1 head conv + BN + act, global mean, dropout, classifier."""

    head_channels: int
    num_classes: int
    dropout: float
    act: Act
    impl: DepthwiseImpl = DepthwiseImpl.XLA

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.head_channels:
            x = ConvBN(self.head_channels, 1, act=self.act, impl=self.impl, name="head")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="classifier")(x)


@dataclasses.dataclass(frozen=True)
class StagePadding:
    """How a channel-padded stage relates to its stage in Net (see `mnas_jax.models.padding`)."""

    real: nn.Module  # the stage's module in Net: its variables are the ones Net holds
    real_in_shape: tuple[int, int, int]
    gates: tuple[tuple[Path, float], ...] = ()  # gate parameters the real stage lacks, and their values


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: the names of its subtrees in Net's variables, its module and its identity.

    ``key`` says everything the stage's computation depends on (not its weights): two stages
    with equal keys and input shapes compile to the same executable.
    """

    names: tuple[str, ...]
    module: nn.Module
    key: str
    in_shape: tuple[int, int, int]  # (H, W, C) of one example
    tail: bool = False  # the last stage: its variables are several top-level subtrees of Net
    padding: StagePadding | None = None  # None: the module is Net's own


def _stem_stage(spec: ArchSpec, stem: LayerSpec, impl: DepthwiseImpl) -> Stage:
    act = ACTIVATIONS[spec.activation]
    module = ConvBN(stem.out_channels, stem.kernel, stem.stride, act=act, impl=impl)
    key = f"stem:{stem.key}:{impl.value}"
    return Stage(("stem",), module, key, (stem.in_size, stem.in_size, stem.in_channels))


def _tail_stage(spec: ArchSpec, in_size: int, in_channels: int, impl: DepthwiseImpl) -> Stage:
    act = ACTIVATIONS[spec.activation]
    module = Tail(spec.head_channels, spec.num_classes, spec.dropout, act, impl)
    names = ("head", "classifier") if spec.head_channels else ("classifier",)
    key = (f"tail:h{spec.head_channels}_c{spec.num_classes}_d{spec.dropout!r}_"
           f"{spec.activation.value}_i{in_channels}_hw{in_size}:{impl.value}")
    return Stage(names, module, key, (in_size, in_size, in_channels), tail=True)


def layer_stage_key(layer: LayerSpec, impl: DepthwiseImpl, pad: bool = False) -> str:
    """The key of a searchable layer's stage (`Stage.key`), channel-padded or Net's own."""
    if pad:
        return f"padlayer:{padded_layer(layer, impl).key}:{impl.value}"
    return f"layer:{layer.key}:{impl.value}"


def _padded(real: Stage, module: nn.Module, key: str, channels: int, gates: tuple = ()) -> Stage:
    h, w, c = real.in_shape
    return dataclasses.replace(real, module=module, key=key, in_shape=(h, w, channels),
                               padding=StagePadding(real.module, real.in_shape, gates))


def _padded_stages(spec: ArchSpec, stages: tuple[Stage, ...], impl: DepthwiseImpl) -> tuple[Stage, ...]:
    layers = spec.layers()
    stem, tail = stages[0], stages[-1]
    width = padded_width(layers[0].out_channels)
    if width != layers[0].out_channels:
        wide = _stem_stage(spec, dataclasses.replace(layers[0], out_channels=width), impl)  # Net's own at that width
        stem = _padded(stem, wide.module, wide.key, stem.in_shape[2])
    out = [stem]
    for stage, layer in zip(stages[1:-1], layers[1:]):
        p = padded_layer(layer, impl)
        out.append(_padded(stage, p.module, layer_stage_key(layer, impl, True), padded_width(layer.in_channels),
                           p.gates))
    size, channels = tail.in_shape[0], tail.in_shape[2]
    if padded_width(channels) != channels:
        t = _tail_stage(spec, size, padded_width(channels), impl)
        tail = _padded(tail, t.module, t.key, t.in_shape[2])
    return (*out, tail)


def net_stages(spec: ArchSpec, impl: DepthwiseImpl = DepthwiseImpl.XLA, pad: bool = False) -> tuple[Stage, ...]:
    """The stages of ``Net(spec, impl)`` in order; the last one is the tail. ``pad``: channel-padded
    stages (`mnas_jax.models.padding`) where every layer has a padded form."""
    stages = _stages(spec, impl)
    return _padded_stages(spec, stages, impl) if pad and can_pad(spec) else stages


def _stages(spec: ArchSpec, impl: DepthwiseImpl) -> tuple[Stage, ...]:
    layers = spec.layers()
    n_tail = 3 if spec.head_channels else 2
    stem, body = layers[0], layers[1:-n_tail]
    stages = [_stem_stage(spec, stem, impl)]
    for i, layer in enumerate(body):
        stages.append(Stage((f"layer{i}",), build_layer(layer, impl, None), layer_stage_key(layer, impl),
                            (layer.in_size, layer.in_size, layer.in_channels)))
    first_tail = layers[-n_tail]
    stages.append(_tail_stage(spec, first_tail.in_size, first_tail.in_channels, impl))
    return tuple(stages)


def stage_tree(tree: dict, stage: Stage) -> dict:
    """The part of a Net variable collection (params or batch_stats) that belongs to a stage."""
    if stage.tail:
        return {n: tree[n] for n in stage.names if n in tree}
    return tree.get(stage.names[0], {})


def merge_stage_trees(parts: list[tuple[Stage, dict]]) -> dict:
    """Inverse of ``stage_tree`` over all stages: one Net-shaped collection."""
    out: dict = {}
    for stage, tree in parts:
        if stage.tail:
            out.update(tree)
        elif tree:
            out[stage.names[0]] = tree
    return out


@dataclasses.dataclass(frozen=True)
class StagePadder:
    """Pads a stage's Net variables (one collection at a time) to its padded module's, and back."""

    real: dict  # abstract variables of the stage in Net
    padded: dict  # abstract variables of the padded module
    gates: dict[Path, float]

    def pad(self, collection: str, tree: dict) -> dict:
        """Net's ``collection`` subtree of this stage, zero-padded, gates set."""
        gates = self.gates if collection == "params" else {}
        return pad_tree(tree, self.padded.get(collection, {}), gates)

    def unpad(self, collection: str, tree: dict) -> dict:
        """The padded stage's ``collection`` subtree cut back to Net's shapes."""
        return unpad_tree(tree, self.real.get(collection, {}))


@functools.lru_cache(maxsize=4096)
def _abstract(module: nn.Module, in_shape: tuple[int, int, int]) -> dict:
    """A module's abstract variables (~50 ms to trace; modules compare by value, so children
    sharing a padded stage share this)."""
    x = jax.ShapeDtypeStruct((1, *in_shape), jnp.float32)
    return jax.eval_shape(lambda v: module.init({"params": jax.random.key(0), "dropout": jax.random.key(0)}, v, True), x)


def stage_variables(stage: Stage) -> dict:
    """The abstract variables of a stage's module (cached per module and input shape)."""
    return _abstract(stage.module, stage.in_shape)


def stage_padder(stage: Stage, variables: dict) -> StagePadder | None:
    """The padder of a padded stage of a Net with ``variables`` (None for a stage that is Net's own)."""
    if stage.padding is None:
        return None
    real = {c: jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), stage_tree(tree, stage))
            for c, tree in variables.items()}
    return StagePadder(real, _abstract(stage.module, stage.in_shape), dict(stage.padding.gates))
