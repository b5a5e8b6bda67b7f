"""Depthwise convolution with a choice of implementation.

The parameters are the same as a flax ``nn.Conv`` with ``feature_group_count=C`` (kernel shape
``(k, k, 1, C)``, no bias), so a model trained with one implementation exports with the other.
Exports always use ``DepthwiseImpl.XLA``: jax2tf turns it into TFLite's DEPTHWISE_CONV_2D.

Why a second implementation: XLA:CPU lowers a grouped convolution (``feature_group_count=C``)
to a slow generic loop, in the forward and even more in the backward pass. Written as a sum over
the k*k kernel taps of (strided slice of the padded input) x (per-channel weight), the whole
convolution becomes one elementwise fusion that XLA:CPU vectorises over channels, and its
gradient is again slices, pads and channel reductions. Same arithmetic, same result (up to
float summation order).
"""

from __future__ import annotations

import enum

import flax.linen as nn
import jax
import jax.numpy as jnp


class DepthwiseImpl(str, enum.Enum):
    """How a depthwise convolution is computed."""

    XLA = "xla"  # lax.conv_general_dilated with feature_group_count=C
    SHIFT = "shift"  # sum over kernel taps of strided input slices times per-channel weights


def default_impl(backend: str | None = None) -> DepthwiseImpl:
    """The fastest implementation for a backend: SHIFT on CPU, XLA on GPU/TPU."""
    backend = backend or jax.default_backend()
    return DepthwiseImpl.SHIFT if backend == "cpu" else DepthwiseImpl.XLA


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) along one axis; the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _depthwise_shift(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Shift-and-add depthwise convolution (NHWC input, (k, k, 1, C) kernel)."""
    k_h, k_w = kernel.shape[0], kernel.shape[1]
    _, height, width, _ = x.shape
    pad_h = same_padding(height, k_h, stride)
    pad_w = same_padding(width, k_w, stride)
    out_h, out_w = -(-height // stride), -(-width // stride)
    xp = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    out = None
    for i in range(k_h):
        for j in range(k_w):
            tap = jax.lax.slice(
                xp,
                (0, i, j, 0),
                (xp.shape[0], i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, xp.shape[3]),
                (1, stride, stride, 1),
            )
            term = tap * kernel[i, j, 0]
            out = term if out is None else out + term
    return out


def depthwise_conv(
    x: jax.Array, kernel: jax.Array, *, stride: int, impl: DepthwiseImpl = DepthwiseImpl.XLA
) -> jax.Array:
    """NHWC depthwise convolution with TF 'SAME' padding."""
    if impl == DepthwiseImpl.SHIFT:
        return _depthwise_shift(x, kernel, stride)
    if impl != DepthwiseImpl.XLA:
        raise ValueError(f"unknown depthwise impl {impl!r}; use one of {[m.value for m in DepthwiseImpl]}")
    channels = x.shape[-1]
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels,
    )


class DepthwiseConv(nn.Module):
    """Depthwise KxK convolution (no bias: a batch norm follows)."""

    features: int
    kernel_size: int
    stride: int = 1
    impl: DepthwiseImpl = DepthwiseImpl.XLA
    kernel_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
        2.0, "fan_out", "normal"
    )

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, 1, self.features), jnp.float32)
        return depthwise_conv(x, kernel.astype(x.dtype), stride=self.stride, impl=self.impl)
