"""NAS-Bench-Macro (Su et al., CVPR 2021) as a search space: 6,561 MobileNet-like networks whose
CIFAR-10 accuracies are public (`data/nas-bench-macro/`), built by this project's models so that
they export to TFLite and measure on any device.

Network (32x32x3 input, 10 classes, ReLU): stem 3x3 conv 32 stride 1; 8 searchable layers in 3
stages of [2, 3, 3] layers with 64, 128, 256 channels, the first layer of each stage stride 2;
head 1x1 conv 1280, global pool, classifier. Each layer, its digit in the benchmark's 8-digit
code: 0 identity (a 1x1 conv + BN with the stride where the shape changes), 1 inverted
bottleneck expansion 3 with a 3x3 depthwise, 2 expansion 6 with a 5x5 depthwise (residual
where stride 1 and channels equal). Where the shape changes, the benchmark's identity choice is
1x1 conv + BN without an activation; here it is the project's skip op (FBNet's), which adds a
ReLU after it: the same parameters, and a ReLU that TFLite fuses into the convolution.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from mnas_jax.space.base import SpaceDefaults
from mnas_jax.space.parse import parse_arch
from mnas_jax.space.spec import Activation, ArchSpec, BlockSpec, Op, Skip
from mnas_jax.space.tokens import token_row

STAGE_LAYERS = (2, 3, 3)
STAGE_CHANNELS = (64, 128, 256)
#: the benchmark's layer choices, in token order (its code's digits)
OP_NAMES = ("identity", "k3_e3", "k5_e6")
SETTING = "cifar10"
REFERENCE = "mobilenetv2"  # measured beside every candidate: MobileNetV2 in the cifar10 setting


def _layer_plan() -> tuple[tuple[int, int, str], ...]:
    plan = []
    for s, (n, c) in enumerate(zip(STAGE_LAYERS, STAGE_CHANNELS)):
        plan += [(c, 2 if i == 0 else 1, f"s{s}l{i}") for i in range(n)]
    return tuple(plan)


LAYER_PLAN = _layer_plan()


def _block(token: int, out_channels: int, stride: int) -> BlockSpec:
    if token == 0:
        return BlockSpec(Op.SKIP, 1, 1, 0.0, Skip.NONE, out_channels, 1, stride)
    kernel, expansion = (3, 3) if token == 1 else (5, 6)
    return BlockSpec(Op.IR, kernel, expansion, 0.0, Skip.IDENTITY, out_channels, 1, stride)


@dataclasses.dataclass(frozen=True)
class NASBenchMacroSpace(SpaceDefaults):
    """The benchmark's 8 layers x 3 choices, in its CIFAR-10 setting."""

    name: str = "nasbench-macro"
    setting: str = SETTING

    @property
    def choices(self) -> tuple[int, ...]:
        """Three choices per searchable layer."""
        return (len(OP_NAMES),) * len(LAYER_PLAN)

    @property
    def decision_names(self) -> tuple[str, ...]:
        """'s<stage>l<layer>.op' for each searchable layer."""
        return tuple(f"{name}.op" for _, _, name in LAYER_PLAN)

    @property
    def reference_name(self) -> str | None:
        """MobileNetV2 in the 32x32x3, 10-class setting: the unit of relative latency."""
        return REFERENCE

    @property
    def op_names(self) -> tuple[str, ...]:
        """The layer choices, in token order."""
        return OP_NAMES

    def block_stages(self) -> tuple[int, ...]:
        """The stage of each of the 8 one-layer blocks."""
        return tuple(s for s, n in enumerate(STAGE_LAYERS) for _ in range(n))

    def decode(self, tokens: Sequence[int]) -> ArchSpec:
        """The network of one choice per layer."""
        toks = token_row(tokens, self.choices)
        blocks = tuple(_block(t, c, s) for t, (c, s, _) in zip(toks, LAYER_PLAN))
        return ArchSpec(blocks=blocks, input_size=32, input_channels=3, num_classes=10, stem_channels=32,
                        stem_stride=1, head_channels=1280, dropout=0.0, activation=Activation.RELU)

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        """The tokens of a network of the space; ValueError naming the first layer outside it."""
        if len(spec.blocks) != len(LAYER_PLAN):
            raise ValueError(f"{len(spec.blocks)} blocks; NAS-Bench-Macro has {len(LAYER_PLAN)} layers")
        toks = []
        for i, (blk, (c, s, _)) in enumerate(zip(spec.blocks, LAYER_PLAN)):
            matches = [t for t in range(len(OP_NAMES)) if _block(t, c, s) == blk]
            if not matches:
                raise ValueError(f"layer {i}: {blk} is not one of NAS-Bench-Macro's choices {OP_NAMES}")
            toks.append(matches[0])
        if spec != self.decode(toks):
            raise ValueError("stem/head/input/classes differ from NAS-Bench-Macro's CIFAR-10 network")
        return tuple(toks)

    def parse(self, text: str) -> ArchSpec:
        """The benchmark's 8-digit code (`12012201`), else a reference name (placed in the cifar10
        setting), a spec string or a JSON file."""
        code = text.strip()
        if len(code) == len(LAYER_PLAN) and code.isdigit():
            return self.decode([int(c) for c in code])
        return parse_arch(text, SETTING)

    def parse_ops(self, ops: str) -> tuple[int, ...]:
        """Tokens from 8 space-separated choice names (identity, k3_e3, k5_e6)."""
        names = ops.split()
        if len(names) != len(LAYER_PLAN) or any(n not in OP_NAMES for n in names):
            raise ValueError(f"{ops!r}: give {len(LAYER_PLAN)} layer choices out of {OP_NAMES}")
        return tuple(OP_NAMES.index(n) for n in names)


def code_of(tokens: Sequence[int]) -> str:
    """The benchmark's 8-digit code of a token sequence."""
    return "".join(str(int(t)) for t in tokens)
