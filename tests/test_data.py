"""Data: Fashion-MNIST splits and batches, the missing-dataset error, prefetching (TFDS: test_tfds.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from mnas_jax.data import (
    ArraySource,
    DatasetMissingError,
    Shard,
    load_fashion_mnist,
    prefetch,
)
from mnas_jax.data.fashion_mnist import INSTALL_HINT, read_idx, resolve_dir


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def fmnist() -> ArraySource:
    if not (resolve_dir() / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)")
    return load_fashion_mnist(input_size=32, val_size=10_000, seed=0)


def test_splits_are_disjoint_and_sized(fmnist: ArraySource) -> None:
    assert fmnist.num_examples("train") == 50_000
    assert fmnist.num_examples("validation") == 10_000
    assert fmnist.num_examples("test") == 10_000
    assert fmnist.image_shape == (32, 32, 1)
    train = {x.tobytes() for x in fmnist.images["train"][:5000]}
    assert not any(x.tobytes() in train for x in fmnist.images["validation"][:2000])
    # the held-out choice is seeded
    again = load_fashion_mnist(val_size=10_000, seed=0)
    np.testing.assert_array_equal(again.labels["validation"], fmnist.labels["validation"])
    other = load_fashion_mnist(val_size=10_000, seed=1)
    assert not np.array_equal(other.labels["validation"], fmnist.labels["validation"])


def test_train_batches_fixed_shape_seeded_and_normalised(fmnist: ArraySource) -> None:
    batches = list(fmnist.train_batches(128, seed=3, epoch=0, limit=1000))
    assert len(batches) == 1000 // 128  # remainder dropped
    assert all(b.images.shape == (128, 32, 32, 1) and b.images.dtype == np.float32 for b in batches)
    again = next(fmnist.train_batches(128, seed=3, epoch=0, limit=1000))
    np.testing.assert_array_equal(again.images, batches[0].images)
    next_epoch = next(fmnist.train_batches(128, seed=3, epoch=1, limit=1000))
    assert not np.array_equal(next_epoch.labels, batches[0].labels)
    plain = np.concatenate([b.images for b in fmnist.train_batches(128, seed=3, epoch=0, augment=False)])
    assert abs(plain.mean()) < 0.2 and 0.8 < plain.std() < 1.1  # padding pulls the mean down a bit


def test_eval_batches_cover_split_once_with_mask(fmnist: ArraySource) -> None:
    batches = list(fmnist.eval_batches("validation", 256, limit=1000))
    assert all(b.images.shape == (256, 32, 32, 1) for b in batches)
    assert sum(b.mask.sum() for b in batches) == 1000
    labels = np.concatenate([b.labels[b.mask > 0] for b in batches])
    np.testing.assert_array_equal(labels, fmnist.labels["validation"][:1000])


def test_process_shards_split_each_global_batch(fmnist: ArraySource) -> None:
    full = next(fmnist.train_batches(64, seed=0, epoch=0, augment=False))
    halves = [next(fmnist.train_batches(64, seed=0, epoch=0, augment=False, shard=Shard(i, 2))) for i in (0, 1)]
    assert all(h.images.shape[0] == 32 for h in halves)
    assert sorted(np.concatenate([h.labels for h in halves]).tolist()) == sorted(full.labels.tolist())
    with pytest.raises(ValueError, match="divisible"):
        next(fmnist.train_batches(63, seed=0, epoch=0, shard=Shard(0, 2)))


def test_process_shards_of_an_augmented_batch_make_the_whole_batch(fmnist: ArraySource) -> None:
    """Augmentation is drawn for the global batch: N processes train on what 1 process would."""
    full = next(fmnist.train_batches(64, seed=5, epoch=2))
    halves = [next(fmnist.train_batches(64, seed=5, epoch=2, shard=Shard(i, 2))) for i in (0, 1)]
    np.testing.assert_array_equal(np.concatenate([h.images for h in halves]), full.images)
    np.testing.assert_array_equal(np.concatenate([h.labels for h in halves]), full.labels)


def test_missing_dataset_names_install_command(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError) as err:
        load_fashion_mnist(tmp_path)
    assert isinstance(err.value, FileNotFoundError)
    assert INSTALL_HINT in str(err.value) and "\n" not in str(err.value)


def test_env_var_overrides_dir_and_idx_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 100)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    monkeypatch.setenv("MNAS_FMNIST_DIR", str(tmp_path))
    data = load_fashion_mnist(val_size=100)
    assert data.num_examples("train") == 200 and data.num_examples("test") == 100
    assert read_idx(tmp_path / "t10k-images-idx3-ubyte.gz").shape == (100, 28, 28)


def test_prefetch_preserves_order_and_raises_producer_errors() -> None:
    assert list(prefetch(iter(range(10)), lambda i: i * 2, size=3)) == [i * 2 for i in range(10)]

    def broken():
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        list(prefetch(broken(), lambda i: i))
    gen = prefetch(iter(range(1000)), lambda i: i, size=2)
    assert next(gen) == 0
    gen.close()  # stops the producer thread without hanging
