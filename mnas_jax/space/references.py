"""Reference architectures by name, from the block strings of the reference TPU implementation.

Block string: r{repeats}_k{kernel}_s{stride}{stride}_e{expand}_i{in}_o{out}[_se{ratio}][_noskip].
e1 is a depthwise-separable layer; `i` is informational (the input comes from the previous block).
A reference is placed in a setting (imagenet or fmnist): the setting gives input, classes, and the
stem and block strides (the references all share MobileNetV2's stride pattern).
"""

from __future__ import annotations

import re

from mnas_jax.space.settings import IMAGENET, Setting, get_setting, make_divisible
from mnas_jax.space.spec import Activation, ArchSpec, BlockSpec, Op, Skip

_BLOCK_STRING = re.compile(
    r"r(?P<r>\d+)_k(?P<k>\d+)_s(?P<s>\d)(?P=s)_e(?P<e>\d+)_i(?P<i>\d+)_o(?P<o>\d+)"
    r"(?:_se(?P<se>[0-9.]+))?(?P<noskip>_noskip)?"
)

MNASNET_A1 = ("r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24", "r3_k5_s22_e3_i24_o40_se0.25",
              "r4_k3_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o112_se0.25",
              "r3_k5_s22_e6_i112_o160_se0.25", "r1_k3_s11_e6_i160_o320")
MNASNET_B1 = ("r1_k3_s11_e1_i32_o16_noskip", "r3_k3_s22_e3_i16_o24", "r3_k5_s22_e3_i24_o40",
              "r3_k5_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o96", "r4_k5_s22_e6_i96_o192",
              "r1_k3_s11_e6_i192_o320_noskip")
MNASNET_SMALL = ("r1_k3_s11_e1_i16_o8", "r1_k3_s22_e3_i8_o16", "r2_k3_s22_e6_i16_o16",
                 "r4_k5_s22_e6_i16_o32_se0.25", "r3_k3_s11_e6_i32_o32_se0.25",
                 "r3_k5_s22_e6_i32_o88_se0.25", "r1_k3_s11_e6_i88_o144")
MOBILENETV2 = ("r1_k3_s11_e1_i32_o16", "r2_k3_s22_e6_i16_o24", "r3_k3_s22_e6_i24_o32",
               "r4_k3_s22_e6_i32_o64", "r3_k3_s11_e6_i64_o96", "r3_k3_s22_e6_i96_o160",
               "r1_k3_s11_e6_i160_o320")
MOBILENETV2_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.4)


def parse_block_string(text: str) -> BlockSpec:
    """Parse a reference block string such as 'r2_k3_s22_e6_i16_o24' into a BlockSpec."""
    m = _BLOCK_STRING.fullmatch(text)
    if m is None:
        raise ValueError(f"bad reference block string {text!r}; expected like 'r2_k3_s22_e6_i16_o24'")
    e = int(m["e"])
    return BlockSpec(op=Op.SEPCONV if e == 1 else Op.MBCONV, kernel=int(m["k"]), expansion=e,
                     se_ratio=float(m["se"] or 0.0), skip=Skip.NONE if m["noskip"] else Skip.IDENTITY,
                     out_channels=int(m["o"]), repeats=int(m["r"]), stride=int(m["s"]))


def _build(strings: tuple[str, ...], setting: Setting, *, stem: int = 32, head: int = 1280,
           width: float = 1.0, activation: Activation = Activation.RELU) -> ArchSpec:
    blocks = []
    for i, s in enumerate(strings):
        b = parse_block_string(s)
        if b.stride != IMAGENET.block_strides[i]:
            raise ValueError(f"block {i} stride {b.stride} breaks the MobileNetV2 stride pattern")
        channels = b.out_channels if width == 1.0 else make_divisible(b.out_channels * width, 8)
        blocks.append(BlockSpec(b.op, b.kernel, b.expansion, b.se_ratio, b.skip, channels,
                                b.repeats, setting.block_strides[i]))
    return ArchSpec(blocks=tuple(blocks), input_size=setting.input_size,
                    input_channels=setting.input_channels, num_classes=setting.num_classes,
                    stem_channels=stem, stem_stride=setting.stem_stride, head_channels=head,
                    dropout=0.2, activation=activation)


def mobilenetv2(width: float, setting: Setting) -> ArchSpec:
    """MobileNetV2 at a width multiplier (ReLU6; head widens only above 1.0, as in the paper)."""
    stem = 32 if width == 1.0 else make_divisible(32 * width, 8)
    head = 1280 if width <= 1.0 else make_divisible(1280 * width, 8)
    return _build(MOBILENETV2, setting, stem=stem, head=head, width=width,
                  activation=Activation.RELU6)


def reference_names() -> tuple[str, ...]:
    """Names of the built-in reference architectures (MobileNetV2 widths, MnasNet A1/B1/small)."""
    widths = tuple(f"mobilenetv2-{w}" for w in MOBILENETV2_WIDTHS)
    return ("mobilenetv2", "mnasnet-a1", "mnasnet-b1", "mnasnet-small", *widths)


def reference(name: str, setting: str = "imagenet") -> ArchSpec:
    """A reference architecture by name in a setting ('imagenet' or 'fmnist')."""
    s = get_setting(setting)
    if name == "mnasnet-a1":
        return _build(MNASNET_A1, s)
    if name == "mnasnet-b1":
        return _build(MNASNET_B1, s)
    if name == "mnasnet-small":
        return _build(MNASNET_SMALL, s, stem=8)
    if name == "mobilenetv2":
        return mobilenetv2(1.0, s)
    if name.startswith("mobilenetv2-"):
        try:
            width = float(name.split("-", 1)[1])
        except ValueError:
            width = -1.0
        if width in MOBILENETV2_WIDTHS:
            return mobilenetv2(width, s)
    raise ValueError(f"unknown reference architecture {name!r}; choose one of {list(reference_names())}")
