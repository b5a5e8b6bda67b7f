"""ImageNet-style input through tensorflow-datasets' own offline reader.

A dataset prepared by TFDS (``DATA_DIR/NAME[/CONFIG]/VERSION/``: ``dataset_info.json``,
``features.json`` and the record shards) is opened with ``tfds.builder_from_directory`` and read
with ``builder.as_dataset``; nothing is downloaded. ``DATA_DIR`` may be local or ``gs://``
(TFDS reads through TensorFlow's file systems).

Splits follow the paper: ``validation`` is the first ``val_size`` examples of the training split
(held out, for ACC(m)); ``train`` is the rest; ``test`` is the TFDS ``validation`` split
(ImageNet's public 50K) or ``test``. Each process reads its own part of a split
(``tfds.even_splits``, as the Flax ImageNet example does per host) and yields local batches of
``batch_size / process count`` rows; every process yields the same number of batches, so the
collectives inside a step never wait for a process that ran out.

Preprocessing is the Flax ImageNet example's: training takes a random crop (area 8-100%, aspect
3/4-4/3, falling back to the centre crop), resizes it to the input size (bicubic) and flips it at
random; evaluation takes the centre crop of ``input/(input+32)`` of the shorter side and resizes
it. JPEGs are decoded and cropped in one step. Random choices are stateless and seeded by
(seed, epoch, example), so an epoch reads the same on every run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from mnas_jax.data.source import Batch, Shard, check_split

log = logging.getLogger(__name__)

MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
CROP_PADDING = 32
HOLDOUT = 50_000  # the paper's validation set held out of ImageNet's training split
HOLDOUT_FRACTION = 0.1  # ... at most this share of a smaller training split
_EPOCH_STRIDE = 1_000_003


def _tf() -> Any:
    """TensorFlow, imported only when a TFDS source is used, kept off the accelerators."""
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")  # leave accelerators to JAX
    return tf


def _tfds() -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ValueError("--data tfds:... needs tensorflow-datasets: pip install 'mnas-jax[tfds]'") from None
    return tfds


def find_version_dir(data_dir: str | os.PathLike, name: str) -> str:
    """``DATA_DIR/NAME[/CONFIG]`` itself if it holds a prepared version, else its newest version."""
    from etils import epath

    root = epath.Path(data_dir) / name
    if (root / "dataset_info.json").exists():
        return os.fspath(root)
    versions = [p for p in root.iterdir() if (p / "dataset_info.json").exists()] if root.is_dir() else []
    if not versions:
        raise FileNotFoundError(
            f"no dataset prepared by tensorflow-datasets at {root} (expected {name}/VERSION/"
            "dataset_info.json): prepare it with tfds (`tfds build` or download_and_prepare) "
            "and pass its parent directory as --data-dir"
        )
    newest = max(versions, key=lambda p: tuple(int(v) if v.isdigit() else 0 for v in p.name.split(".")))
    return os.fspath(newest)


def _centre_window(shape: Any, input_size: int) -> Any:
    """The Flax example's eval crop: the centre square of input/(input+32) of the shorter side."""
    tf = _tf()
    side = tf.cast(input_size / (input_size + CROP_PADDING)
                   * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32), tf.int32)
    return tf.stack([(shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2, side, side])


def _random_window(shape: Any, seed: Any, input_size: int) -> Any:
    """The Flax example's training crop: a random box of 8-100% area and aspect 3/4-4/3, or
    the eval crop when no box fitted (the whole image came back)."""
    tf = _tf()
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]), seed=seed,
        min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    whole = tf.reduce_all(tf.equal(size[:2], shape[:2]))
    return tf.cond(whole, lambda: _centre_window(shape, input_size),
                   lambda: tf.stack([begin[0], begin[1], size[0], size[1]]))


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsSource:
    """A prepared TFDS image-classification dataset (see the module docstring)."""

    builder: Any  # tfds.core.DatasetBuilder (read-only, from the directory)
    input_size: int
    channels: int = 3
    train_split: str = "train"
    test_split: str = "validation"
    val_size: int = HOLDOUT
    image_key: str = "image"
    label_key: str = "label"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the batches after resizing to `input_size`."""
        return (self.input_size, self.input_size, self.channels)

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset's label feature."""
        return int(self.builder.info.features[self.label_key].num_classes)

    def _split(self, split: str, limit: int | None) -> str:
        """The TFDS split string (a slice) behind one of our splits, first ``limit`` examples."""
        def first(name: str, start: int) -> str:
            end = self._size(name) if split != "validation" else self.val_size
            if limit is not None:
                end = min(end, start + limit)
            return f"{name}[{start}:{end}]"

        if check_split(split) == "test":
            return first(self.test_split, 0)
        return first(self.train_split, 0 if split == "validation" else self.val_size)

    def _size(self, split_string: str) -> int:
        return int(self.builder.info.splits[split_string].num_examples)

    def num_examples(self, split: str) -> int:
        """Number of examples in `split`."""
        return self._size(self._split(split, None))

    def _read(self, split_string: str, *, seed: int | None) -> Any:
        """Encoded examples of one split string (files shuffled with ``seed`` when given)."""
        tfds = _tfds()
        config = tfds.ReadConfig(shuffle_seed=seed) if seed is not None else None
        return self.builder.as_dataset(split=split_string, shuffle_files=seed is not None,
                                       read_config=config,
                                       decoders={self.image_key: tfds.decode.SkipDecoding()})

    def _decode_crop(self, data: Any, window_of: Any) -> Any:
        """Decode an encoded image and crop it to ``window_of(shape)``; JPEGs in one step."""
        tf = _tf()

        def jpeg() -> Any:
            window = window_of(tf.image.extract_jpeg_shape(data))
            return tf.image.decode_and_crop_jpeg(data, window, channels=self.channels)

        def other() -> Any:
            image = tf.io.decode_image(data, channels=self.channels, expand_animations=False)
            w = window_of(tf.shape(image))
            return tf.image.crop_to_bounding_box(image, w[0], w[1], w[2], w[3])

        return tf.cond(tf.io.is_jpeg(data), jpeg, other)

    def _finish(self, image: Any) -> Any:
        """Resize (bicubic) to the input size and normalise with ImageNet's statistics."""
        tf = _tf()
        image = tf.image.resize(tf.cast(image, tf.float32), (self.input_size, self.input_size),
                                method="bicubic")
        image = tf.reshape(image, self.image_shape)
        mean, std = (MEAN_RGB, STDDEV_RGB) if self.channels == 3 else ((np.mean(MEAN_RGB),), (np.mean(STDDEV_RGB),))
        mean, std = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)
        return (image - mean) / std

    def _eval_map(self, example: dict[str, Any]) -> tuple[Any, Any]:
        tf = _tf()
        image = self._decode_crop(example[self.image_key], lambda s: _centre_window(s, self.input_size))
        return self._finish(image), tf.cast(example[self.label_key], tf.int32)

    def _train_map(self, seed: Any, example: dict[str, Any]) -> tuple[Any, Any]:
        tf = _tf()
        image = self._decode_crop(example[self.image_key], lambda s: _random_window(s, seed, self.input_size))
        flip_seed = seed + tf.constant([0, 1], tf.int64)
        image = tf.image.stateless_random_flip_left_right(self._finish(image), seed=flip_seed)
        return image, tf.cast(example[self.label_key], tf.int32)

    def train_batches(self, batch_size: int, *, seed: int, epoch: int, limit: int | None = None,
                      augment: bool = True, shard: Shard = Shard()) -> Iterator[Batch]:
        """One epoch of shuffled training batches from this process's part, augmented if asked."""
        tf, tfds = _tf(), _tfds()
        local = shard.local_size(batch_size)
        split = self._split("train", limit)
        part = tfds.even_splits(split, n=shard.count, drop_remainder=True)[shard.index]
        epoch_seed = seed * _EPOCH_STRIDE + epoch
        ds = self._read(part, seed=epoch_seed % (2**31))
        ds = ds.shuffle(16 * local, seed=epoch_seed, reshuffle_each_iteration=False)
        if augment:
            ds = ds.enumerate().map(
                lambda i, ex: self._train_map(tf.stack([tf.constant(epoch_seed, tf.int64), i * 2]), ex),
                num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(self._eval_map, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        for images, labels in ds.as_numpy_iterator():
            yield Batch(images, labels, np.ones(local, np.float32))

    def eval_batches(self, split: str, batch_size: int, *, limit: int | None = None,
                     shard: Shard = Shard()) -> Iterator[Batch]:
        """All of `split` (or its first `limit`), this process's part, equal batch counts."""
        tf, tfds = _tf(), _tfds()
        local = shard.local_size(batch_size)
        parts = tfds.even_splits(self._split(split, limit), n=shard.count)
        # every process yields as many batches as the largest part needs (padding batches: mask 0)
        n_batches = max(math.ceil(self._size(p) / local) for p in parts)
        ds = self._read(parts[shard.index], seed=None)
        ds = ds.map(self._eval_map, num_parallel_calls=tf.data.AUTOTUNE).batch(local).prefetch(tf.data.AUTOTUNE)
        done = 0
        for images, labels in ds.as_numpy_iterator():
            yield _pad(images, labels, local)
            done += 1
        for _ in range(n_batches - done):
            yield Batch(np.zeros((local, *self.image_shape), np.float32), np.zeros(local, np.int32),
                        np.zeros(local, np.float32))


def _pad(images: np.ndarray, labels: np.ndarray, size: int) -> Batch:
    """A batch of ``size`` rows: the given ones, then zero rows with mask 0."""
    valid = len(labels)
    mask = np.zeros(size, np.float32)
    mask[:valid] = 1.0
    if valid < size:
        images = np.concatenate([images, np.zeros((size - valid, *images.shape[1:]), images.dtype)])
        labels = np.concatenate([labels, np.zeros(size - valid, labels.dtype)])
    return Batch(images, labels, mask)


def open_tfds(data_dir: str | os.PathLike, name: str, *, split: str = "train", input_size: int = 224,
              channels: int = 3, val_size: int | None = None, image_key: str = "image",
              label_key: str = "label") -> TfdsSource:
    """Open ``DATA_DIR/NAME[/CONFIG][/VERSION]`` (e.g. ``imagenet2012``) prepared by TFDS.

    ``val_size`` examples of ``split`` are held out for validation (default: 50,000, at most
    10% of the split); the test split is ``validation``, else ``test``.
    """
    builder = _tfds().builder_from_directory(find_version_dir(data_dir, name))
    splits = builder.info.splits
    if split not in splits:
        raise ValueError(f"{name} has no split {split!r} (it has {sorted(splits)}); "
                         f"use --data tfds:{name}:SPLIT with one of them")
    test_split = next((s for s in ("validation", "test") if s in splits and s != split), None)
    if test_split is None:
        raise ValueError(f"{name} has no 'validation' or 'test' split besides {split!r} to test on")
    features = builder.info.features
    for key in (image_key, label_key):
        if key not in features:
            raise ValueError(f"{name} has no feature {key!r} (it has {sorted(features)}); "
                             "an image classification dataset needs 'image' and 'label'")
    n_train = int(splits[split].num_examples)
    held = val_size if val_size is not None else min(HOLDOUT, int(n_train * HOLDOUT_FRACTION))
    if not 0 < held < n_train:
        raise ValueError(f"cannot hold {held} validation examples out of {n_train} in {name}:{split}")
    log.info("TFDS %s: %s, %d classes, %d held out of %s", name, builder.data_dir,
             int(features[label_key].num_classes), held, split)
    return TfdsSource(builder=builder, input_size=input_size, channels=channels, train_split=split,
                      test_split=test_split, val_size=held, image_key=image_key, label_key=label_key)
