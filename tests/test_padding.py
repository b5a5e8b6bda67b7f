"""Channel-padded stages (issue 20, item 2): the same training as Net's own stages, far fewer
programs, and children that differ only in width share executables."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from mnas_jax.data import ArraySource, load_fashion_mnist
from mnas_jax.data.fashion_mnist import resolve_dir
from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.padding import can_pad, padded_width
from mnas_jax.models.stages import layer_stage_key, net_stages
from mnas_jax.space import ArchSpec, BlockSpec
from mnas_jax.train import get_preset, train_and_evaluate
from mnas_jax.train.stage_compile import StageCache

# SE on and off, an identity repeat (gate 1), a stride-2 layer without shortcut (gate 0), pool
# skips with a projection, a pool skip without one (stride 2, same width), a 0-layer block, and
# widths below their padded width (stem and block 0: 12 -> 20, blocks 3-4: 24 -> 32).
SPEC = ArchSpec(
    blocks=(BlockSpec("mbconv", 3, 3, 0.25, "identity", 12, 2, 2), BlockSpec("sepconv", 5, 1, 0.0, "pool", 20, 1, 2),
            BlockSpec("mbconv", 5, 6, 0.25, "identity", 16, 0, 1), BlockSpec("conv", 3, 1, 0.25, "pool", 24, 1, 1),
            BlockSpec("mbconv", 3, 3, 0.0, "pool", 24, 1, 2)),
    input_size=16, input_channels=1, num_classes=10, stem_channels=12, stem_stride=1, head_channels=32, dropout=0.2,
)
# SPEC with other widths that pad to the same widths
NARROW = dataclasses.replace(SPEC, stem_channels=10, blocks=(
    dataclasses.replace(SPEC.blocks[0], out_channels=10), dataclasses.replace(SPEC.blocks[1], out_channels=17),
    *SPEC.blocks[2:3], dataclasses.replace(SPEC.blocks[3], out_channels=28),
    dataclasses.replace(SPEC.blocks[4], out_channels=28)))
STEPS = 3  # rounding differences grow fast in a BN network's first steps (see test_short_runs.AGREE_STEPS)


@pytest.fixture(scope="module")
def fmnist() -> ArraySource:
    if not (resolve_dir() / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed")
    return load_fashion_mnist(input_size=16)


@pytest.fixture(scope="module")
def runs(fmnist: ArraySource) -> dict:
    """SPEC trained a few proxy steps with Net's own stages and with padded ones (one cache)."""
    config = dataclasses.replace(get_preset("proxy"), max_steps=STEPS, log_every=1, layerwise=True,
                                 bn_recalibration_examples=64, val_limit=256)
    out: dict = {"config": config, "cache": StageCache()}
    for pad in (False, True):
        seen: dict = {}
        res = train_and_evaluate(SPEC, dataclasses.replace(config, pad_channels=pad), jax.random.key(0), fmnist,
                                 stage_cache=out["cache"], on_trained=lambda s, v: seen.update(state=s, evaluated=v))
        out[pad] = (res, seen)
    return out


def _assert_same_variables(a: dict, b: dict) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.shape == y.shape
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=1e-5)


def test_padded_training_equals_unpadded(runs: dict) -> None:
    """Same losses, same evaluation; the variables handed back have Net's shapes and values; the
    padded weights are still exact zeros after training."""
    (plain, a), (padded, b) = runs[False], runs[True]
    assert plain.ok and padded.ok, (plain.reason, padded.reason)
    np.testing.assert_allclose([v for _, v in padded.loss_curve], [v for _, v in plain.loss_curve], rtol=1e-5)
    assert padded.val_loss == pytest.approx(plain.val_loss, rel=1e-4)
    _assert_same_variables(a["state"].raw_params(), b["state"].raw_params())
    _assert_same_variables(a["state"].eval_variables(), b["state"].eval_variables())
    _assert_same_variables(a["evaluated"], b["evaluated"])
    state = b["state"]
    assert any(s.padding is not None for s in state.stages)
    for params, padder in zip(state.params, state.padders):
        if padder is not None:  # cut back and padded again: the padding held nothing but zeros
            again = padder.pad("params", padder.unpad("params", params))
            for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_children_differing_in_width_share_padded_stages(runs: dict, fmnist: ArraySource) -> None:
    """A child with other widths in the same buckets compiles nothing once SPEC's padded stages
    are compiled; Net's own stages of the two differ."""
    impl = DepthwiseImpl.SHIFT
    assert [s.key for s in net_stages(SPEC, impl, pad=True)] == [s.key for s in net_stages(NARROW, impl, pad=True)]
    assert not {s.key for s in net_stages(SPEC, impl)} & {s.key for s in net_stages(NARROW, impl)}
    cache = runs["cache"]
    misses, hits = cache.misses, cache.hits
    config = dataclasses.replace(runs["config"], max_steps=1, pad_channels=True)
    res = train_and_evaluate(NARROW, config, jax.random.key(1), fmnist, stage_cache=cache)
    assert res.ok, res.reason
    assert cache.misses == misses and cache.hits > hits


def test_padding_is_opt_in() -> None:
    """Only the search's presets pad; Net's own stage keys are the layer's lookup-table key."""
    assert not get_preset("paper").pad_channels
    impl = DepthwiseImpl.SHIFT
    stages = net_stages(SPEC, impl)
    assert all(s.padding is None for s in stages)
    assert stages[1].key == f"layer:{SPEC.layers()[1].key}:shift" == layer_stage_key(SPEC.layers()[1], impl)
    assert [padded_width(c) for c in (1, 12, 20, 21, 400, 401)] == [20, 20, 20, 32, 400, 512]
    grouped = dataclasses.replace(SPEC, blocks=(BlockSpec("ir", 3, 2, 0.0, "none", 16, 1, 1, groups=2),))
    assert can_pad(SPEC) and not can_pad(grouped)
    assert all(s.padding is None for s in net_stages(grouped, impl, pad=True))
