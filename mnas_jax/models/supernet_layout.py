"""The static shape of a weight-sharing supernet over the MnasNet space, and a child's path in it.

Every child of the space is a path through ONE network whose weights are shared per (block,
layer, op): a layer slot holds, at the widest shape any child can give it, a regular conv, a
separable conv and an inverted bottleneck (expansion 3 and 6 share its weights: expansion 3
uses the first half of the expanded channels), each with its squeeze-and-excite, and a pooling
shortcut's projection. Narrower choices use a prefix of the channels (TuNAS's filter sharing)
and a 3x3 kernel the centre of the 5x5 one (Once-for-All's kernel sharing); layers a child does
not have are skipped.

A child's path is a tree of small arrays (masks and one-hot flags, see `encode_path`) whose
shapes do not depend on the child, so one compiled program trains and evaluates every child:
no convolution gradient ever sits in a conditional (../shared/notes/switch-spike.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mnas_jax.space.mnasnet import MnasNetSpace
from mnas_jax.space.spec import Activation, ArchSpec, LayerSpec, Op, Skip

KERNEL = 5  # the widest kernel of the space; 3x3 is its centre
OPS = (Op.CONV, Op.SEPCONV, Op.MBCONV)  # one set of weights each; MBCONV's e3 and e6 share
MAX_EXPANSION = 6
SE_RATIO = 0.25


@dataclasses.dataclass(frozen=True)
class LayerSlot:
    """One searchable layer position: the widest shapes any child gives it."""

    block: int
    index: int  # position in its block (0: the layer with the stride and the channel change)
    stride: int
    in_width: int  # channels of the (padded) tensor entering it
    out_width: int  # the block's widest filter choice
    mid_width: int  # the widest expansion: MAX_EXPANSION x the widest real input
    se_width: int  # the widest SE bottleneck: int(SE_RATIO x the widest real input)
    in_size: int

    @property
    def name(self) -> str:
        """Its name in the supernet's variables."""
        return f"b{self.block}l{self.index}"


@dataclasses.dataclass(frozen=True)
class BlockSlot:
    """A block: its layer slots and the channels of the tensor it hands on (a block that may
    have no layers hands on whatever entered it, so its output is padded to the wider one)."""

    layers: tuple[LayerSlot, ...]
    in_width: int
    carry_width: int
    skippable: bool  # a child may give it no layers


@dataclasses.dataclass(frozen=True)
class SupernetLayout:
    """The static structure of the supernet of one space in one setting."""

    space: str
    setting: str
    input_size: int
    input_channels: int
    num_classes: int
    stem_channels: int
    stem_stride: int
    head_channels: int
    dropout: float
    activation: Activation
    blocks: tuple[BlockSlot, ...]

    @property
    def slots(self) -> tuple[LayerSlot, ...]:
        """Every layer slot, in network order."""
        return tuple(s for b in self.blocks for s in b.layers)


def supernet_layout(space: Any) -> SupernetLayout:
    """The supernet of `space`; ValueError in one line for a space it cannot share weights for."""
    if not isinstance(space, MnasNetSpace):
        name = getattr(space, "name", type(space).__name__)
        raise ValueError(f"space {name!r} has no weight-sharing supernet: only the 'mnasnet' "
                         "space has one; evaluate its children by stand-alone training")
    probe = space.decode([0] * len(space.choices))
    ins, sizes = space.block_input_channels(), space.block_input_sizes()
    blocks, in_width = [], space.stem_channels
    for b, stride in enumerate(space.block_strides):
        widest, repeats = max(space.block_filters(b)), space.block_repeats(b)
        if min(repeats) == 0 and stride != 1:
            raise ValueError(f"block {b} may have no layers but has stride {stride}: the supernet "
                             "cannot skip a strided block")
        real_in = max(ins[b])
        layers, size = [], sizes[b]
        for r in range(max(repeats)):
            cin = real_in if r == 0 else widest
            slot_in = in_width if r == 0 else widest
            layers.append(LayerSlot(b, r, stride if r == 0 else 1, slot_in, widest,
                                    MAX_EXPANSION * cin, max(1, int(cin * SE_RATIO)), size))
            size = -(-size // (stride if r == 0 else 1))
        carry = max(widest, in_width) if min(repeats) == 0 else widest
        blocks.append(BlockSlot(tuple(layers), in_width, carry, min(repeats) == 0))
        in_width = carry
    return SupernetLayout(space.name, space.setting, probe.input_size, probe.input_channels,
                          probe.num_classes, probe.stem_channels, probe.stem_stride,
                          probe.head_channels, probe.dropout, probe.activation, tuple(blocks))


def _prefix(width: int, n: int) -> np.ndarray:
    mask = np.zeros(width, np.float32)
    mask[:n] = 1.0
    return mask


def _kernel_mask(kernel: int) -> np.ndarray:
    mask = np.zeros((KERNEL, KERNEL), np.float32)
    lo = (KERNEL - kernel) // 2
    mask[lo:lo + kernel, lo:lo + kernel] = 1.0
    return mask


def _layer_path(slot: LayerSlot, layer: LayerSpec | None) -> dict[str, np.ndarray]:
    """The arrays that select `layer` in `slot` (None: the slot is skipped)."""
    if layer is None:
        off = {"op": np.zeros(len(OPS), np.float32), "kernel": _kernel_mask(3),
               "cin": _prefix(slot.in_width, 0), "mid": _prefix(slot.mid_width, 0),
               "out": _prefix(slot.out_width, 0), "se": _prefix(slot.se_width, 0)}
        return off | {k: np.float32(0.0) for k in ("on", "se_on", "identity", "pool", "proj")}
    op = OPS.index(Op.MBCONV if layer.op is Op.MBCONV else layer.op)
    mid = layer.in_channels * layer.expansion if layer.op is Op.MBCONV else 0
    return {"op": np.eye(len(OPS), dtype=np.float32)[op], "kernel": _kernel_mask(layer.kernel),
            "cin": _prefix(slot.in_width, layer.in_channels), "mid": _prefix(slot.mid_width, mid),
            "out": _prefix(slot.out_width, layer.out_channels),
            "se": _prefix(slot.se_width, layer.se_channels),
            "on": np.float32(1.0), "se_on": np.float32(layer.se_channels > 0),
            "identity": np.float32(layer.skip is Skip.IDENTITY),
            "pool": np.float32(layer.skip is Skip.POOL),
            "proj": np.float32(layer.skip is Skip.POOL and layer.in_channels != layer.out_channels)}


def body_layers(spec: ArchSpec) -> list[LayerSpec]:
    """The searchable layers of a spec (no stem, head, pool or classifier)."""
    layers = spec.layers()
    return layers[1:-3] if spec.head_channels else layers[1:-2]


def encode_path(layout: SupernetLayout, spec: ArchSpec) -> dict[str, Any]:
    """The path of `spec` through the supernet: per slot, masks and flags (numpy, float32)."""
    layers, path = iter(body_layers(spec)), {}
    for block, slots in zip(spec.blocks, layout.blocks):
        for slot in slots.layers:
            path[slot.name] = _layer_path(slot, next(layers) if slot.index < block.repeats else None)
    return path


def layer_slots(layout: SupernetLayout, spec: ArchSpec) -> list[LayerSlot]:
    """The slot of each of `spec`'s searchable layers, in order."""
    return [slot for block, slots in zip(spec.blocks, layout.blocks)
            for slot in slots.layers if slot.index < block.repeats]
