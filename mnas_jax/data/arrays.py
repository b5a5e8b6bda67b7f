"""An in-memory data source for small image datasets (Fashion-MNIST and friends).

Images stay uint8 at their stored size; each batch is placed on a canvas of the model's input
size, augmented (training only) and normalised on the host, which costs far less than a step.
Augmentation is the cheap kind that suits 28x28 grey images: a random position of the image
inside the padded canvas (up to the padding on each side) and a random horizontal flip.
Evaluation centres the image, as the padding would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import numpy as np

from mnas_jax.data.source import Batch, Shard, check_split


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySource:
    """Splits held as uint8 arrays (N, h, w, c) with int labels; see module docstring."""

    images: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray]
    input_size: int
    num_classes: int
    mean: float
    std: float

    def __post_init__(self) -> None:
        for split, arr in self.images.items():
            check_split(split)
            if arr.ndim != 4 or arr.dtype != np.uint8:
                raise ValueError(f"split {split!r}: images must be uint8 (N, h, w, c), got {arr.dtype} {arr.shape}")
            if len(self.labels[split]) != len(arr):
                raise ValueError(f"split {split!r}: {len(arr)} images but {len(self.labels[split])} labels")
            if max(arr.shape[1:3]) > self.input_size:
                raise ValueError(
                    f"stored images {arr.shape[1:3]} are larger than input_size {self.input_size}; "
                    "use an input size at least as large as the images"
                )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the batches: images are padded to `input_size`."""
        channels = next(iter(self.images.values())).shape[-1]
        return (self.input_size, self.input_size, channels)

    def num_examples(self, split: str) -> int:
        """Number of examples in `split`."""
        return len(self.labels[check_split(split)])

    def _place(self, raw: np.ndarray, offsets: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> np.ndarray:
        """Put raw images on the input canvas: at (tops, lefts, flips) when given, else centred."""
        n, h, w, c = raw.shape
        size = self.input_size
        canvas = np.zeros((n, size, size, c), np.uint8)
        if offsets is None:
            top, left = (size - h) // 2, (size - w) // 2
            canvas[:, top : top + h, left : left + w] = raw
        else:
            tops, lefts, flips = offsets
            for i in range(n):
                img = raw[i, :, ::-1] if flips[i] else raw[i]
                canvas[i, tops[i] : tops[i] + h, lefts[i] : lefts[i] + w] = img
        scale = np.float32(1.0 / (255.0 * self.std))
        return canvas.astype(np.float32) * scale - np.float32(self.mean / self.std)

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
        """One epoch of shuffled full training batches (this process's share), augmented."""
        images, labels = self.images["train"], self.labels["train"]
        n = len(labels) if limit is None else min(limit, len(labels))
        if n < batch_size:
            raise ValueError(f"training subset of {n} examples is smaller than batch size {batch_size}")
        local = shard.local_size(batch_size)
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(n)
        h, w = images.shape[1:3]
        mine = slice(shard.index * local, (shard.index + 1) * local)
        for start in range(0, n - batch_size + 1, batch_size):
            rows = np.sort(order[start : start + batch_size])  # contiguous-ish reads
            offsets = None
            if augment:  # drawn for the whole global batch, so every process count sees the same batch
                drawn = (rng.integers(0, self.input_size - h + 1, batch_size),
                         rng.integers(0, self.input_size - w + 1, batch_size), rng.random(batch_size) < 0.5)
                offsets = tuple(a[mine] for a in drawn)
            rows = rows[mine]
            yield Batch(self._place(images[rows], offsets), labels[rows].astype(np.int32), np.ones(local, np.float32))

    def eval_batches(
        self, split: str, batch_size: int, *, limit: int | None = None, shard: Shard = Shard()
    ) -> Iterator[Batch]:
        """All of `split` (or its first `limit`) in order, this process's share, padded."""
        images, labels = self.images[check_split(split)], self.labels[split]
        n = len(labels) if limit is None else min(limit, len(labels))
        local = shard.local_size(batch_size)
        for start in range(0, n, batch_size):
            lo = min(start + shard.index * local, n)
            hi = min(lo + local, n)
            valid = hi - lo
            x = np.zeros((local,) + self.image_shape, np.float32)
            y = np.zeros(local, np.int32)
            mask = np.zeros(local, np.float32)
            if valid:
                x[:valid] = self._place(images[lo:hi], None)
                y[:valid] = labels[lo:hi]
                mask[:valid] = 1.0
            yield Batch(x, y, mask)
