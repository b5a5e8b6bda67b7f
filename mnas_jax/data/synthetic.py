"""A small learnable image dataset written with tensorflow-datasets' own writer.

It stands in for ImageNet where ImageNet is not at hand (tests, the ``tiny`` search variant, a
first try on a new machine): JPEG images of varying size (about 64-96 px, not square), 10
classes, each class a colour and a stripe orientation over noise, in the layout TFDS prepares
(``DATA_DIR/mnas_synthetic/1.0.0/``), so it is read by the same code path as ImageNet.

    python -m mnas_jax.data.synthetic DATA_DIR [--train 600] [--test 200]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

NAME = "mnas_synthetic"
VERSION = "1.0.0"
NUM_CLASSES = 10


def _image(rng: np.random.Generator, label: int) -> np.ndarray:
    """One image of class ``label``: a class colour, stripes at a class angle, and noise."""
    h, w = int(rng.integers(64, 97)), int(rng.integers(64, 97))
    angle = np.pi * (label % 5) / 5
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * (0.25 + 0.1 * (label // 5)))
    colour = np.array([(label * 37) % 256, (label * 91 + 60) % 256, (label * 53 + 120) % 256], float)
    image = colour * (0.6 + 0.4 * stripes[..., None]) + rng.normal(0, 40, (h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _examples(n: int, seed: int) -> Iterator[tuple[int, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = int(rng.integers(0, NUM_CLASSES))
        yield i, {"image": _image(rng, label), "label": label}


def write_synthetic(data_dir: str | os.PathLike, *, n_train: int = 600, n_test: int = 200,
                    seed: int = 0) -> str:
    """Write the dataset under ``data_dir`` (TFDS layout); returns its version directory."""
    import tensorflow_datasets as tfds

    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
        "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
    })
    builder = tfds.dataset_builders.store_as_tfds_dataset(
        NAME, VERSION, features,
        {"train": _examples(n_train, seed), "validation": _examples(n_test, seed + 1)},
        data_dir=os.fspath(data_dir), description="mnas-jax synthetic stand-in for ImageNet")
    return os.fspath(builder.data_dir)


def main(argv: list[str] | None = None) -> int:
    """Write a small synthetic Fashion-MNIST-format dataset to the given directory; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m mnas_jax.data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_synthetic(args.data_dir, n_train=args.train, n_test=args.test, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
