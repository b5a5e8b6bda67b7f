"""The weight-sharing supernet: every child of the MnasNet space as a path through one network.

`Supernet(layout)(x, path, train)` runs the child that `path` (`supernet_layout.encode_path`)
selects. Channels a child does not have are carried as exact zeros: every op's output is
multiplied by its channel mask right after its batch norm and activation, so the real channels
see exactly the arithmetic of the stand-alone child (`Net`) with the weights `child_variables`
cuts out of the supernet's (tests/test_supernet.py checks it). All three ops of a slot are
computed and the path's one-hot keeps one; their convolutions are the widest ones. That costs
more per step than one child, but it is ONE static program for every child: no conditionals
around convolution gradients, nothing to compile per child.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnas_jax.models.depthwise import DepthwiseImpl, depthwise_conv, fast_conv_general_dilated
from mnas_jax.models.layers import BN_EPSILON, BN_MOMENTUM, fit_channels
from mnas_jax.models.net import ACTIVATIONS
from mnas_jax.models.supernet_layout import KERNEL, BlockSlot, LayerSlot, SupernetLayout

_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class MaskedConvBN(nn.Module):
    """KxK conv (kernel masked to the child's size) + BN + optional act, times a channel mask."""

    features: int
    kernel: int
    stride: int = 1
    depthwise: bool = False
    act: Any = None
    impl: DepthwiseImpl = DepthwiseImpl.XLA

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, out_mask: jax.Array,
                 kernel_mask: jax.Array | None = None) -> jax.Array:
        k = self.kernel
        shape = (k, k, 1, self.features) if self.depthwise else (k, k, x.shape[-1], self.features)
        w = self.param("kernel", _conv_init, shape, jnp.float32)
        if kernel_mask is not None:
            w = w * kernel_mask[:, :, None, None]
        if self.depthwise:
            y = depthwise_conv(x, w, stride=self.stride, impl=self.impl)
        else:
            conv = fast_conv_general_dilated if self.impl is DepthwiseImpl.SHIFT else jax.lax.conv_general_dilated
            y = conv(x, w, (self.stride, self.stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                         name="bn")(y)
        if self.act is not None:
            y = self.act(y)
        return y * out_mask


class MaskedSE(nn.Module):
    """Squeeze-and-excite with a masked bottleneck; `on` = 0 makes it the identity."""

    width: int

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, on: jax.Array) -> jax.Array:
        s = jnp.mean(x, axis=(1, 2))
        s = nn.relu(nn.Dense(self.width, name="reduce")(s)) * mask
        s = nn.sigmoid(nn.Dense(x.shape[-1], name="expand")(s))
        return x * (on * s + (1.0 - on))[:, None, None, :]


class SupernetLayer(nn.Module):
    """One layer slot: the three ops, their SE, and the shortcuts, mixed by the path."""

    slot: LayerSlot
    act: Any
    impl: DepthwiseImpl

    @nn.compact
    def __call__(self, x: jax.Array, p: dict[str, jax.Array], train: bool) -> jax.Array:
        s, act, impl, km = self.slot, self.act, self.impl, p["kernel"]
        conv = MaskedConvBN(s.out_width, KERNEL, s.stride, act=act, impl=impl, name="conv")(x, train, p["out"], km)
        conv = MaskedSE(s.se_width, name="conv_se")(conv, p["se"], p["se_on"])
        sep = MaskedConvBN(s.in_width, KERNEL, s.stride, True, act, impl, name="sep_dw")(x, train, p["cin"], km)
        sep = MaskedSE(s.se_width, name="sep_se")(sep, p["se"], p["se_on"])
        sep = MaskedConvBN(s.out_width, 1, impl=impl, name="sep_pw")(sep, train, p["out"])
        mid = MaskedConvBN(s.mid_width, 1, act=act, impl=impl, name="mb_expand")(x, train, p["mid"])
        mid = MaskedConvBN(s.mid_width, KERNEL, s.stride, True, act, impl, name="mb_dw")(mid, train, p["mid"], km)
        mid = MaskedSE(s.se_width, name="mb_se")(mid, p["se"], p["se_on"])
        mb = MaskedConvBN(s.out_width, 1, impl=impl, name="mb_project")(mid, train, p["out"])
        op = p["op"]
        y = op[0] * conv + op[1] * sep + op[2] * mb
        pooled = x
        if s.stride > 1:
            pooled = nn.avg_pool(x, (s.stride, s.stride), (s.stride, s.stride), padding="SAME",
                                 count_include_pad=False)
        proj = MaskedConvBN(s.out_width, 1, impl=impl, name="proj")(pooled, train, p["out"])
        shortcut = p["proj"] * proj + (1.0 - p["proj"]) * fit_channels(pooled, s.out_width)
        y = y + p["pool"] * shortcut
        if s.stride == 1:  # an identity shortcut needs the shape kept
            y = y + p["identity"] * fit_channels(x, s.out_width)
        return y


class SupernetBlock(nn.Module):
    """A block's slots; a slot the path leaves off passes its input on."""

    block: BlockSlot
    act: Any
    impl: DepthwiseImpl

    @nn.compact
    def __call__(self, x: jax.Array, path: dict[str, Any], train: bool) -> jax.Array:
        first, *rest = self.block.layers
        h = SupernetLayer(first, self.act, self.impl, name=first.name)(x, path[first.name], train)
        for slot in rest:
            p = path[slot.name]
            h = p["on"] * SupernetLayer(slot, self.act, self.impl, name=slot.name)(h, p, train) + (1.0 - p["on"]) * h
        if not self.block.skippable:
            return h
        on = path[first.name]["on"]
        width = self.block.carry_width
        return on * fit_channels(h, width) + (1.0 - on) * fit_channels(x, width)


class Supernet(nn.Module):
    """Stem, the block slots, head, pool, dropout, classifier: `Net` for every child at once."""

    layout: SupernetLayout
    impl: DepthwiseImpl = DepthwiseImpl.XLA

    @nn.compact
    def __call__(self, x: jax.Array, path: dict[str, Any], train: bool = False) -> jax.Array:
        lay = self.layout
        act = ACTIVATIONS[lay.activation]
        ones = jnp.ones((lay.stem_channels,), jnp.float32)
        x = MaskedConvBN(lay.stem_channels, 3, lay.stem_stride, act=act, impl=self.impl, name="stem")(x, train, ones)
        for b, block in enumerate(lay.blocks):
            x = SupernetBlock(block, act, self.impl, name=f"b{b}")(x, path, train)
        if lay.head_channels:
            ones = jnp.ones((lay.head_channels,), jnp.float32)
            x = MaskedConvBN(lay.head_channels, 1, act=act, impl=self.impl, name="head")(x, train, ones)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(lay.dropout, deterministic=not train)(x)
        return nn.Dense(lay.num_classes, name="classifier")(x)
