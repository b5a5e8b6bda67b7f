"""Every distinct layer a search-space setting can produce: the rows of its lookup table."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from mnas_jax.space import BlockSpec, LayerSpec, get_space
from mnas_jax.space.spec import block_layers, tail_layers
from mnas_jax.space.mnasnet import DECISIONS, KERNELS, OPS, SE_RATIOS, SKIPS, MnasNetSpace
from mnas_jax.space.slices import SlicedSpace

#: (block, decision name) -> the choices (indexes into OPS, KERNELS, ...) the block may take.
Allowed = Callable[[int, str], Sequence[int]]


def all_choices(space: MnasNetSpace) -> Allowed:
    return lambda b, d: range(space.choices[len(DECISIONS) * b + DECISIONS.index(d)])


def _pick(options: Sequence, allowed: Allowed, b: int, decision: str) -> list:
    return [options[i] for i in allowed(b, decision)]


def block_input_channels(space: MnasNetSpace, allowed: Allowed | None = None) -> list[list[int]]:
    """Channel counts that can enter each block (and, last, the head): a block with zero layers
    passes on whatever entered it."""
    allowed = allowed or all_choices(space)
    inputs: list[list[int]] = []
    current = {space.stem_channels}
    for b in range(len(space.setting_.block_strides)):
        inputs.append(sorted(current))
        outs = set(_pick(space.block_filters(b), allowed, b, "filters"))
        zero = min(_pick(space.block_repeats(b), allowed, b, "layers")) == 0
        current = outs | current if zero else outs
    inputs.append(sorted(current))
    return inputs


def block_input_sizes(space: MnasNetSpace) -> list[int]:
    s = space.setting_
    size = -(-s.input_size // s.stem_stride)
    sizes = []
    for stride in s.block_strides:
        sizes.append(size)
        size = -(-size // stride)
    sizes.append(size)
    return sizes


def mnasnet_layers(space: MnasNetSpace, allowed: Allowed | None = None) -> list[LayerSpec]:
    """All layers of the MnasNet space (or of the part `allowed` leaves) in one setting, in a
    stable order, without duplicates."""
    allowed = allowed or all_choices(space)
    probe = space.decode([0] * len(space.choices))
    fixed = probe.layers()
    found: dict[str, LayerSpec] = {fixed[0].key: fixed[0]}
    ins, sizes = block_input_channels(space, allowed), block_input_sizes(space)
    for b, stride in enumerate(space.setting_.block_strides):
        if max(_pick(space.block_repeats(b), allowed, b, "layers")) == 0:
            continue
        for (op, e), k, se, skip, out in itertools.product(*(
                _pick(options, allowed, b, d) for options, d in (
                    (OPS, "op"), (KERNELS, "kernel"), (SE_RATIOS, "se"), (SKIPS, "skip"),
                    (space.block_filters(b), "filters")))):
            for cin in ins[b]:
                # a 2-layer block yields its first layer (stride, channel change) and a repeat
                blk = BlockSpec(op, k, e, se, skip, out, 2, stride)
                for layer in block_layers(blk, cin, sizes[b], probe.activation):
                    found.setdefault(layer.key, layer)
    for cin in ins[-1]:
        for layer in tail_layers(cin, sizes[-1], space.head_channels, probe.num_classes,
                                 probe.activation):
            found.setdefault(layer.key, layer)
    return list(found.values())


def space_layers(space_name: str, setting: str | None = None) -> list[LayerSpec]:
    """Every distinct LayerSpec of a space setting (stem, block layers, head, pool, classifier)."""
    space = get_space(space_name, setting)
    if isinstance(space, MnasNetSpace):
        return mnasnet_layers(space)
    if isinstance(space, SlicedSpace) and isinstance(space.base, MnasNetSpace):
        base, width = space.base, len(DECISIONS)
        return mnasnet_layers(base, lambda b, d: space.allowed(width * b + DECISIONS.index(d)))
    found: dict[str, LayerSpec] = {}
    # FBNet: layer-wise choices, each layer's input is fixed by the plan.
    for t in range(space.choices[0]):
        spec = space.decode([t] * len(space.choices))
        for layer in spec.layers():
            found.setdefault(layer.key, layer)
        # the first layer of a stage may follow any op of the previous one: inputs are fixed by
        # channels, so decoding each op everywhere covers every layer
    return list(found.values())
