"""Every distinct layer a search-space setting can produce: the rows of its lookup table."""

from __future__ import annotations

import itertools

from mnas_jax.space import BlockSpec, LayerSpec, get_space
from mnas_jax.space.spec import block_layers, tail_layers
from mnas_jax.space.mnasnet import KERNELS, OPS, SE_RATIOS, SKIPS, MnasNetSpace


def block_input_channels(space: MnasNetSpace) -> list[list[int]]:
    """Channel counts that can enter each block (and, last, the head): a block with zero layers
    passes on whatever entered it."""
    inputs: list[list[int]] = []
    current = {space.stem_channels}
    for b in range(len(space.setting_.block_strides)):
        inputs.append(sorted(current))
        outs = set(space.block_filters(b))
        current = outs | current if min(space.block_repeats(b)) == 0 else outs
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


def mnasnet_layers(space: MnasNetSpace) -> list[LayerSpec]:
    """All layers of the MnasNet space in one setting, in a stable order, without duplicates."""
    probe = space.decode([0] * len(space.choices))
    fixed = probe.layers()
    found: dict[str, LayerSpec] = {fixed[0].key: fixed[0]}
    ins, sizes = block_input_channels(space), block_input_sizes(space)
    for b, stride in enumerate(space.setting_.block_strides):
        for (op, e), k, se, skip, out in itertools.product(OPS, KERNELS, SE_RATIOS, SKIPS,
                                                           space.block_filters(b)):
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
    found: dict[str, LayerSpec] = {}
    # FBNet: layer-wise choices, each layer's input is fixed by the plan.
    for t in range(space.choices[0]):
        spec = space.decode([t] * len(space.choices))
        for layer in spec.layers():
            found.setdefault(layer.key, layer)
        # the first layer of a stage may follow any op of the previous one: inputs are fixed by
        # channels, so decoding each op everywhere covers every layer
    return list(found.values())
