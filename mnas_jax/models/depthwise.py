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
import functools
from typing import Any

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


def _pad_and_split(x: jax.Array, k: int, stride: int) -> jax.Array:
    """Pad with TF 'SAME' semantics; for stride 2 also split into the 2x2 pixel phases.

    Returns (P, N, Hq, Wq, C) with P = stride**2 phases, so that every tap (i, j) reads a
    unit-stride window of phase (i % s) * s + (j % s) at offset (i // s, j // s). Strided
    slices would also work but XLA:CPU emits slow gathers for them; phases keep every tap a
    contiguous, vectorisable window.
    """
    n, height, width, c = x.shape
    pad_h, pad_w = same_padding(height, k, stride), same_padding(width, k, stride)
    if stride == 1:
        return jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))[None]
    hp, wp = height + sum(pad_h), width + sum(pad_w)
    extra_h, extra_w = -hp % stride, -wp % stride  # round up to a multiple of the stride
    xp = jnp.pad(x, ((0, 0), (pad_h[0], pad_h[1] + extra_h), (pad_w[0], pad_w[1] + extra_w), (0, 0)))
    hq, wq = (hp + extra_h) // stride, (wp + extra_w) // stride
    xp = xp.reshape(n, hq, stride, wq, stride, c).transpose(2, 4, 0, 1, 3, 5)
    return xp.reshape(stride * stride, n, hq, wq, c)


def _tap(phases: jax.Array, i: int, j: int, stride: int, out_h: int, out_w: int) -> jax.Array:
    """The input window that kernel tap (i, j) multiplies, shape (N, out_h, out_w, C)."""
    p = (i % stride) * stride + (j % stride)
    oi, oj = i // stride, j // stride
    return phases[p, :, oi : oi + out_h, oj : oj + out_w, :]


def _shift_forward(phases: jax.Array, kernel: jax.Array, stride: int, out_h: int, out_w: int) -> jax.Array:
    out = None
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            term = _tap(phases, i, j, stride, out_h, out_w) * kernel[i, j, 0]
            out = term if out is None else out + term
    return out


# Batch chunk of the kernel-gradient loop: about this many bytes of padded input per chunk, so
# the k*k products of a chunk stay in the core's L2 cache instead of streaming through memory.
_CHUNK_BYTES = 1 << 20


def _batch_chunk(n: int, image_bytes: int) -> int:
    """Largest power-of-two divisor of n within _CHUNK_BYTES (at least 2 when n allows)."""
    chunk = 1
    while n % (chunk * 2) == 0 and (chunk * 2 * image_bytes <= _CHUNK_BYTES or chunk < 2):
        chunk *= 2
    return chunk


def _kernel_grad(phases: jax.Array, g: jax.Array, k_h: int, k_w: int, stride: int) -> jax.Array:
    """d(out)/d(kernel) contracted with g: per-tap sums of window * g over batch and space.

    XLA:CPU materialises each tap's product before reducing it; looping over small batch
    chunks keeps those products in cache (2-5x faster than one pass over the whole batch).
    """
    p, n, hq, wq, c = phases.shape
    _, out_h, out_w, _ = g.shape
    chunk = _batch_chunk(n, p * hq * wq * c * phases.dtype.itemsize)
    xs = phases.reshape(p, n // chunk, chunk, hq, wq, c).swapaxes(0, 1)
    gs = g.reshape(n // chunk, chunk, out_h, out_w, c)

    def body(acc: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
        xc, gc = inputs
        sums = [
            jnp.sum(_tap(xc, i, j, stride, out_h, out_w) * gc, axis=(0, 1, 2))
            for i in range(k_h)
            for j in range(k_w)
        ]
        return acc + jnp.stack(sums), None

    acc, _ = jax.lax.scan(body, jnp.zeros((k_h * k_w, c), g.dtype), (xs, gs))
    return acc.reshape(k_h, k_w, 1, c)


def _out_size(x: jax.Array, stride: int) -> tuple[int, int]:
    return -(-x.shape[1] // stride), -(-x.shape[2] // stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _depthwise_shift(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Shift-and-add depthwise convolution (NHWC input, (k, k, 1, C) kernel, TF 'SAME')."""
    phases = _pad_and_split(x, kernel.shape[0], stride)
    return _shift_forward(phases, kernel, stride, *_out_size(x, stride))


def _depthwise_shift_fwd(x: jax.Array, kernel: jax.Array, stride: int) -> tuple[jax.Array, tuple]:
    return _depthwise_shift(x, kernel, stride), (x, kernel)


def _depthwise_shift_bwd(stride: int, res: tuple, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = res
    out_hw = _out_size(x, stride)
    (dx,) = jax.linear_transpose(
        lambda v: _shift_forward(_pad_and_split(v, kernel.shape[0], stride), kernel, stride, *out_hw), x
    )(g)
    phases = _pad_and_split(x, kernel.shape[0], stride)
    return dx, _kernel_grad(phases, g, kernel.shape[0], kernel.shape[1], stride)


_depthwise_shift.defvjp(_depthwise_shift_fwd, _depthwise_shift_bwd)


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


# -- dense convolutions: the same XLA:CPU weakness, in the backward pass ------------------------
# XLA:CPU computes the kernel gradient of a convolution (and the input gradient of a 1x1 one)
# with a slow generic loop: 5-17x slower than the same contraction written as a matrix product.
# ``fast_conv_general_dilated`` is a drop-in for ``lax.conv_general_dilated`` (pass it as
# ``nn.Conv(conv_general_dilated=...)``; same parameters): 1x1 convolutions become one
# ``dot_general``; KxK ones keep XLA's forward and input gradient but get their kernel gradient
# as a sum over taps of (window^T @ output gradient) matrix products.

_NHWC = ("NHWC", "HWIO", "NHWC")


def _is_nhwc(dimension_numbers: Any) -> bool:
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, tuple) and all(isinstance(d, str) for d in dimension_numbers):
        return tuple(dimension_numbers) == _NHWC
    spec = jax.lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC)
    return tuple(dimension_numbers) == tuple(spec)


def _explicit_padding(padding: Any, x: jax.Array, kernel: jax.Array, strides: tuple[int, ...]) -> list[tuple[int, int]]:
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return [(0, 0), (0, 0)]
        if padding.upper() == "SAME":
            return [same_padding(x.shape[1 + a], kernel.shape[a], strides[a]) for a in range(2)]
        raise ValueError(f"unsupported padding {padding!r}")
    return [tuple(p) for p in padding]


def _dense_conv_fwd_xla(x: jax.Array, kernel: jax.Array, stride: int, pads: tuple) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), list(pads), dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _dense_conv(x: jax.Array, kernel: jax.Array, stride: int, pads: tuple) -> jax.Array:
    """KxK NHWC convolution; XLA forward, tap-wise matrix products for the kernel gradient."""
    return _dense_conv_fwd_xla(x, kernel, stride, pads)


def _dense_conv_fwd(x: jax.Array, kernel: jax.Array, stride: int, pads: tuple) -> tuple[jax.Array, tuple]:
    return _dense_conv(x, kernel, stride, pads), (x, kernel)


def _dense_conv_bwd(stride: int, pads: tuple, res: tuple, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = res
    _, dx_fn = jax.vjp(lambda v: _dense_conv_fwd_xla(v, kernel, stride, pads), x)
    (dx,) = dx_fn(g)
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    _, out_h, out_w, _ = g.shape
    rows = []
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            tap = jax.lax.slice(
                xp, (0, i, j, 0),
                (xp.shape[0], i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, xp.shape[3]),
                (1, stride, stride, 1),
            )
            rows.append(jax.lax.dot_general(tap, g, (((0, 1, 2), (0, 1, 2)), ((), ()))))
    dk = jnp.stack(rows).reshape(kernel.shape)
    return dx, dk


_dense_conv.defvjp(_dense_conv_fwd, _dense_conv_bwd)


def fast_conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> jax.Array:
    """``lax.conv_general_dilated`` with CPU-friendly gradients for plain NHWC convolutions."""
    strides = tuple(window_strides)
    plain = (
        _is_nhwc(dimension_numbers)
        and feature_group_count == 1
        and batch_group_count == 1
        and all(d == 1 for d in (lhs_dilation or (1, 1)))
        and all(d == 1 for d in (rhs_dilation or (1, 1)))
        and len(strides) == 2
        and strides[0] == strides[1]
    )
    if not plain:
        return jax.lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count, precision, preferred_element_type,
        )
    pads = tuple(_explicit_padding(padding, lhs, rhs, strides))
    stride = strides[0]
    if rhs.shape[:2] == (1, 1) and pads == ((0, 0), (0, 0)):
        x = lhs if stride == 1 else lhs[:, ::stride, ::stride, :]
        return jax.lax.dot_general(x, rhs[0, 0], (((3,), (0,)), ((), ())), precision=precision)
    return _dense_conv(lhs, rhs, stride, pads)


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
