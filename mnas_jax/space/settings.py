"""Settings: input size, classes and strides that a space or a reference model is placed in."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Setting:
    """Where a 7-block MobileNetV2-skeleton network runs: input, classes, stem and block strides."""

    name: str
    input_size: int
    input_channels: int
    num_classes: int
    stem_stride: int
    block_strides: tuple[int, ...]


# The paper's ImageNet setting: 224x224x3, 1000 classes, MobileNetV2's strides.
IMAGENET = Setting("imagenet", 224, 3, 1000, 2, (1, 2, 2, 2, 1, 2, 1))
# Fashion-MNIST proxy: 28x28 padded to 32x32x1, 10 classes; strides reduced like FBNet's CIFAR
# setting (stem stride 1, the first stride-2 block made stride 1), so the last feature map is 4x4.
FMNIST = Setting("fmnist", 32, 1, 10, 1, (1, 1, 2, 2, 1, 2, 1))

# A small ImageNet-like task (64x64 RGB, 10 classes; e.g. the synthetic TFDS set of the `tiny`
# variant in configs/imagenet.py): ImageNet's strides, so the last feature map is 2x2.
TINY64 = Setting("tiny64", 64, 3, 10, 2, (1, 2, 2, 2, 1, 2, 1))

# CIFAR-10-sized input (32x32x3, 10 classes) with FMNIST's reduced strides: NAS-Bench-Macro's
# networks and the MobileNetV2 their latency is measured beside.
CIFAR10 = Setting("cifar10", 32, 3, 10, 1, (1, 1, 2, 2, 1, 2, 1))

SETTINGS: dict[str, Setting] = {s.name: s for s in (IMAGENET, FMNIST, TINY64, CIFAR10)}


def get_setting(name: str) -> Setting:
    """The named setting (input, classes, strides); ValueError naming the known ones otherwise."""
    try:
        return SETTINGS[name]
    except KeyError:
        raise ValueError(f"unknown setting {name!r}; choose one of {sorted(SETTINGS)}") from None


def make_divisible(value: float, divisor: int) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded
