"""The weight-sharing supernet computes, on a child's path, exactly what the stand-alone child
computes with the weights cut out of it (real Flax modules, CPU)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnas_jax.data.source import Batch
from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.init import fill_variables
from mnas_jax.models.net import build_layer, build_model
from mnas_jax.models.supernet import Supernet, SupernetLayer
from mnas_jax.models.supernet_child import child_variables, layer_variables
from mnas_jax.models.supernet_layout import body_layers, encode_path, layer_slots, supernet_layout
from mnas_jax.space import get_space
from mnas_jax.train.oneshot import evaluate_path
from mnas_jax.train.steps import batch_stats_step, eval_step

SIZE = 16  # the proxy's input size: the same network on smaller images
# op, kernel, se, skip, filters, layers per block: every op, both kernels, SE on and off, all
# three skips, the 0-layer choice of blocks 0 and 6, narrow and wide filters
CHILDREN = {
    "mixed": [0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 3, 1, 0, 0, 2, 1, 2, 0, 1, 2, 1, 2,
              0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 1, 1, 0, 1, 0],
    "deep": [3, 0, 0, 1, 2, 2, 2, 1, 1, 0, 2, 2, 1, 1, 1, 2, 0, 2, 0, 0, 1, 0, 1, 2,
             3, 1, 0, 0, 0, 2, 2, 0, 1, 1, 2, 2, 0, 1, 1, 2, 2, 2],
}


@pytest.fixture(scope="module")
def supernet():
    space = get_space("mnasnet", "fmnist")
    layout = dataclasses.replace(supernet_layout(space), input_size=SIZE)
    model = Supernet(layout, DepthwiseImpl.SHIFT)
    x = jax.ShapeDtypeStruct((1, SIZE, SIZE, 1), jnp.float32)
    path = jax.tree.map(jnp.asarray, encode_path(layout, space.decode([0] * 42)))
    shapes = jax.eval_shape(lambda v, p: model.init({"params": jax.random.key(0)}, v, p, False), x, path)
    variables = fill_variables(shapes, 0)
    # BN shifts and biases away from zero, so a padded channel that leaked would show
    rng = np.random.default_rng(1)
    variables = jax.tree_util.tree_map_with_path(
        lambda p, a: a + 0.2 * rng.standard_normal(a.shape).astype(np.float32)
        if getattr(p[-1], "key", "") in ("bias", "scale", "mean") else a, variables)
    return space, layout, model, variables


@pytest.mark.slow  # the whole supernet, eagerly: ~2-5 min; its layers: test_slot_computes_the_layer
@pytest.mark.parametrize("name", sorted(CHILDREN))
def test_path_computes_the_child(supernet, name):
    space, layout, model, variables = supernet
    spec = dataclasses.replace(space.decode(CHILDREN[name]), input_size=SIZE)
    path = jax.tree.map(jnp.asarray, encode_path(layout, spec))
    child = build_model(spec, DepthwiseImpl.SHIFT)
    mine = child_variables(layout, variables, spec)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((4, SIZE, SIZE, 1)), jnp.float32)
    rngs = {"dropout": jax.random.key(3)}
    got, got_stats = model.apply(variables, x, path, True, mutable=["batch_stats"], rngs=rngs)
    want, want_stats = child.apply(mine, x, True, mutable=["batch_stats"], rngs=rngs)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    updated = child_variables(layout, {"params": variables["params"], **got_stats}, spec)["batch_stats"]
    for a, b in zip(jax.tree.leaves(updated), jax.tree.leaves(want_stats["batch_stats"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.apply(variables, x, path, False), child.apply(mine, x, False),
                               rtol=1e-4, atol=2e-5)


def _distinct_layers():
    """(spec, slot, layer) of the example children, one per kind of layer."""
    space = get_space("mnasnet", "fmnist")
    layout = supernet_layout(space)
    seen, out = set(), []
    for tokens in CHILDREN.values():
        spec = space.decode(tokens)
        for slot, layer in zip(layer_slots(layout, spec), body_layers(spec)):
            kind = (layer.op, layer.expansion, layer.kernel, layer.se_ratio, layer.skip, layer.stride,
                    layer.in_channels == layer.out_channels)
            if kind not in seen and len(out) < 6:
                seen.add(kind)
                out.append((spec, slot, layer))
    return layout, out


def test_slot_computes_the_layer():
    """Each kind of layer of the example children (every op, both kernels, SE on and off, every
    shortcut, strides 1 and 2): its slot on the child's path computes the stand-alone layer with
    the weights cut out of the slot's, and carries exact zeros in the channels the child lacks."""
    layout, cases = _distinct_layers()
    rng = np.random.default_rng(6)
    for spec, slot, layer in cases:
        module = SupernetLayer(slot, jax.nn.relu, DepthwiseImpl.XLA)
        p = jax.tree.map(jnp.asarray, encode_path(layout, spec))[slot.name]
        x = jnp.asarray(rng.standard_normal((2, slot.in_size, slot.in_size, slot.in_width)), jnp.float32) * p["cin"]
        shapes = jax.eval_shape(lambda v: module.init(jax.random.key(0), v, p, False), x)
        variables = jax.tree_util.tree_map_with_path(
            lambda q, a: a + 0.2 * rng.standard_normal(a.shape).astype(np.float32)
            if getattr(q[-1], "key", "") in ("bias", "scale", "mean") else a, fill_variables(shapes, 1))
        child = build_layer(layer, DepthwiseImpl.XLA, None)
        mine = layer_variables(variables, layer)
        run = jax.jit(lambda v, x, train, m: m.apply(v, x, *(() if m is child else (p,)), train, mutable=["batch_stats"]),
                      static_argnums=(2, 3))
        got, _ = run(variables, x, True, module)
        want, _ = run(mine, x[..., :layer.in_channels], True, child)
        np.testing.assert_allclose(got[..., :layer.out_channels], want, rtol=1e-4, atol=2e-5, err_msg=layer.key)
        assert float(jnp.abs(got[..., layer.out_channels:]).max(initial=0.0)) == 0.0, layer.key
    assert len({(layer.op, layer.expansion) for _, _, layer in cases}) == 3  # conv, sepconv, mbconv e3/e6


def _slot_grads(layout, spec, block):
    """Gradients of one layer slot's weights on the path of `spec` (first layer of `block`)."""
    slot = layout.blocks[block].layers[0]
    path = jax.tree.map(jnp.asarray, encode_path(layout, spec))[slot.name]
    layer = SupernetLayer(slot, jax.nn.relu, DepthwiseImpl.SHIFT)
    size = slot.in_size
    x = jnp.asarray(np.random.default_rng(4).standard_normal((2, size, size, slot.in_width)), jnp.float32)
    x = x * path["cin"]  # the child's channels only, as the block before hands them on
    variables = fill_variables(jax.eval_shape(lambda v: layer.init(jax.random.key(0), v, path, False), x), 0)

    def loss(params):
        out, _ = layer.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, path, True,
                             mutable=["batch_stats"])
        return jnp.sum(out ** 2)

    return jax.jit(jax.grad(loss))(variables["params"])


def test_gradients_stay_on_the_path():
    """Weights the child does not use (other ops, channels beyond its width, the outer ring of a
    5x5 kernel for a 3x3 child) get exactly zero gradient."""
    space = get_space("mnasnet", "fmnist")
    layout = dataclasses.replace(supernet_layout(space), input_size=SIZE)
    spec = dataclasses.replace(space.decode(CHILDREN["mixed"]), input_size=SIZE)
    zero = lambda a: float(jnp.abs(a).max()) == 0.0  # noqa: E731
    b1 = _slot_grads(layout, spec, 1)  # block 1: a 3x3 separable conv with SE, 20 filters
    assert zero(b1["conv"]["kernel"]) and zero(b1["mb_project"]["kernel"])  # the other ops
    assert zero(b1["sep_pw"]["kernel"][..., 20:]) and not zero(b1["sep_pw"]["kernel"][..., :20])
    assert zero(b1["sep_dw"]["kernel"][0]) and not zero(b1["sep_dw"]["kernel"][1:4, 1:4])
    b4 = _slot_grads(layout, spec, 4)["conv"]["kernel"]  # block 4: 3x3 regular conv, 72 filters
    assert zero(b4[0]) and zero(b4[..., 72:]) and not zero(b4[1:4, 1:4, :, :72])


def test_a_space_without_supernet_stops_in_one_line():
    with pytest.raises(ValueError, match="no weight-sharing supernet"):
        supernet_layout(get_space("nasbench-macro", "cifar10"))


@pytest.mark.slow  # ~5 min on a busy core
def test_a_path_is_scored_like_the_recalibrated_child(supernet):
    """`evaluate_path` = the child's evaluation after BN recalibration on the same images."""
    space, layout, model, variables = supernet
    spec = dataclasses.replace(space.decode(CHILDREN["mixed"]), input_size=SIZE)
    path = jax.tree.map(jnp.asarray, encode_path(layout, spec))
    rng = np.random.default_rng(5)
    images = lambda n: jnp.asarray(rng.standard_normal((n, SIZE, SIZE, 1)), jnp.float32)  # noqa: E731
    calibration, val = images(8), Batch(images(6), jnp.asarray(rng.integers(0, 10, 6), jnp.int32), jnp.ones(6))
    got = evaluate_path(variables["params"], variables["batch_stats"], calibration, val.images, val.labels,
                        val.mask, path, model=model)
    child = build_model(spec, DepthwiseImpl.SHIFT)
    mine = child_variables(layout, variables, spec)
    stats = batch_stats_step(mine, Batch(calibration, jnp.zeros(8, jnp.int32), jnp.ones(8)), model=child)
    want = eval_step({"params": mine["params"], "batch_stats": stats}, val, model=child)
    for k in ("correct", "loss", "count"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
