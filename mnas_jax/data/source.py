"""What a training data source provides: fixed-shape host batches for three splits.

Splits follow the paper's protocol: ``train`` (what the child learns from), ``validation`` (held
out of the training set; its accuracy is the search's ACC(m)) and ``test`` (kept for final
numbers only). Every batch has the same shape so the jitted step never recompiles: training
drops the remainder, evaluation pads the last batch and marks padding rows with ``mask == 0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol

import numpy as np

SPLITS = ("train", "validation", "test")


class Batch(NamedTuple):
    """One host batch: normalised NHWC float32 images, int32 labels, float32 row mask."""

    images: np.ndarray
    labels: np.ndarray
    mask: np.ndarray


class Shard(NamedTuple):
    """Which slice of every global batch this process loads (multi-host data parallelism)."""

    index: int = 0
    count: int = 1

    def local_size(self, global_batch: int) -> int:
        """Rows of a global batch that this process holds."""
        if global_batch % self.count:
            raise ValueError(
                f"batch size {global_batch} is not divisible by the process count {self.count}; "
                "choose a multiple"
            )
        return global_batch // self.count


class DataSource(Protocol):
    """Host-side data for one task (Fashion-MNIST in memory, an ImageNet-style TFDS dir...)."""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of every image batch."""
        ...

    @property
    def num_classes(self) -> int:
        """Number of label classes."""

    def num_examples(self, split: str) -> int:
        """Number of examples in `split`."""

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
        """One epoch of shuffled full batches over the first ``limit`` training examples."""
        ...

    def eval_batches(
        self, split: str, batch_size: int, *, limit: int | None = None, shard: Shard = Shard()
    ) -> Iterator[Batch]:
        """All of ``split`` (or its first ``limit`` examples) in order, last batch padded."""
        ...


def check_split(split: str) -> str:
    """Reject unknown split names early, naming the allowed ones."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    return split
