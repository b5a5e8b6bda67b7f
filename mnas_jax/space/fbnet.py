"""The FBNet layer-wise search space (CIFAR-100 setting of the public Pixel 2 measurements).

22 searchable layers in 7 stages (layers [1, 4, 4, 4, 4, 4, 1], channels
[16, 24, 32, 64, 112, 184, 352], stage strides [1, 1, 2, 2, 1, 2, 1]); stem 3x3 conv 16 stride 1;
head 1x1 conv 1504; 32x32x3 input; 100 classes; ReLU. Each layer picks one of 9 ops: inverted
residual kK_eE (1x1 expand is always there, even for E=1), kK_e1_g2 (both 1x1 convs in 2 groups
with a channel shuffle), or skip (identity, or 1x1 conv + BN + ReLU where the shape changes).
Each layer is a BlockSpec with one repeat.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from mnas_jax.space.base import SpaceDefaults
from mnas_jax.space.parse import parse_arch
from mnas_jax.space.tokens import token_row
from mnas_jax.space.spec import Activation, ArchSpec, BlockSpec, Op, Skip

STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STAGE_STRIDES = (1, 1, 2, 2, 1, 2, 1)
# Names as in the public data (`ops` column), in token order.
OP_NAMES = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")


def _op_block(name: str, out_channels: int, stride: int) -> BlockSpec:
    if name == "skip":
        return BlockSpec(Op.SKIP, 1, 1, 0.0, Skip.NONE, out_channels, 1, stride)
    parts = name.split("_")
    groups = int(parts[2][1:]) if len(parts) == 3 else 1
    return BlockSpec(Op.IR, int(parts[0][1:]), int(parts[1][1:]), 0.0, Skip.IDENTITY,
                     out_channels, 1, stride, groups)


def _layer_plan() -> tuple[tuple[int, int], ...]:
    plan = []
    for n, c, s in zip(STAGE_LAYERS, STAGE_CHANNELS, STAGE_STRIDES):
        plan += [(c, s if i == 0 else 1) for i in range(n)]
    return tuple(plan)


LAYER_PLAN = _layer_plan()


@dataclasses.dataclass(frozen=True)
class FBNetSpace(SpaceDefaults):
    """Layer-wise space of the public phone data; no reference model (no device tables)."""

    name: str = "fbnet"
    setting: str = "cifar100"

    @property
    def choices(self) -> tuple[int, ...]:
        """Number of choices per decision: one op per layer."""
        return (len(OP_NAMES),) * len(LAYER_PLAN)

    @property
    def decision_names(self) -> tuple[str, ...]:
        """'l<i>.op' for each of the space's layers."""
        return tuple(f"l{i}.op" for i in range(len(LAYER_PLAN)))

    @property
    def op_names(self) -> tuple[str, ...]:
        """The public data's op names, in token order."""
        return OP_NAMES

    def block_stages(self) -> tuple[int, ...]:
        """The stage of each of the 22 one-layer blocks."""
        return tuple(s for s, n in enumerate(STAGE_LAYERS) for _ in range(n))

    def parse(self, text: str) -> ArchSpec:
        """The 22 op names in one string, else a reference name (in imagenet), a spec string or
        a JSON file."""
        if len(text.split()) == len(self.choices):
            return self.decode(self.parse_ops(text))
        return parse_arch(text, "imagenet")

    def decode(self, tokens: Sequence[int]) -> ArchSpec:
        """The FBNet architecture (CIFAR-100 input, as the public data) of one op per layer."""
        toks = token_row(tokens, self.choices)
        blocks = tuple(_op_block(OP_NAMES[t], c, s) for t, (c, s) in zip(toks, LAYER_PLAN))
        return ArchSpec(blocks=blocks, input_size=32, input_channels=3, num_classes=100,
                        stem_channels=16, stem_stride=1, head_channels=1504, dropout=0.0,
                        activation=Activation.RELU)

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        """The op tokens of an FBNet architecture; ValueError naming the first layer outside."""
        if len(spec.blocks) != len(LAYER_PLAN):
            raise ValueError(f"{len(spec.blocks)} blocks; the FBNet space has {len(LAYER_PLAN)} layers")
        toks = []
        for i, (blk, (c, s)) in enumerate(zip(spec.blocks, LAYER_PLAN)):
            matches = [t for t, n in enumerate(OP_NAMES) if _op_block(n, c, s) == blk]
            if not matches:
                raise ValueError(f"layer {i}: {blk} is not one of the FBNet ops {OP_NAMES}")
            toks.append(matches[0])
        if spec != self.decode(toks):
            raise ValueError("stem/head/input/classes differ from the FBNet CIFAR-100 setting")
        return tuple(toks)

    def parse_ops(self, ops: str) -> tuple[int, ...]:
        """Tokens from the public data's space-separated op names."""
        names = ops.split()
        if len(names) != len(LAYER_PLAN):
            raise ValueError(f"{len(names)} ops in {ops!r}; the FBNet space has {len(LAYER_PLAN)}")
        bad = [n for n in names if n not in OP_NAMES]
        if bad:
            raise ValueError(f"unknown FBNet op {bad[0]!r}; allowed: {OP_NAMES}")
        return tuple(OP_NAMES.index(n) for n in names)
