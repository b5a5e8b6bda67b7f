"""Data: Fashion-MNIST splits and batches, the missing-dataset error, TFDS dirs, prefetching."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from mnas_jax.data import (
    ArraySource,
    DatasetMissingError,
    Shard,
    load_fashion_mnist,
    open_tfds,
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


def _write_tiny_tfds(root: Path, n_train: int = 40, n_val: int = 12) -> None:
    """A TFDS-layout dataset: tiny/1.0.0/{dataset_info.json, label.labels.txt, tfrecord shards}."""
    tf = pytest.importorskip("tensorflow")
    version = root / "tiny" / "1.0.0"
    version.mkdir(parents=True)
    rng = np.random.default_rng(0)
    info = {"name": "tiny", "version": "1.0.0", "splits": []}
    for split, n, shards in (("train", n_train, 2), ("validation", n_val, 1)):
        lengths = []
        for s in range(shards):
            rows = range(s * n // shards, (s + 1) * n // shards)
            path = version / f"tiny-{split}.tfrecord-{s:05d}-of-{shards:05d}"
            with tf.io.TFRecordWriter(str(path)) as writer:
                for i in rows:
                    h, w = int(rng.integers(20, 48)), int(rng.integers(20, 48))
                    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                    example = tf.train.Example(
                        features=tf.train.Features(
                            feature={
                                "image": tf.train.Feature(
                                    bytes_list=tf.train.BytesList(value=[tf.io.encode_jpeg(img).numpy()])
                                ),
                                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3])),
                            }
                        )
                    )
                    writer.write(example.SerializeToString())
            lengths.append(str(len(rows)))
        info["splits"].append({"name": split, "shardLengths": lengths, "numBytes": "0"})
    (version / "dataset_info.json").write_text(json.dumps(info))
    (version / "label.labels.txt").write_text("a\nb\nc\n")


def test_tfds_directory_reads_without_tensorflow_datasets(tmp_path: Path) -> None:
    _write_tiny_tfds(tmp_path)
    src = open_tfds(tmp_path, "tiny", input_size=24, val_size=10)
    assert src.num_classes == 3 and src.image_shape == (24, 24, 3)
    assert (src.num_examples("train"), src.num_examples("validation"), src.num_examples("test")) == (30, 10, 12)
    train = list(src.train_batches(8, seed=0, epoch=0))
    assert len(train) == 30 // 8 and train[0].images.shape == (8, 24, 24, 3)
    again = list(src.train_batches(8, seed=0, epoch=0))
    np.testing.assert_array_equal(train[0].images, again[0].images)
    assert np.isfinite(train[0].images).all() and abs(float(train[0].images.mean())) < 3
    val = list(src.eval_batches("validation", 8))
    assert sum(b.mask.sum() for b in val) == 10 and val[-1].images.shape == (8, 24, 24, 3)
    test_labels = np.concatenate([b.labels[b.mask > 0] for b in src.eval_batches("test", 8)])
    np.testing.assert_array_equal(test_labels, np.arange(12) % 3)
    with pytest.raises(FileNotFoundError, match="no prepared TFDS dataset"):
        open_tfds(tmp_path, "absent")
