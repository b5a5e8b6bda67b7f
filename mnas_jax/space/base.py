"""The interface every search space implements: token sequences <-> ArchSpec."""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np

from mnas_jax.space.spec import ArchSpec


class SearchSpace(Protocol):
    """A search space: one integer token per decision."""

    name: str
    setting: str

    @property
    def choices(self) -> tuple[int, ...]:
        """Number of choices of each decision."""
        ...

    @property
    def decision_names(self) -> tuple[str, ...]: ...

    def decode(self, tokens: Sequence[int]) -> ArchSpec: ...

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        """Inverse of decode; ValueError naming the first field outside the space."""
        ...


def space_size(choices: Sequence[int]) -> int:
    return math.prod(choices)


def sample_tokens(choices: Sequence[int], seed: int, n: int) -> np.ndarray:
    """`n` uniform token sequences, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    cols = [rng.integers(0, c, size=n) for c in choices]
    return np.stack(cols, axis=1).astype(np.int32) if n else np.zeros((0, len(choices)), np.int32)
