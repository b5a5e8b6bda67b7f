"""Vectorised lookup-table scoring of many MnasNet-space token sequences at once.

The cost of a block depends only on its six tokens and the channel count entering it, so a
(432 x inputs) array per block is precomputed from the table; scoring a batch is then a few
gathers per block (hundreds of thousands of architectures per second).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from latency.lut import LatencyTable
from latency.lut_space import block_input_channels, block_input_sizes
from mnas_jax.space import BlockSpec
from mnas_jax.space.mnasnet import DECISIONS, KERNELS, OPS, SE_RATIOS, SKIPS, MnasNetSpace
from mnas_jax.space.spec import block_layers, tail_layers

_PER_BLOCK = (len(OPS), len(KERNELS), len(SE_RATIOS), len(SKIPS), 3, 3)


@dataclasses.dataclass(frozen=True)
class TableScorer:
    """Scores token arrays (n, 42) of one MnasNet space setting against one table."""

    space: MnasNetSpace
    block_costs: tuple[np.ndarray, ...]  # per block: (432, len(inputs))
    block_inputs: tuple[np.ndarray, ...]  # per block (and head): sorted input channel options
    head_costs: np.ndarray
    stem_cost: float

    @classmethod
    def build(cls, space: MnasNetSpace, table: LatencyTable, relative: bool = False) -> TableScorer:
        cost = table.layer_relative if relative else table.layer_ms
        ins = [np.asarray(c) for c in block_input_channels(space)]
        sizes = block_input_sizes(space)
        probe = space.decode([0] * len(space.choices))
        act = probe.activation
        blocks = []
        for b, stride in enumerate(space.setting_.block_strides):
            arr = np.zeros((int(np.prod(_PER_BLOCK)), len(ins[b])))
            for combo, toks in enumerate(np.ndindex(*_PER_BLOCK)):
                op, e = OPS[toks[0]]
                blk = BlockSpec(op, KERNELS[toks[1]], e, SE_RATIOS[toks[2]], SKIPS[toks[3]],
                                space.block_filters(b)[toks[4]], space.block_repeats(b)[toks[5]],
                                stride)
                for j, cin in enumerate(ins[b]):
                    arr[combo, j] = sum(cost(x) for x in block_layers(blk, int(cin), sizes[b], act))
            blocks.append(arr)
        head = np.array([sum(cost(x) for x in tail_layers(int(c), sizes[-1], space.head_channels,
                                                           probe.num_classes, act))
                         for c in ins[-1]])
        return cls(space, tuple(blocks), tuple(ins), head, cost(probe.layers()[0]))

    def score(self, tokens: np.ndarray) -> np.ndarray:
        """Table sum per row of `tokens` (n, 42)."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] != len(self.space.choices):
            raise ValueError(f"tokens of shape {tokens.shape}; expected (n, {len(self.space.choices)})")
        n = len(tokens)
        radix = np.array([int(np.prod(_PER_BLOCK[i + 1:])) for i in range(len(_PER_BLOCK))])
        total = np.full(n, self.stem_cost)
        channels = np.full(n, self.space.stem_channels)
        for b, arr in enumerate(self.block_costs):
            t = tokens[:, len(DECISIONS) * b: len(DECISIONS) * (b + 1)]
            combo = t @ radix
            j = np.searchsorted(self.block_inputs[b], channels)
            total += arr[combo, j]
            out = np.asarray(self.space.block_filters(b))[t[:, 4]]
            reps = np.asarray(self.space.block_repeats(b))[t[:, 5]]
            channels = np.where(reps > 0, out, channels)
        return total + self.head_costs[np.searchsorted(self.block_inputs[-1], channels)]
