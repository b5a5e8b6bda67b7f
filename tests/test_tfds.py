"""Data as configuration: data specs, and TFDS datasets read through tensorflow-datasets' own
offline reader (builder_from_directory / as_dataset) with the Flax ImageNet example's
preprocessing and per-process sharding. The dataset is written here with TFDS's own writer
(`mnas_jax.data.synthetic`): real JPEG records in the layout TFDS prepares, nothing mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
tf = pytest.importorskip("tensorflow")

from mnas_jax.data import DataSpec, Shard, open_data  # noqa: E402
from mnas_jax.data.synthetic import NAME, write_synthetic  # noqa: E402
from mnas_jax.data.tfds_source import _centre_window, _random_window  # noqa: E402
from mnas_jax.space import ArchSpec, BlockSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 230, 61  # 23 held out for validation (10%); odd sizes exercise the padding
# a tiny net for the tiny64 setting (64x64 RGB, 10 classes): every layer kind, compiles fast
TINY64 = ArchSpec(
    blocks=(BlockSpec("mbconv", 3, 3, 0.25, "identity", 8, 2, 2), BlockSpec("sepconv", 5, 1, 0.0, "none", 16, 1, 2)),
    input_size=64, input_channels=3, num_classes=10, stem_channels=8, stem_stride=2, head_channels=32,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tfds")
    write_synthetic(root, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    return root


@pytest.fixture(scope="module")
def source(data_dir: Path):
    return open_data(DataSpec.parse(f"tfds:{NAME}", str(data_dir)), input_size=48, channels=3, num_classes=10)


def test_data_specs_parse_and_bad_ones_name_the_text() -> None:
    assert DataSpec.parse("fmnist") == DataSpec("fmnist")
    spec = DataSpec.parse("tfds:imagenet2012/subset:train", "gs://b/tfds")
    assert (spec.source, spec.name, spec.split, spec.data_dir) == ("tfds", "imagenet2012/subset", "train", "gs://b/tfds")
    assert str(DataSpec.parse("tfds:cifar10:test")) == "tfds:cifar10:test"
    for bad in ("mnist", "tfds:", "tfds:Bad Name", "tfds:x:train[:10%]"):
        with pytest.raises(ValueError, match="is not a data spec") as err:
            DataSpec.parse(bad)
        assert repr(bad) in str(err.value)


def test_reads_splits_through_the_tfds_builder(source, data_dir: Path) -> None:
    assert type(source.builder).__name__ == "ReadOnlyBuilder"  # tfds.builder_from_directory
    assert Path(source.builder.data_dir) == data_dir / NAME / "1.0.0"
    assert (source.num_examples("train"), source.num_examples("validation"), source.num_examples("test")) \
        == (N_TRAIN - 23, 23, N_TEST)
    assert source.num_classes == 10 and source.image_shape == (48, 48, 3)
    # the test split in order, labels as TFDS itself reads them
    ours = np.concatenate([b.labels[b.mask > 0] for b in source.eval_batches("test", 16)])
    theirs = [int(ex["label"]) for ex in tfds.as_numpy(source.builder.as_dataset(split="validation"))]
    np.testing.assert_array_equal(ours, theirs)


def test_train_batches_are_seeded_augmented_and_normalised(source) -> None:
    first = list(source.train_batches(32, seed=1, epoch=0))
    assert len(first) == (N_TRAIN - 23) // 32 and first[0].images.shape == (32, 48, 48, 3)
    assert first[0].images.dtype == np.float32 and np.isfinite(first[0].images).all()
    again = list(source.train_batches(32, seed=1, epoch=0))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.images, b.images)
    other_epoch = next(source.train_batches(32, seed=1, epoch=1))
    assert not np.array_equal(other_epoch.labels, first[0].labels)
    plain = next(source.train_batches(32, seed=1, epoch=0, augment=False))
    np.testing.assert_array_equal(plain.labels, first[0].labels)  # same examples ...
    assert not np.allclose(plain.images, first[0].images)  # ... cropped and flipped differently


def test_each_process_reads_its_own_part_with_equal_batch_counts(source) -> None:
    parts = [list(source.train_batches(16, seed=0, epoch=0, augment=False, shard=Shard(i, 2))) for i in (0, 1)]
    assert len(parts[0]) == len(parts[1]) > 0 and parts[0][0].images.shape == (8, 48, 48, 3)
    evals = [list(source.eval_batches("test", 16, shard=Shard(i, 2))) for i in (0, 1)]
    assert len(evals[0]) == len(evals[1])  # padded with empty batches: no process waits for another
    assert sum(b.mask.sum() for part in evals for b in part) == N_TEST  # every example once
    assert sum(b.mask.sum() for b in source.eval_batches("validation", 16, limit=10)) == 10


def test_crops_follow_the_flax_imagenet_example() -> None:
    # eval: the centre square of input/(input+32) of the shorter side
    assert _centre_window(tf.constant([100, 80, 3]), 64).numpy().tolist() == [24, 14, 53, 53]
    # training: 8-100% of the area, aspect 3/4..4/3 (or the centre crop if no box fitted)
    shape = tf.constant([120, 160, 3])
    for i in range(50):
        top, left, h, w = _random_window(shape, tf.constant([7, i], tf.int64), 64).numpy().tolist()
        assert 0 <= top and top + h <= 120 and 0 <= left and left + w <= 160
        assert 0.08 * 120 * 160 * 0.9 <= h * w and (3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1 or h == w)


def test_data_that_cannot_feed_the_model_is_one_clear_line(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    cases = [
        (DataSpec.parse("fmnist"), 3, 1000, "--data fmnist has 1-channel images of 10 classes: pass --data tfds:"),
        (DataSpec.parse("tfds:imagenet2012"), 3, 1000, "needs --data-dir DIR"),
        (DataSpec.parse(f"tfds:{NAME}", str(data_dir)), 3, 1000, "has 10 classes but the model has 1000"),
        (DataSpec.parse(f"tfds:{NAME}:test", str(data_dir)), 3, 10, "has no split 'test'"),
        (DataSpec.parse("tfds:absent", str(data_dir)), 3, 10, "no dataset prepared by tensorflow-datasets"),
    ]
    for spec, channels, classes, message in cases:
        with pytest.raises((ValueError, FileNotFoundError)) as err:
            open_data(spec, input_size=64, channels=channels, num_classes=classes)
        assert message in str(err.value) and "\n" not in str(err.value)


def _mnas(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnas_jax.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_mnas_train_on_a_tfds_dataset(data_dir: Path, tmp_path: Path) -> None:
    arch = tmp_path / "tiny64.json"
    arch.write_text(TINY64.to_json())
    proc = _mnas("train", str(arch), "--data", f"tfds:{NAME}", "--data-dir", str(data_dir), "--preset", "smoke",
                 "--steps", "6", "--json", "--quiet", "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "ok" and out["steps"] == 6 and 0.0 <= out["val_accuracy"] <= 1.0


def test_imagenet_without_data_exits_2_naming_the_options(tmp_path: Path) -> None:
    """Never a silent fall-back to Fashion-MNIST: `mnas train` and `mnas search` stop in one line."""
    runs = [
        (_mnas("train", "mnasnet-a1", "--setting", "imagenet", "--preset", "smoke", "--json"), "--data"),
        (_mnas("search", "--config", str(ROOT / "configs" / "imagenet.py"), "--variant", "paper",
               "--workdir", str(tmp_path / "a")), "--data-dir"),
        (_mnas("search", "--config", str(ROOT / "configs" / "imagenet.py"), "--variant", "paper", "--data",
               "fmnist", "--workdir", str(tmp_path / "b")), "--data tfds:"),
        (_mnas("train", "mnasnet-a1", "--workdir", "gs://bucket/run", "--json"), "local disk"),
    ]
    for proc, needle in runs:
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
        assert lines[0].startswith("mnas: error:") and needle in lines[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing measured or written
    assert not Path(ROOT / "gs:").exists()


def test_imagenet_config_variants() -> None:
    from mnas_jax.search.config import load_config
    from mnas_jax.train import get_preset

    paper = load_config(ROOT / "configs" / "imagenet.py", "paper")
    assert (paper.setting, paper.data, paper.train_preset, paper.target) == \
        ("imagenet", "tfds:imagenet2012", "paper", "1.0x mobilenetv2")
    assert paper.train_overrides["epochs"] == 5.0 and paper.train_overrides["batch_per_device"] > 0
    assert get_preset("paper").decay_rate == 0.97  # the RMSProp recipe of MNASNET.md
    tiny = load_config(ROOT / "configs" / "imagenet.py", "tiny")
    assert (tiny.setting, tiny.data, tiny.use_table, tiny.executor) == ("tiny64", f"tfds:{NAME}", True, "local")


def test_batch_per_device_becomes_a_global_batch() -> None:
    import jax

    from mnas_jax.search.children import train_config

    config = train_config("paper", {"batch_per_device": 16, "epochs": 5.0})
    assert config.batch_size == config.eval_batch_size == 16 * jax.device_count() and config.epochs == 5.0


def test_search_identity_ignores_where_the_data_lives() -> None:
    """A search resumes after its data moved; searches run before these fields keep their ids."""
    import dataclasses
    import hashlib

    from mnas_jax.search.config import SearchConfig, load_config
    from mnas_jax.search.pipeline import run_id_of

    tiny = load_config(ROOT / "configs" / "imagenet.py", "tiny")
    assert run_id_of(dataclasses.replace(tiny, data_dir="/a")) == run_id_of(dataclasses.replace(tiny, data_dir="/b"))
    assert run_id_of(tiny) != run_id_of(dataclasses.replace(tiny, data="tfds:other"))
    main = load_config(ROOT / "configs" / "fmnist.py", "main")
    before = {k: v for k, v in dataclasses.asdict(main).items()  # the fields a search had before
              if k not in ("data", "data_dir", "train_overrides", "child_resources")}
    body = json.dumps(before, sort_keys=True, default=str)
    assert run_id_of(main) == f"{main.name}-{hashlib.sha256(body.encode()).hexdigest()[:10]}"
    assert isinstance(SearchConfig().child_resources, dict)
