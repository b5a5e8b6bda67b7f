"""Every distinct layer the MnasNet space (or a slice of it) can produce in one setting.

The rows of a lookup table: a block's layers depend only on its own choices, the channel count
entering it and its input size, so enumerating each block's choices against every channel count
that can reach it covers the space without decoding whole architectures.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from mnas_jax.space.mnasnet import DECISIONS, KERNELS, OPS, SE_RATIOS, SKIPS, MnasNetSpace
from mnas_jax.space.spec import BlockSpec, LayerSpec, block_layers, tail_layers

#: decision index -> the tokens it may take (a slice restricts some decisions).
Allowed = Callable[[int], Sequence[int]]
#: (block, decision name) -> the choices (indexes into OPS, KERNELS, ...) the block may take.
BlockAllowed = Callable[[int, str], Sequence[int]]


def _per_block(space: MnasNetSpace, allowed: Allowed | None) -> BlockAllowed:
    width = len(DECISIONS)
    if allowed is None:
        return lambda b, d: range(space.choices[width * b + DECISIONS.index(d)])
    return lambda b, d: allowed(width * b + DECISIONS.index(d))


def _pick(options: Sequence, allowed: BlockAllowed, b: int, decision: str) -> list:
    return [options[i] for i in allowed(b, decision)]


def block_input_channels(space: MnasNetSpace, allowed: Allowed | None = None) -> list[list[int]]:
    """Channel counts that can enter each block (and, last, the head): a block with zero layers
    passes on whatever entered it."""
    per = _per_block(space, allowed)
    inputs: list[list[int]] = []
    current = {space.stem_channels}
    for b in range(len(space.block_strides)):
        inputs.append(sorted(current))
        outs = set(_pick(space.block_filters(b), per, b, "filters"))
        zero = min(_pick(space.block_repeats(b), per, b, "layers")) == 0
        current = outs | current if zero else outs
    inputs.append(sorted(current))
    return inputs


def block_input_sizes(space: MnasNetSpace) -> list[int]:
    """Feature-map size entering each block (and, last, the head)."""
    probe = space.decode([0] * len(space.choices))
    size = -(-probe.input_size // probe.stem_stride)
    sizes = []
    for stride in space.block_strides:
        sizes.append(size)
        size = -(-size // stride)
    sizes.append(size)
    return sizes


def mnasnet_layers(space: MnasNetSpace, allowed: Allowed | None = None) -> list[LayerSpec]:
    """All layers of the MnasNet space (or of the part `allowed` leaves) in one setting, in a
    stable order, without duplicates."""
    per = _per_block(space, allowed)
    probe = space.decode([0] * len(space.choices))
    fixed = probe.layers()
    found: dict[str, LayerSpec] = {fixed[0].key: fixed[0]}
    ins, sizes = block_input_channels(space, allowed), block_input_sizes(space)
    for b, stride in enumerate(space.block_strides):
        if max(_pick(space.block_repeats(b), per, b, "layers")) == 0:
            continue
        for (op, e), k, se, skip, out in itertools.product(*(
                _pick(options, per, b, d) for options, d in (
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
