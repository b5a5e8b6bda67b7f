"""ImageNet-style input read straight from a TFDS-prepared directory with tf.data.

``tensorflow_datasets`` is not needed (and nothing is ever downloaded): a prepared TFDS dataset is
a directory ``DATA_DIR/NAME[/CONFIG]/VERSION/`` of TFRecord shards named
``NAME-SPLIT.tfrecord-XXXXX-of-YYYYY`` holding ``tf.train.Example`` records (an encoded image
under ``image``, an int64 class under ``label``), plus ``dataset_info.json`` (split sizes) and
``label.labels.txt`` (class names). This module reads those files with tf.data directly.

Splits follow the paper: ``validation`` is the first ``val_size`` records of the TFDS training
split (held out, for ACC(m)); ``train`` is the rest; ``test`` is the TFDS ``validation`` split
(ImageNet's public 50K). Preprocessing is the usual ImageNet recipe: random-area crop, resize and
flip for training; a centre crop (input/(input+32) of the shorter side) and resize for eval.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mnas_jax.data.source import Batch, Shard, check_split

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_PADDING = 32


def _tf() -> Any:
    """Import TensorFlow only when a TFDS source is used (it is slow to import)."""
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")  # leave accelerators to JAX
    return tf


def find_version_dir(data_dir: str | os.PathLike, name: str) -> Path:
    """``DATA_DIR/NAME`` with a version (``imagenet2012/5.1.0``) or the newest version in it."""
    root = Path(data_dir) / name
    if (root / "dataset_info.json").is_file():
        return root
    versions = [p for p in root.glob("*") if (p / "dataset_info.json").is_file()] if root.is_dir() else []
    if not versions:
        raise FileNotFoundError(
            f"no prepared TFDS dataset at {root} (expected VERSION/dataset_info.json and "
            "*.tfrecord-* shards); prepare it with TFDS on a machine with the data, then copy it"
        )
    return max(versions, key=lambda p: tuple(int(v) if v.isdigit() else 0 for v in p.name.split(".")))


def _split_files(root: Path, split: str) -> list[str]:
    files = sorted(str(p) for p in root.glob(f"*-{split}.tfrecord-*"))
    if not files:
        raise FileNotFoundError(f"no TFRecord shards for split {split!r} in {root} (*-{split}.tfrecord-*)")
    return files


def _split_sizes(root: Path) -> dict[str, int]:
    info = json.loads((root / "dataset_info.json").read_text())
    return {s["name"]: sum(int(n) for n in s.get("shardLengths", [])) for s in info.get("splits", [])}


def _num_classes(root: Path, label_key: str) -> int | None:
    labels = root / f"{label_key}.labels.txt"
    if labels.is_file():
        return sum(1 for line in labels.read_text().splitlines() if line.strip())
    features = root / "features.json"
    if features.is_file():
        text = features.read_text()
        key = '"numClasses"'
        if key in text:
            return int(text.split(key, 1)[1].split(":", 1)[1].split(",")[0].strip(' "}\n'))
    return None


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A prepared TFDS image-classification dataset read with tf.data (see module docstring)."""

    root: Path
    input_size: int
    num_classes: int
    channels: int = 3
    val_size: int = 50_000
    image_key: str = "image"
    label_key: str = "label"
    train_split: str = "train"
    test_split: str = "validation"
    sizes: tuple[tuple[str, int], ...] = ()
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.input_size, self.input_size, self.channels)

    def num_examples(self, split: str) -> int:
        sizes = dict(self.sizes)
        if check_split(split) == "test":
            return sizes[self.test_split]
        train = sizes[self.train_split]
        return min(self.val_size, train) if split == "validation" else max(train - self.val_size, 0)

    def _records(self, split: str, shard: Shard, limit: int | None) -> Any:
        tf = _tf()
        tfds_split = self.test_split if split == "test" else self.train_split
        ds = tf.data.TFRecordDataset(_split_files(self.root, tfds_split))
        if split == "validation":
            ds = ds.take(self.val_size)
        elif split == "train":
            ds = ds.skip(self.val_size)
        if limit is not None:
            ds = ds.take(limit)
        return ds.shard(shard.count, shard.index) if shard.count > 1 else ds

    def _parse(self, record: Any) -> tuple[Any, Any]:
        tf = _tf()
        feats = tf.io.parse_single_example(
            record,
            {
                self.image_key: tf.io.FixedLenFeature([], tf.string),
                self.label_key: tf.io.FixedLenFeature([], tf.int64),
            },
        )
        image = tf.io.decode_image(feats[self.image_key], channels=self.channels, expand_animations=False)
        return image, tf.cast(feats[self.label_key], tf.int32)

    def _normalise(self, image: Any) -> Any:
        tf = _tf()
        image = tf.image.resize(image, (self.input_size, self.input_size), method="bicubic")
        mean = tf.constant(self.mean[: self.channels], tf.float32) * 255.0
        std = tf.constant(self.std[: self.channels], tf.float32) * 255.0
        return (image - mean) / std

    def _train_map(self, seed: Any, record: Any) -> tuple[Any, Any]:
        tf = _tf()
        image, label = self._parse(record)
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
            seed=seed,
            min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        image = tf.slice(image, begin, size)
        image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
        return self._normalise(tf.cast(image, tf.float32)), label

    def _eval_map(self, record: Any) -> tuple[Any, Any]:
        tf = _tf()
        image, label = self._parse(record)
        shape = tf.shape(image)
        side = tf.cast(
            self.input_size / (self.input_size + CROP_PADDING)
            * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32),
            tf.int32,
        )
        top, left = (shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2
        image = tf.image.crop_to_bounding_box(image, top, left, side, side)
        return self._normalise(tf.cast(image, tf.float32)), label

    def train_batches(
        self,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        limit: int | None = None,
        augment: bool = True,
        shard: Shard = Shard(),
    ) -> Iterator[Batch]:
        tf = _tf()
        local = shard.local_size(batch_size)
        ds = self._records("train", shard, limit)
        ds = ds.shuffle(min(10 * batch_size, 16_384), seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
        if augment:
            seeds = tf.data.Dataset.range(1 << 62).map(lambda i: tf.stack([seed * 100_003 + epoch, i]))
            ds = tf.data.Dataset.zip(seeds, ds).map(self._train_map, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(self._eval_map, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(local, drop_remainder=True).prefetch(2)
        for images, labels in ds.as_numpy_iterator():
            yield Batch(images, labels, np.ones(local, np.float32))

    def eval_batches(
        self, split: str, batch_size: int, *, limit: int | None = None, shard: Shard = Shard()
    ) -> Iterator[Batch]:
        tf = _tf()
        local = shard.local_size(batch_size)
        ds = self._records(check_split(split), shard, limit)
        ds = ds.map(self._eval_map, num_parallel_calls=tf.data.AUTOTUNE).batch(local).prefetch(2)
        for images, labels in ds.as_numpy_iterator():
            valid = len(labels)
            mask = np.zeros(local, np.float32)
            mask[:valid] = 1.0
            if valid < local:
                images = np.concatenate([images, np.zeros((local - valid,) + images.shape[1:], images.dtype)])
                labels = np.concatenate([labels, np.zeros(local - valid, labels.dtype)])
            yield Batch(images, labels, mask)


def open_tfds(
    data_dir: str | os.PathLike,
    name: str,
    *,
    input_size: int = 224,
    val_size: int = 50_000,
    channels: int = 3,
    image_key: str = "image",
    label_key: str = "label",
    num_classes: int | None = None,
) -> TfdsSource:
    """Open ``DATA_DIR/NAME[/VERSION]`` (e.g. ``imagenet2012``) prepared by TFDS."""
    root = find_version_dir(data_dir, name)
    sizes = _split_sizes(root)
    classes = num_classes or _num_classes(root, label_key)
    if classes is None:
        raise ValueError(f"cannot tell the number of classes of {root}; pass num_classes=")
    if "train" not in sizes:
        raise FileNotFoundError(f"{root}/dataset_info.json lists no 'train' split (found {sorted(sizes)})")
    test_split = "validation" if "validation" in sizes else "test"
    if test_split not in sizes:
        raise FileNotFoundError(f"{root} has neither a 'validation' nor a 'test' split to test on")
    log.info("TFDS %s: splits %s, %d classes", root, sizes, classes)
    return TfdsSource(
        root=root,
        input_size=input_size,
        num_classes=classes,
        channels=channels,
        val_size=val_size,
        image_key=image_key,
        label_key=label_key,
        test_split=test_split,
        sizes=tuple(sorted(sizes.items())),
    )
