"""The interface every search space implements: token sequences <-> ArchSpec, and what the
latency table, the predictor's features and the search ask of a space.

Code outside `mnas_jax.space` asks a space (never its name) what it can do; a new space
implements `SearchSpace` (`SpaceDefaults` gives the usual answers) and is registered in
`mnas_jax.space.registry`.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from mnas_jax.space.parse import parse_arch
from mnas_jax.space.spec import ArchSpec, LayerSpec

#: decision index -> the tokens it may take (a slice fixes some decisions to one token).
Allowed = Callable[[int], Sequence[int]]


class SearchSpace(Protocol):
    """A search space: one integer token per decision."""

    name: str
    setting: str

    @property
    def choices(self) -> tuple[int, ...]:
        """Number of choices of each decision."""
        ...

    @property
    def decision_names(self) -> tuple[str, ...]:
        """One name per decision (token position), e.g. 'b3.kernel'."""

    def decode(self, tokens: Sequence[int]) -> ArchSpec:
        """The architecture a token sequence stands for; ValueError for tokens outside the space."""

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        """Inverse of decode; ValueError naming the first field outside the space."""
        ...

    @property
    def reference_name(self) -> str | None:
        """The reference model measured beside candidates on a device (a latency unit); None
        where the setting has none: no device tables, device fits or relative targets."""
        ...

    def table_layers(self, allowed: Allowed | None = None) -> list[LayerSpec]:
        """Every distinct layer the space (or the part `allowed` leaves) can produce, in a stable
        order: the rows of its lookup table."""
        ...

    def block_stages(self) -> tuple[int, ...]:
        """The stage of each block (decisions named `BLOCK.x` share a block) for per-stage
        features."""
        ...

    def parse(self, text: str) -> ArchSpec:
        """An architecture from what a user typed: a reference name, a spec string, a JSON file
        or the space's own text form."""
        ...

    @property
    def op_names(self) -> tuple[str, ...]:
        """Names of the ops in the space's op-name form (external measurement files); empty
        where it has none."""
        ...

    def parse_ops(self, ops: str) -> tuple[int, ...]:
        """Tokens from space-separated op names; ValueError where the space has no such form."""
        ...


class SpaceDefaults:
    """The usual answers to `SearchSpace`'s questions, for a space to inherit."""

    name: str
    setting: str

    @property
    def reference_name(self) -> str | None:
        """No reference model: the space has no device measurements (override where it has)."""
        return None

    def table_layers(self, allowed: Allowed | None = None) -> list[LayerSpec]:
        """Layers of a layer-wise space (each block's layers depend only on its own decision)."""
        return layerwise_table_layers(self, allowed)  # type: ignore[arg-type]

    def block_stages(self) -> tuple[int, ...]:
        """One stage per block."""
        return tuple(range(len(block_groups(self.decision_names))))  # type: ignore[attr-defined]

    def parse(self, text: str) -> ArchSpec:
        """A reference name (placed in the space's setting), a spec string or a JSON file."""
        return parse_arch(text, self.setting)

    @property
    def op_names(self) -> tuple[str, ...]:
        """No op-name form."""
        return ()

    def parse_ops(self, ops: str) -> tuple[int, ...]:
        """No op-name form: ValueError."""
        raise ValueError(f"space {self.name!r} has no op-name form; external measurement files "
                         "hold op names of a space that has one")


def block_groups(decision_names: Iterable[str]) -> dict[str, list[int]]:
    """Decision indexes per block, in order: decisions named `BLOCK.x` share the block."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(decision_names):
        groups.setdefault(name.split(".", 1)[0], []).append(i)
    return groups


def layerwise_table_layers(space: SearchSpace, allowed: Allowed | None = None) -> list[LayerSpec]:
    """Every layer of a space whose blocks' layers depend only on their own decision (the input
    of each block is fixed by the space's plan): decoding each token everywhere covers them."""
    allowed = allowed or (lambda i: range(space.choices[i]))
    options = [list(allowed(i)) for i in range(len(space.choices))]
    found: dict[str, LayerSpec] = {}
    for t in range(max(space.choices)):
        spec = space.decode([t if t in opts else opts[0] for opts in options])
        for layer in spec.layers():
            found.setdefault(layer.key, layer)
    return list(found.values())


def space_size(choices: Sequence[int]) -> int:
    """Number of distinct token sequences of a space with these choices."""
    return math.prod(choices)


def sample_tokens(choices: Sequence[int], seed: int, n: int) -> np.ndarray:
    """`n` uniform token sequences, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    cols = [rng.integers(0, c, size=n) for c in choices]
    return np.stack(cols, axis=1).astype(np.int32) if n else np.zeros((0, len(choices)), np.int32)
