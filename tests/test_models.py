"""Flax models: every sampled architecture builds, initialises and runs; costs agree with the
parameters Flax creates; train/eval modes behave."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnas_jax.costs import arch_macs, arch_params
from mnas_jax.models import build_model, init_variables
from mnas_jax.space import get_space, reference, reference_names, sample_tokens


def _n_params(variables) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))


def _forward(spec, batch=2, train=False):
    model = build_model(spec)
    x = jax.random.normal(jax.random.key(1), (batch, spec.input_size, spec.input_size,
                                              spec.input_channels))
    variables = init_variables(model, x.shape, seed=0)
    if train:
        y, _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                           rngs={"dropout": jax.random.key(2)})
    else:
        y = model.apply(variables, x)
    return variables, y


@pytest.mark.parametrize("name,setting,n", [("mnasnet", "fmnist", 2), ("fbnet", None, 2)])
def test_sampled_archs_run(name, setting, n):
    space = get_space(name, setting)
    for tokens in sample_tokens(space.choices, 11, n):
        spec = space.decode(tokens)
        variables, y = _forward(spec)
        assert y.shape == (2, spec.num_classes)
        assert bool(jnp.all(jnp.isfinite(y)))
        assert _n_params(variables) == arch_params(spec)


@pytest.mark.slow
@pytest.mark.parametrize("name,setting", [("mnasnet", "fmnist"), ("fbnet", None)])
def test_sampled_archs_run_many(name, setting):
    space = get_space(name, setting)
    for tokens in sample_tokens(space.choices, 12, 12):
        spec = space.decode(tokens)
        variables, y = _forward(spec)
        assert y.shape == (2, spec.num_classes) and bool(jnp.all(jnp.isfinite(y)))


def test_init_variables_matches_flax_tree():
    spec = reference("mnasnet-a1", "fmnist")
    model = build_model(spec)
    x = jnp.zeros((1, 32, 32, 1))
    fast = init_variables(model, x.shape, seed=3)
    ref = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    assert jax.tree.structure(fast) == jax.tree.structure(ref)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)))
    again = init_variables(model, x.shape, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(again)))


@pytest.mark.slow  # 19 s; the fmnist samples above run by default
def test_sampled_imagenet_archs_build_and_run():
    space = get_space("mnasnet", "imagenet")
    specs = [space.decode(t) for t in sample_tokens(space.choices, 5, 8)]
    for spec in specs:  # shapes and parameter counts of all, without compiling each
        model = build_model(spec)
        x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
        v = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
        out = jax.eval_shape(lambda v, x: model.apply(v, x), v, x)
        assert out.shape == (1, 1000)
        assert _n_params(v) == arch_params(spec)
    _, y = _forward(specs[0], batch=1)  # and one real forward pass at full size
    assert y.shape == (1, 1000) and bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("name", reference_names())
def test_reference_param_counts_match_costs(name):
    spec = reference(name)
    model = build_model(spec)
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    v = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    assert _n_params(v) == arch_params(spec)


def test_train_mode_updates_batch_stats_and_uses_dropout():
    spec = reference("mnasnet-small", "fmnist")
    model = build_model(spec)
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, 1))
    v = init_variables(model, x.shape, seed=0)
    y1, upd = model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(3)})
    y2, _ = model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(4)})
    assert not np.allclose(y1, y2)  # dropout differs by key
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), v["batch_stats"], upd["batch_stats"])
    assert any(jax.tree.leaves(changed))
    e1, e2 = model.apply(v, x), model.apply(v, x)
    np.testing.assert_array_equal(e1, e2)  # eval is deterministic


def test_pool_skip_and_identity_shortcut_present():
    space = get_space("mnasnet", "fmnist")
    tokens = np.zeros(42, np.int32)
    tokens[3::6] = 0  # every block: pool skip
    tokens[4::6] = 2  # filters x1.25: first layers change channels
    spec = space.decode(tokens)
    v, y = _forward(spec)
    names = set(v["params"].keys())
    layer_params = [v["params"][k] for k in sorted(names) if k.startswith("layer")]
    assert any("pool_shortcut" in p for p in layer_params)
    assert y.shape == (2, 10)


def test_paper_multiply_adds():
    # MNASNET.md: 300M, 312M, 315M and about 68M at 224x224.
    for name, paper in [("mobilenetv2", 300e6), ("mnasnet-a1", 312e6), ("mnasnet-b1", 315e6),
                        ("mnasnet-small", 68e6)]:
        assert abs(arch_macs(reference(name)) / paper - 1) < 0.02, name
