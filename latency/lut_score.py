"""Vectorised lookup-table scoring of many token sequences of a block space at once.

The cost of a block depends only on its tokens and the channel count entering it, so a
(combinations x inputs) array per block is precomputed from the table; scoring a batch is then a
few gathers per block (hundreds of thousands of architectures per second). A block space (the
MnasNet space) tells its per-block choices (`block_choices`), what a block's tokens decode to
(`block_spec`) and the channels and sizes that can enter each block.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from latency.lut import LatencyTable
from mnas_jax.space.spec import block_layers, tail_layers


@dataclasses.dataclass(frozen=True)
class TableScorer:
    """Scores token arrays (n, decisions) of one block-space setting against one table."""

    space: Any  # a block space: block_choices, block_spec, block_input_channels/_sizes
    block_costs: tuple[np.ndarray, ...]  # per block: (combinations, len(inputs))
    block_inputs: tuple[np.ndarray, ...]  # per block (and head): sorted input channel options
    block_outputs: tuple[np.ndarray, ...]  # per block: channels leaving it, per combination
    head_costs: np.ndarray
    stem_cost: float

    @classmethod
    def build(cls, space: Any, table: LatencyTable, relative: bool = False) -> TableScorer:
        """Precompute every block's cost per token combination and input channel count."""
        cost = table.layer_relative if relative else table.layer_ms
        ins = [np.asarray(c) for c in space.block_input_channels()]
        sizes = space.block_input_sizes()
        probe = space.decode([0] * len(space.choices))
        act = probe.activation
        blocks, outputs = [], []
        for b in range(len(ins) - 1):
            per = space.block_choices(b)
            arr = np.zeros((int(np.prod(per)), len(ins[b])))
            out = np.zeros(len(arr), dtype=np.int64)  # 0: the block passes its input on
            for combo, toks in enumerate(np.ndindex(*per)):
                blk = space.block_spec(b, toks)
                out[combo] = blk.out_channels if blk.repeats > 0 else 0
                for j, cin in enumerate(ins[b]):
                    arr[combo, j] = sum(cost(x) for x in block_layers(blk, int(cin), sizes[b], act))
            blocks.append(arr)
            outputs.append(out)
        head = np.array([sum(cost(x) for x in tail_layers(int(c), sizes[-1], space.head_channels,
                                                           probe.num_classes, act))
                         for c in ins[-1]])
        return cls(space, tuple(blocks), tuple(ins), tuple(outputs), head,
                   cost(probe.layers()[0]))

    def score(self, tokens: np.ndarray) -> np.ndarray:
        """Table sum per row of `tokens` (n, decisions)."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] != len(self.space.choices):
            raise ValueError(f"tokens of shape {tokens.shape}; expected (n, {len(self.space.choices)})")
        n = len(tokens)
        total = np.full(n, self.stem_cost)
        channels = np.full(n, self.space.stem_channels)
        start = 0
        for b, arr in enumerate(self.block_costs):
            per = self.space.block_choices(b)
            radix = np.array([int(np.prod(per[i + 1:])) for i in range(len(per))])
            t = tokens[:, start: start + len(per)]
            start += len(per)
            combo = t @ radix
            j = np.searchsorted(self.block_inputs[b], channels)
            total += arr[combo, j]
            out = self.block_outputs[b][combo]
            channels = np.where(out > 0, out, channels)
        return total + self.head_costs[np.searchsorted(self.block_inputs[-1], channels)]
