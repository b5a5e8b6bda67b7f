"""Seeded samples of a search space as architectures."""

from __future__ import annotations

from typing import Iterable

from mnas_jax.space.base import SearchSpace, sample_tokens
from mnas_jax.space.spec import ArchSpec


def sample_specs(space: SearchSpace, n: int, seed: int,
                 exclude: Iterable[str] = frozenset()) -> list[ArchSpec]:
    """n distinct seeded samples of `space` whose arch ids are not in `exclude`."""
    exclude = set(exclude)
    out: dict[str, ArchSpec] = {}
    for tokens in sample_tokens(space.choices, seed, 4 * n + 16):
        spec = space.decode(tokens)
        if spec.arch_id not in exclude:
            out.setdefault(spec.arch_id, spec)
        if len(out) == n:
            break
    return list(out.values())
