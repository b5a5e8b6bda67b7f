"""The CPU convolution paths equal XLA's convolutions in outputs and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnas_jax.models.depthwise import (
    DepthwiseConv,
    DepthwiseImpl,
    default_impl,
    depthwise_conv,
    fast_conv_general_dilated,
    same_padding,
)

TOL = dict(rtol=1e-5, atol=1e-5)


def _loss(fn):
    def loss(x, w):  # a cotangent that differs per output element
        y = fn(x, w)
        return jnp.sum(jnp.tanh(y) * jnp.arange(1, 1 + y.size).reshape(y.shape) / y.size)

    return loss


@pytest.mark.parametrize(
    "n,size,channels,kernel,stride",
    # even/odd sizes (TF's asymmetric SAME padding), k 3/5, stride 1/2, batch sizes that the
    # kernel-gradient loop chunks differently (6 -> chunks of 2, 5 -> chunks of 1)
    [(6, 8, 5, 3, 2), (5, 7, 3, 5, 2), (4, 9, 4, 5, 1), (3, 6, 3, 3, 1)],
)
def test_shift_equals_grouped_conv(n: int, size: int, channels: int, kernel: int, stride: int) -> None:
    kx, kw = jax.random.split(jax.random.key(n * 100 + size))
    x = jax.random.normal(kx, (n, size, size, channels))
    w = jax.random.normal(kw, (kernel, kernel, 1, channels))
    fns = {impl: (lambda x, w, impl=impl: depthwise_conv(x, w, stride=stride, impl=impl)) for impl in DepthwiseImpl}
    ref, out = (jax.jit(fns[i])(x, w) for i in (DepthwiseImpl.XLA, DepthwiseImpl.SHIFT))
    assert out.shape == ref.shape == (n, -(-size // stride), -(-size // stride), channels)
    np.testing.assert_allclose(out, ref, **TOL)
    g_ref, g_out = (jax.jit(jax.grad(_loss(fns[i]), argnums=(0, 1)))(x, w) for i in (DepthwiseImpl.XLA, DepthwiseImpl.SHIFT))
    for a, b in zip(g_out, g_ref):
        np.testing.assert_allclose(a, b, **TOL)


def test_same_padding_puts_the_odd_pixel_after() -> None:
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(8, 5, 1) == (2, 2)
    assert same_padding(8, 1, 2) == (0, 0)


def test_module_parameters_identical_across_impls() -> None:
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 6))
    mods = {impl: DepthwiseConv(6, 3, 2, impl) for impl in DepthwiseImpl}
    shapes = {impl: jax.eval_shape(m.init, jax.random.key(1), x) for impl, m in mods.items()}
    assert shapes[DepthwiseImpl.XLA] == shapes[DepthwiseImpl.SHIFT]
    p = jax.jit(mods[DepthwiseImpl.XLA].init)(jax.random.key(1), x)
    outs = {impl: jax.jit(m.apply)(p, x) for impl, m in mods.items()}
    np.testing.assert_allclose(outs[DepthwiseImpl.SHIFT], outs[DepthwiseImpl.XLA], **TOL)


def test_default_impl_by_backend() -> None:
    assert default_impl("cpu") is DepthwiseImpl.SHIFT
    assert default_impl("gpu") is DepthwiseImpl.XLA
    assert default_impl("tpu") is DepthwiseImpl.XLA
    with pytest.raises(ValueError):
        depthwise_conv(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 1, 2)), stride=1, impl="bogus")


@pytest.mark.parametrize(
    "kernel,stride,cin,cout,groups,padding",
    [(1, 1, 5, 7, 1, "SAME"), (1, 2, 5, 7, 1, "SAME"), (3, 2, 3, 4, 1, "SAME"),
     (5, 1, 2, 3, 1, [(1, 2), (2, 1)]), (1, 1, 4, 6, 2, "VALID")],
)
def test_fast_dense_conv_equals_xla(kernel: int, stride: int, cin: int, cout: int, groups: int, padding) -> None:
    kx, kw = jax.random.split(jax.random.key(kernel * 10 + stride))
    x = jax.random.normal(kx, (3, 9, 9, cin))
    w = jax.random.normal(kw, (kernel, kernel, cin // groups, cout))
    dn = ("NHWC", "HWIO", "NHWC")

    def ref(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=dn, feature_group_count=groups)

    def fast(x, w):
        return fast_conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=dn, feature_group_count=groups)

    np.testing.assert_allclose(jax.jit(fast)(x, w), jax.jit(ref)(x, w), **TOL)
    for a, b in zip(jax.jit(jax.grad(_loss(fast), argnums=(0, 1)))(x, w), jax.jit(jax.grad(_loss(ref), argnums=(0, 1)))(x, w)):
        np.testing.assert_allclose(a, b, **TOL)


def test_fast_dense_conv_drops_into_flax_conv() -> None:
    import flax.linen as nn

    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    plain, fast = nn.Conv(4, (3, 3), padding="SAME"), nn.Conv(4, (3, 3), padding="SAME", conv_general_dilated=fast_conv_general_dilated)
    params = plain.init(jax.random.key(1), x)
    np.testing.assert_allclose(fast.apply(params, x), plain.apply(params, x), **TOL)


@pytest.mark.slow
def test_whole_model_shift_path_equals_xla_path() -> None:
    """Slow (45 s on 2 cores; the default suite checks every op of the path against XLA above).
    The CPU training path (shift depthwise + matrix-product conv gradients) and the standard
    one give the same logits and parameter gradients, with the same parameter tree: a small net
    with every layer kind (regular conv with a pooling shortcut, MBConv + SE + identity, sepconv)."""
    from mnas_jax.models import build_model, init_variables
    from mnas_jax.space import ArchSpec, BlockSpec

    spec = ArchSpec(blocks=(BlockSpec("conv", 3, 1, 0.0, "pool", 12, 1, 2),
                            BlockSpec("mbconv", 5, 3, 0.25, "identity", 12, 2, 1),
                            BlockSpec("sepconv", 3, 1, 0.0, "none", 16, 1, 2)),
                    input_size=32, input_channels=1, num_classes=10, stem_channels=8,
                    stem_stride=1, head_channels=32)
    xla, shift = build_model(spec, DepthwiseImpl.XLA), build_model(spec, DepthwiseImpl.SHIFT)
    variables = init_variables(xla, (1, 32, 32, 1), seed=0)
    assert jax.tree.structure(variables) == jax.tree.structure(init_variables(shift, (1, 32, 32, 1), seed=0))
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 1))

    def loss(params, model):
        out, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"],
                             rngs={"dropout": jax.random.key(2)})
        return jnp.sum(out**2), out

    (la, oa), ga = jax.value_and_grad(loss, has_aux=True)(variables["params"], xla)
    (lb, ob), gb = jax.value_and_grad(loss, has_aux=True)(variables["params"], shift)
    np.testing.assert_allclose(ob, oa, rtol=1e-4, atol=1e-4)
    scale = max(float(jnp.abs(a).max()) for a in jax.tree.leaves(ga))  # float noise is relative to it
    for a, b in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-4 * scale)
