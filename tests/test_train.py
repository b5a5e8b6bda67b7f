"""Child training: the recipe's math, real training steps on Fashion-MNIST, failure as data,
1 vs 2 devices, checkpoints, the CLI's missing-dataset error. Uses a tiny net to stay fast."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mnas_jax.data import ArraySource, Batch, load_fashion_mnist
from mnas_jax.data.fashion_mnist import INSTALL_HINT, resolve_dir
from mnas_jax.space import ArchSpec, BlockSpec, reference
from mnas_jax.train import FAILED, OK, TrainConfig, get_preset, smoke, train_and_evaluate
from mnas_jax.train.optim import decay_mask, ema_decay_at, learning_rate_schedule, make_optimizer
from mnas_jax.train.sharding import distributed_from_env

ROOT = Path(__file__).resolve().parents[1]

# Stem, an MBConv with SE and a residual, a stride-2 sepconv, a 1x1 head: every layer kind.
TINY = ArchSpec(
    blocks=(
        BlockSpec("mbconv", 3, 3, 0.25, "identity", 8, 2, 2),
        BlockSpec("sepconv", 5, 1, 0.0, "none", 16, 1, 2),
    ),
    input_size=32, input_channels=1, num_classes=10, stem_channels=8, stem_stride=1, head_channels=32,
)


@pytest.fixture(scope="module")
def fmnist() -> ArraySource:
    if not (resolve_dir() / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed")
    return load_fashion_mnist(input_size=32)


# -- the recipe, closed form -------------------------------------------------------------------


def test_learning_rate_warmup_then_staircase() -> None:
    config = TrainConfig(batch_size=512, warmup_epochs=5, decay_epochs=2.4, decay_rate=0.97)
    lr = learning_rate_schedule(config, steps_per_epoch=100, total_steps=35_000)
    peak = 0.016 * 512 / 256
    assert float(lr(0)) == 0.0
    assert float(lr(250)) == pytest.approx(peak * 0.5, rel=1e-5)
    assert float(lr(500)) == pytest.approx(peak * 0.97 ** 2, rel=1e-5)  # 500 // 240 = 2 decays, counted from 0
    assert float(lr(10_000)) == pytest.approx(peak * 0.97 ** (10_000 // 240), rel=1e-5)
    short = learning_rate_schedule(config, steps_per_epoch=100, total_steps=500)  # 5 epochs
    assert float(short(25)) == pytest.approx(peak * 0.5, rel=1e-5)  # warm-up capped at 10% of the run


def test_rmsprop_has_tf1_semantics() -> None:
    config = dataclasses.replace(smoke(), weight_decay=0.0, batch_size=256, warmup_epochs=0.0, max_warmup_fraction=0.0)
    tx = make_optimizer(config, steps_per_epoch=1000, total_steps=1000)
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 3.0])}
    state = tx.init(params)
    u1, state = tx.update(grads, state, params)
    u2, _ = tx.update(grads, state, params)
    lr, g = 0.016, np.array([0.5, 3.0])
    ms1 = 0.9 * 1.0 + 0.1 * g**2  # accumulator starts at 1
    mom1 = lr * g / np.sqrt(ms1 + 1e-3)  # epsilon inside the square root
    ms2 = 0.9 * ms1 + 0.1 * g**2
    mom2 = 0.9 * mom1 + lr * g / np.sqrt(ms2 + 1e-3)
    np.testing.assert_allclose(-u1["w"], mom1, rtol=1e-6)
    np.testing.assert_allclose(-u2["w"], mom2, rtol=1e-6)


def test_weight_decay_only_on_kernels() -> None:
    params = {"conv": {"kernel": jnp.ones(2)}, "bn": {"scale": jnp.ones(2), "bias": jnp.ones(2)},
              "classifier": {"kernel": jnp.ones(2), "bias": jnp.ones(2)}}
    mask = decay_mask(params)
    assert mask == {"conv": {"kernel": True}, "bn": {"scale": False, "bias": False},
                    "classifier": {"kernel": True, "bias": False}}
    config = dataclasses.replace(smoke(), weight_decay=0.1)
    tx = optax.chain(optax.add_decayed_weights(config.weight_decay, mask=decay_mask))
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    assert float(updates["conv"]["kernel"][0]) == pytest.approx(0.1)
    assert float(updates["bn"]["scale"][0]) == 0.0 and float(updates["classifier"]["bias"][0]) == 0.0


def test_ema_warms_up_like_tf() -> None:
    assert float(ema_decay_at(0.9999, 0)) == pytest.approx(0.1)
    assert float(ema_decay_at(0.9999, 90)) == pytest.approx(91 / 100)
    assert float(ema_decay_at(0.9999, 10**7)) == pytest.approx(0.9999)


def test_presets_and_config_validation() -> None:
    assert get_preset("paper") == TrainConfig()
    proxy = get_preset("proxy")
    assert proxy.max_steps and proxy.train_limit and not proxy.evaluate_test and proxy.checkpoint_dir is None
    with pytest.raises(ValueError, match="unknown training preset"):
        get_preset("fast")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="dw_impl"):
        TrainConfig(dw_impl="cuda")
    assert distributed_from_env({}) is None
    cfg = distributed_from_env({"MNAS_COORDINATOR_ADDRESS": "h:1234", "MNAS_NUM_PROCESSES": "4", "MNAS_PROCESS_ID": "2"})
    assert (cfg.num_processes, cfg.process_id) == (4, 2)


# -- real training -----------------------------------------------------------------------------


def _short(**changes) -> TrainConfig:
    base = dataclasses.replace(smoke(), max_steps=60, batch_size=32, train_limit=4096, val_limit=1024,
                               warmup_epochs=0.0, log_every=1, bn_recalibration_examples=512,
                               base_learning_rate=0.064)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def short_run(fmnist: ArraySource):
    """60 real steps of the tiny net, one loss per step (shared by the tests below)."""
    return train_and_evaluate(TINY, _short(), jax.random.key(0), fmnist)


def test_training_learns_and_reports(short_run) -> None:
    result = short_run
    assert result.status == OK and result.reason is None
    assert result.steps == 60 and [s for s, _ in result.loss_curve] == list(range(1, 61))
    losses = [l for _, l in result.loss_curve]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert result.val_accuracy > 0.2  # 10 classes: chance is 0.1 (60 steps reach ~0.3)
    assert result.test_accuracy is None  # test set only when asked
    assert result.compile_seconds > 0 and result.images_per_second > 0
    assert result.dw_impl == "shift" and result.num_devices == 1
    out = json.loads(json.dumps(result.to_dict()))
    assert out["arch_id"] == TINY.arch_id


class _NaNImages:
    """A data source whose training images are NaN: the child must fail, not raise."""

    def __init__(self, inner: ArraySource) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def train_batches(self, *args, **kwargs):
        for b in self.inner.train_batches(*args, **kwargs):
            yield Batch(np.full_like(b.images, np.nan), b.labels, b.mask)


def test_nan_child_fails_as_data_and_caller_continues(fmnist: ArraySource) -> None:
    config = dataclasses.replace(smoke(), max_steps=4, log_every=2, bn_recalibration_examples=0)
    failed = train_and_evaluate(TINY, config, jax.random.key(0), _NaNImages(fmnist))  # no exception
    assert failed.status == FAILED and "non-finite" in failed.reason
    assert "step 1" in failed.reason  # the first bad step of the checked window
    assert failed.val_accuracy is None and failed.to_dict()["status"] == "failed"


def test_checkpoints_resume_a_full_training(fmnist: ArraySource, tmp_path: Path) -> None:
    config = dataclasses.replace(smoke(), max_steps=4, log_every=2, checkpoint_dir=str(tmp_path / "ckpt"),
                                 checkpoint_every_epochs=2 / 8, bn_recalibration_examples=0,  # every 2 steps
                                 layerwise=False)
    first = train_and_evaluate(TINY, config, jax.random.key(0), fmnist)
    assert first.status == OK and sorted(p.name for p in (tmp_path / "ckpt").iterdir())[-1] == "4"
    seen: list[tuple[int, int, float | None]] = []
    resumed = train_and_evaluate(TINY, dataclasses.replace(config, max_steps=6), jax.random.key(0), fmnist,
                                 on_step=lambda *a: seen.append(a))
    assert resumed.status == OK and resumed.steps == 6
    assert [s for s, _ in resumed.loss_curve] == [6]  # only steps 5-6 ran
    assert [(s, t) for s, t, _ in seen] == [(5, 6), (6, 6)]  # the progress callback saw them
    assert seen[0][2] is None and seen[1][2] == resumed.loss_curve[-1][1]


_DEVICE_SCRIPT = """
import json, sys, jax
sys.path.insert(0, {root!r})
from tests.test_train import TINY, _short
from mnas_jax.data import load_fashion_mnist
from mnas_jax.train import train_and_evaluate
config = _short(max_steps=10, val_limit=64, eval_batch_size=64, bn_recalibration_examples=0)
r = train_and_evaluate(TINY, config, jax.random.key(0), load_fashion_mnist(input_size=32))
print(json.dumps({{"devices": r.num_devices, "losses": [l for _, l in r.loss_curve]}}))
"""


def test_two_devices_match_one_device(short_run) -> None:
    """Batch sharded over 2 (fake) devices: the same first 10 losses as on 1 device (there the
    preset trains layer-wise; on 2 devices as one network)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT.format(root=str(ROOT))], env=env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    assert short_run.num_devices == 1 and two["devices"] == 2
    one = [l for _, l in short_run.loss_curve[:10]]
    np.testing.assert_allclose(two["losses"], one, rtol=1e-3)


def test_cli_without_dataset_exits_2_with_install_command(tmp_path: Path) -> None:
    env = dict(os.environ, MNAS_FMNIST_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "mnas_jax.cli.main", "train", "mnasnet-a1", "--setting", "fmnist",
                           "--epochs", "1", "--json"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnas: error:") and INSTALL_HINT in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnasnet-a1", "mobilenetv2"])
def test_reference_reaches_90_percent_in_5_epochs(name: str, fmnist: ArraySource) -> None:
    """Acceptance: `mnas train NAME --setting fmnist --epochs 5` (about an hour each on 2 cores)."""
    config = dataclasses.replace(TrainConfig(), epochs=5.0)
    result = train_and_evaluate(reference(name, setting="fmnist"), config, jax.random.key(0), fmnist)
    assert result.status == OK and result.test_accuracy >= 0.90
