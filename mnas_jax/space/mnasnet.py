"""The MnasNet factorized hierarchical search space on MobileNetV2's 7-block skeleton.

Per block, six decisions: ConvOp {conv, sepconv, mbconv e3, mbconv e6}, kernel {3, 5},
SE ratio {0, 0.25}, skip {pool, identity, none}, filters = MobileNetV2's width x {0.75, 1.0, 1.25}
(rounded to a multiple of 4, which keeps the three choices distinct in every block), layers =
MobileNetV2's count + {-1, 0, +1}. A block of 0 layers (possible where MobileNetV2 has 1) is
skipped; its other choices are kept in the spec so tokens round-trip. Stem (3x3 conv, 32),
head (1x1 conv, 1280), dropout 0.2 and ReLU are fixed.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from mnas_jax.space.base import Allowed, SpaceDefaults
from mnas_jax.space.tokens import token_row
from mnas_jax.space.settings import Setting, make_divisible
from mnas_jax.space.spec import Activation, ArchSpec, BlockSpec, LayerSpec, Op, Skip

BASE_CHANNELS = (16, 24, 32, 64, 96, 160, 320)
BASE_REPEATS = (1, 2, 3, 4, 3, 3, 1)
OPS: tuple[tuple[Op, int], ...] = ((Op.CONV, 1), (Op.SEPCONV, 1), (Op.MBCONV, 3), (Op.MBCONV, 6))
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIPS = (Skip.POOL, Skip.IDENTITY, Skip.NONE)
FILTER_MULTIPLIERS = (0.75, 1.0, 1.25)
LAYER_DELTAS = (-1, 0, 1)
DECISIONS = ("op", "kernel", "se", "skip", "filters", "layers")
CHANNEL_DIVISOR = 4


def _shown(value: object) -> object:
    if isinstance(value, tuple):
        return tuple(_shown(v) for v in value)
    return getattr(value, "value", value)


@dataclasses.dataclass(frozen=True)
class MnasNetSpace(SpaceDefaults):
    """The space in one setting; candidates are measured beside MobileNetV2 of the setting."""

    setting_: Setting
    name: str = "mnasnet"
    stem_channels: int = 32
    head_channels: int = 1280
    dropout: float = 0.2

    @property
    def setting(self) -> str:
        """Name of the setting (input size, classes, strides) the space is built for."""
        return self.setting_.name

    @property
    def reference_name(self) -> str:
        """MobileNetV2, the skeleton the space is built on, in the same setting."""
        return "mobilenetv2"

    @property
    def block_strides(self) -> tuple[int, ...]:
        """The stride of each block (fixed by the setting)."""
        return self.setting_.block_strides

    @property
    def choices(self) -> tuple[int, ...]:
        """Choices of every decision: six per block."""
        return self.block_choices(0) * len(BASE_CHANNELS)

    def block_choices(self, block: int) -> tuple[int, ...]:
        """Choices of each of a block's decisions (the same in every block)."""
        return (len(OPS), len(KERNELS), len(SE_RATIOS), len(SKIPS), len(FILTER_MULTIPLIERS),
                len(LAYER_DELTAS))

    def block_spec(self, block: int, tokens: Sequence[int]) -> BlockSpec:
        """The block that one block's tokens (op, kernel, se, skip, filters, layers) decode to."""
        op_t, k_t, se_t, skip_t, f_t, n_t = (int(t) for t in tokens)
        op, expansion = OPS[op_t]
        return BlockSpec(op=op, kernel=KERNELS[k_t], expansion=expansion, se_ratio=SE_RATIOS[se_t],
                         skip=SKIPS[skip_t], out_channels=self.block_filters(block)[f_t],
                         repeats=self.block_repeats(block)[n_t],
                         stride=self.setting_.block_strides[block])

    def table_layers(self, allowed: Allowed | None = None) -> list[LayerSpec]:
        """Every distinct layer of the space (or of the part `allowed` leaves) in its setting."""
        from mnas_jax.space.mnasnet_layers import mnasnet_layers

        return mnasnet_layers(self, allowed)

    def block_input_channels(self) -> list[list[int]]:
        """Channel counts that can enter each block and, last, the head."""
        from mnas_jax.space.mnasnet_layers import block_input_channels

        return block_input_channels(self)

    def block_input_sizes(self) -> list[int]:
        """Feature-map size entering each block and, last, the head."""
        from mnas_jax.space.mnasnet_layers import block_input_sizes

        return block_input_sizes(self)

    @property
    def decision_names(self) -> tuple[str, ...]:
        """'b<block>.<decision>' for the six decisions of each of the seven blocks."""
        return tuple(f"b{b}.{d}" for b in range(len(BASE_CHANNELS)) for d in DECISIONS)

    def block_filters(self, block: int) -> tuple[int, ...]:
        """Output channel choices of ``block``: the base width times each filter multiplier."""
        return tuple(make_divisible(BASE_CHANNELS[block] * m, CHANNEL_DIVISOR)
                     for m in FILTER_MULTIPLIERS)

    def block_repeats(self, block: int) -> tuple[int, ...]:
        """Layer count choices of ``block``: the base count plus each layer delta."""
        return tuple(BASE_REPEATS[block] + d for d in LAYER_DELTAS)

    def decode(self, tokens: Sequence[int]) -> ArchSpec:
        """The architecture of 42 tokens (six per block)."""
        toks = token_row(tokens, self.choices)
        width = len(DECISIONS)
        return self._spec(tuple(self.block_spec(b, toks[width * b: width * b + width])
                                for b in range(len(BASE_CHANNELS))))

    def _spec(self, blocks: tuple[BlockSpec, ...]) -> ArchSpec:
        s = self.setting_
        return ArchSpec(blocks=blocks, input_size=s.input_size, input_channels=s.input_channels,
                        num_classes=s.num_classes, stem_channels=self.stem_channels,
                        stem_stride=s.stem_stride, head_channels=self.head_channels,
                        dropout=self.dropout, activation=Activation.RELU)

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        """The 42 tokens of an architecture; ValueError naming the first field outside the space."""
        if len(spec.blocks) != len(BASE_CHANNELS):
            raise ValueError(f"{len(spec.blocks)} blocks; the MnasNet space has {len(BASE_CHANNELS)}")
        fixed = self._spec(spec.blocks)
        for field in ("input_size", "input_channels", "num_classes", "stem_channels",
                      "stem_stride", "head_channels", "dropout", "activation"):
            if getattr(spec, field) != getattr(fixed, field):
                got, want = (_shown(getattr(x, field)) for x in (spec, fixed))
                raise ValueError(f"{field}={got!r} is outside the space "
                                 f"(fixed at {want!r} in setting {self.setting!r})")
        toks: list[int] = []
        for b, blk in enumerate(spec.blocks):
            values = (
                ("op", (blk.op, blk.expansion), OPS),
                ("kernel", blk.kernel, KERNELS),
                ("se_ratio", blk.se_ratio, SE_RATIOS),
                ("skip", blk.skip, SKIPS),
                ("out_channels", blk.out_channels, self.block_filters(b)),
                ("repeats", blk.repeats, self.block_repeats(b)),
                ("stride", blk.stride, (self.setting_.block_strides[b],)),
            )
            for field, value, options in values:
                if value not in options:
                    raise ValueError(f"block {b}: {field}={_shown(value)!r} is outside the space; "
                                     f"allowed: {[_shown(o) for o in options]}")
                if field != "stride":
                    toks.append(options.index(value))
            if blk.groups != 1:
                raise ValueError(f"block {b}: groups={blk.groups} is outside the space; allowed: [1]")
        return tuple(toks)
