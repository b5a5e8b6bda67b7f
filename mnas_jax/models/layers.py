"""Typed Flax layers. They take integers, callables and enums for implementation choices, never
op-name strings; `net.build_layer` is the one place a LayerSpec is turned into a module."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnas_jax.models.depthwise import DepthwiseConv, DepthwiseImpl, fast_conv_general_dilated

Act = Callable[[jax.Array], jax.Array]
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _bn(train: bool, name: str | None = None) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                        name=name)


class ConvBN(nn.Module):
    """KxK conv (no bias) + BN + optional activation. With the CPU training implementation
    (`impl` SHIFT) a plain conv takes CPU-friendly gradients (same parameters and outputs)."""

    features: int
    kernel: int
    stride: int = 1
    groups: int = 1
    act: Act | None = None
    impl: DepthwiseImpl = DepthwiseImpl.XLA

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        fast = self.impl is DepthwiseImpl.SHIFT and self.groups == 1
        conv_fn = {"conv_general_dilated": fast_conv_general_dilated} if fast else {}
        x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride),
                    padding="SAME", feature_group_count=self.groups, use_bias=False,
                    kernel_init=_conv_init, name="conv", **conv_fn)(x)
        x = _bn(train, "bn")(x)
        return self.act(x) if self.act is not None else x


class DepthwiseBN(nn.Module):
    """Depthwise KxK conv + BN + activation."""

    kernel: int
    stride: int
    act: Act
    dw_impl: DepthwiseImpl = DepthwiseImpl.XLA

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = DepthwiseConv(x.shape[-1], self.kernel, self.stride, self.dw_impl, name="dw")(x)
        return self.act(_bn(train, "bn")(x))


def gate_param(module: nn.Module) -> jax.Array:
    """A 0/1 switch held as a parameter (a value, not part of the program) that never learns:
    a channel-padded stage (`mnas_jax.models.padding`) turns SE or a shortcut off with it."""
    return jax.lax.stop_gradient(module.param("gate", nn.initializers.zeros, (), jnp.float32))


class SqueezeExcite(nn.Module):
    """Global mean -> FC reduce + ReLU -> FC expand + sigmoid -> channel scale.

    Dense layers act on (N, C), not (N, 1, 1, C): the latter fails to convert to TFLite.
    ``gated``: applied only where a gate parameter g is 1 (else the identity).
    """

    reduced: int
    gated: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.gated and not self.is_initializing():  # computed only where the gate is on
            return nn.cond(gate_param(self) > 0.5, lambda m, v: m.scale(v), lambda m, v: v, self, x)
        if self.gated:
            gate_param(self)
        return self.scale(x)

    def scale(self, x: jax.Array) -> jax.Array:
        """``x`` times its squeeze-and-excite channel weights."""
        s = jnp.mean(x, axis=(1, 2))
        s = nn.relu(nn.Dense(self.reduced, name="reduce")(s))
        s = nn.sigmoid(nn.Dense(x.shape[-1], name="expand")(s))
        return x * s[:, None, None, :]


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
    """Interleave the channels of an NHWC array across `groups` groups (ShuffleNet shuffle)."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w, groups, c // groups).swapaxes(3, 4).reshape(n, h, w, c)


class Shortcut(nn.Module):
    """The pooling shortcut where the shape changes: avg-pool by the stride, 1x1 conv + BN when
    the channel count changes (``project``: when None, whether the input's channels differ)."""

    features: int
    stride: int
    dw_impl: DepthwiseImpl = DepthwiseImpl.XLA
    project: bool | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.stride > 1:
            s = self.stride
            x = nn.avg_pool(x, (s, s), (s, s), padding="SAME", count_include_pad=False)
        project = x.shape[-1] != self.features if self.project is None else self.project
        if project:
            x = ConvBN(self.features, 1, impl=self.dw_impl, name="proj")(x, train)
        return x


class Residual(nn.Module):
    """Wraps a layer body with its effective shortcut: 'identity', 'pool' (shape change) or none."""

    body: nn.Module
    identity: bool = False
    pool_shortcut: Shortcut | None = None

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = self.body(x, train)
        if self.identity:
            return y + x
        if self.pool_shortcut is not None:
            return y + self.pool_shortcut(x, train)
        return y


def fit_channels(x: jax.Array, channels: int) -> jax.Array:
    """``x`` with its last axis cut or zero-extended to ``channels``."""
    have = x.shape[-1]
    if have >= channels:
        return x[..., :channels]
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, channels - have)])


class GatedResidual(nn.Module):
    """``body(x) + g * shortcut(x)`` with a gate parameter g in {0, 1}: one program for a layer
    with an identity (or parameter-free pooling) shortcut and the same layer without one. The
    shortcut average-pools by ``stride`` as `Shortcut` does."""

    body: nn.Module
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = self.body(x, train)
        if self.stride > 1:
            s = self.stride
            x = nn.avg_pool(x, (s, s), (s, s), padding="SAME", count_include_pad=False)
        return y + gate_param(self) * fit_channels(x, y.shape[-1])


class RegularConv(nn.Module):
    """KxK conv + BN + activation, then optional squeeze-and-excite."""

    features: int
    kernel: int
    stride: int
    se_reduced: int
    act: Act
    dw_impl: DepthwiseImpl = DepthwiseImpl.XLA
    se_gated: bool = False  # SE behind a gate (see SqueezeExcite)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = ConvBN(self.features, self.kernel, self.stride, act=self.act, impl=self.dw_impl,
                   name="conv_bn")(x, train)
        if self.se_reduced:
            x = SqueezeExcite(self.se_reduced, self.se_gated, name="se")(x)
        return x


class SepConv(nn.Module):
    """Depthwise KxK + BN + activation, optional squeeze-and-excite, pointwise 1x1 + BN."""

    features: int
    kernel: int
    stride: int
    se_reduced: int
    act: Act
    dw_impl: DepthwiseImpl = DepthwiseImpl.XLA
    se_gated: bool = False  # SE behind a gate (see SqueezeExcite)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = DepthwiseBN(self.kernel, self.stride, self.act, self.dw_impl, name="dw")(x, train)
        if self.se_reduced:
            x = SqueezeExcite(self.se_reduced, self.se_gated, name="se")(x)
        return ConvBN(self.features, 1, impl=self.dw_impl, name="pw")(x, train)


class MBConv(nn.Module):
    """Inverted bottleneck. `always_expand` (FBNet) keeps the 1x1 expansion even at expansion 1;
    `groups` > 1 groups both 1x1 convs and shuffles channels after the first."""

    features: int
    kernel: int
    stride: int
    expansion: int
    se_reduced: int
    act: Act
    groups: int = 1
    always_expand: bool = False
    dw_impl: DepthwiseImpl = DepthwiseImpl.XLA
    se_gated: bool = False  # SE behind a gate (see SqueezeExcite)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        mid = x.shape[-1] * self.expansion
        if self.expansion > 1 or self.always_expand:
            x = ConvBN(mid, 1, groups=self.groups, act=self.act, impl=self.dw_impl, name="expand")(x, train)
            if self.groups > 1:
                x = channel_shuffle(x, self.groups)
        x = DepthwiseBN(self.kernel, self.stride, self.act, self.dw_impl, name="dw")(x, train)
        if self.se_reduced:
            x = SqueezeExcite(self.se_reduced, self.se_gated, name="se")(x)
        return ConvBN(self.features, 1, groups=self.groups, impl=self.dw_impl, name="project")(x, train)


class FBNetSkip(nn.Module):
    """FBNet's skip choice: identity when the shape is kept, else 1x1 conv + BN + act."""

    features: int
    stride: int
    act: Act
    dw_impl: DepthwiseImpl = DepthwiseImpl.XLA

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.stride == 1 and x.shape[-1] == self.features:
            return x
        return ConvBN(self.features, 1, self.stride, act=self.act, impl=self.dw_impl,
                      name="conv_bn")(x, train)
