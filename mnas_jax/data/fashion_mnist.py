"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (gzipped IDX files).

Never downloads: the files come from the system package (or a directory the user points to with
the ``data_dir`` argument or the ``MNAS_FMNIST_DIR`` environment variable). As the paper held
50K images out of ImageNet's training set for the search's accuracy, ``val_size`` images are
held out of the 60K training images (a seeded choice); the 10K test images are for final numbers.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from mnas_jax.data.arrays import ArraySource

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_DIR = "MNAS_FMNIST_DIR"
INSTALL_HINT = "apt-get install -y dataset-fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Statistics of the 60K training pixels (scaled to [0, 1]).
MEAN, STD = 0.2860, 0.3530
NUM_CLASSES = 10


class DatasetMissingError(FileNotFoundError):
    """The dataset files are not where we looked; the message says how to install them."""


def resolve_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory to read: the argument, else $MNAS_FMNIST_DIR, else Debian's location."""
    return Path(data_dir or os.environ.get(ENV_DIR) or DEFAULT_DIR)


def read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (magic 0x0000 08 NDIM, big-endian dims, then uint8 data)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 IDX file (bad magic {data[:4].hex()}); re-install the dataset")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {body.size} values; the file is truncated")
    return body.reshape(dims)


def _read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = FILES[split]
    for name in (image_file, label_file):
        if not (root / name).is_file():
            raise DatasetMissingError(
                f"Fashion-MNIST not found: {root / name} is missing; install it with "
                f"`{INSTALL_HINT}` or set {ENV_DIR} to a directory holding the IDX .gz files"
            )
    images = read_idx(root / image_file)[..., None]  # (N, 28, 28, 1)
    labels = read_idx(root / label_file).astype(np.int32)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} {split} images but {len(labels)} labels")
    return images, labels


def shrink(images: np.ndarray, factor: int) -> np.ndarray:
    """Mean-pool (N, h, w, c) uint8 images by ``factor`` (edges cropped to a multiple)."""
    n, h, w, c = images.shape
    h2, w2 = h // factor, w // factor
    blocks = images[:, : h2 * factor, : w2 * factor].reshape(n, h2, factor, w2, factor, c)
    return np.rint(blocks.mean(axis=(2, 4))).astype(np.uint8)


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    input_size: int = 32,
    val_size: int = 10_000,
    seed: int = 0,
) -> ArraySource:
    """Load Fashion-MNIST as train/validation/test splits padded to ``input_size``.

    An ``input_size`` below 28 (a cheaper proxy resolution) first shrinks the 28x28 images by the
    smallest integer factor that fits (2x2 mean pooling for 16: 14x14 on a 16x16 canvas).
    """
    root = resolve_dir(data_dir)
    train_x, train_y = _read_split(root, "train")
    test_x, test_y = _read_split(root, "test")
    factor = -(-train_x.shape[1] // input_size)
    if factor > 1:
        train_x, test_x = shrink(train_x, factor), shrink(test_x, factor)
    if not 0 <= val_size < len(train_y):
        raise ValueError(f"val_size {val_size} must be in [0, {len(train_y)})")
    order = np.random.default_rng(seed).permutation(len(train_y))
    val_rows, train_rows = order[:val_size], order[val_size:]
    return ArraySource(
        images={"train": train_x[train_rows], "validation": train_x[val_rows], "test": test_x},
        labels={"train": train_y[train_rows], "validation": train_y[val_rows], "test": test_y},
        input_size=input_size,
        num_classes=NUM_CLASSES,
        mean=MEAN,
        std=STD,
    )
