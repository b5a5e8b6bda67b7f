"""A slice of a search space: some decisions fixed to one choice, the rest free.

Named `BASE@ITEMS`, e.g. `mnasnet@op=2,kernel=0,se=0,skip=1,filters=1`: each item fixes a
decision to a token (the index of a choice, as `mnas space describe` lists them), either in
every block (`kernel=0`) or in one (`b3.kernel=1`). The name is the slice's identity wherever a
space name goes (tables, predictors, configs), so a table built for a slice, a predictor fitted
on it and a search over it all agree. Why: a slice has a far smaller lookup table (the slice
above has 25 layers instead of ~2,500), so a new device can be tried end to end in minutes.

A slice is a search space itself: fixed decisions keep one choice (token 0 in the slice's own
tokens) and decode to the fixed token of the base space.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from mnas_jax.space.base import Allowed, SearchSpace, SpaceDefaults
from mnas_jax.space.spec import ArchSpec, LayerSpec
from mnas_jax.space.tokens import token_row

SEPARATOR = "@"


@dataclasses.dataclass(frozen=True)
class SlicedSpace(SpaceDefaults):
    """`base` with the decisions in `fixed` ((index, token) pairs, sorted) held at one token."""

    base: SearchSpace
    fixed: tuple[tuple[int, int], ...]
    items: str  # the canonical item text after the separator

    @property
    def name(self) -> str:
        """The base space's name with the fixed decisions, e.g. 'mnasnet@se=0'."""
        return f"{self.base.name}{SEPARATOR}{self.items}"

    @property
    def setting(self) -> str:
        """The base space's setting."""
        return self.base.setting

    @property
    def decision_names(self) -> tuple[str, ...]:
        """The base space's decision names (a fixed decision keeps its position)."""
        return self.base.decision_names

    @property
    def choices(self) -> tuple[int, ...]:
        """The base space's choices, with 1 for each fixed decision."""
        fixed = dict(self.fixed)
        return tuple(1 if i in fixed else c for i, c in enumerate(self.base.choices))

    @property
    def reference_name(self) -> str | None:
        """The base space's reference model."""
        return self.base.reference_name

    def table_layers(self, allowed: Allowed | None = None) -> list[LayerSpec]:
        """The base space's layers that the slice can produce."""
        return self.base.table_layers(self.allowed)

    def block_stages(self) -> tuple[int, ...]:
        """The base space's stages."""
        return self.base.block_stages()

    def parse(self, text: str) -> ArchSpec:
        """As the base space parses it."""
        return self.base.parse(text)

    def allowed(self, index: int) -> tuple[int, ...]:
        """Base-space tokens decision `index` may take in the slice."""
        fixed = dict(self.fixed)
        return (fixed[index],) if index in fixed else tuple(range(self.base.choices[index]))

    def to_base(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """The base space's tokens of a slice's tokens (fixed decisions filled in)."""
        toks = list(token_row(tokens, self.choices))
        for i, t in self.fixed:
            toks[i] = t
        return tuple(toks)

    def decode(self, tokens: Sequence[int]) -> ArchSpec:
        """The architecture of a slice's tokens, decoded by the base space."""
        return self.base.decode(self.to_base(tokens))

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        """The slice's tokens of an architecture; ValueError if it is outside the slice."""
        toks = list(self.base.encode(spec))
        names = self.base.decision_names
        for i, t in self.fixed:
            if toks[i] != t:
                raise ValueError(f"{names[i]}={toks[i]} is outside the slice {self.name!r} "
                                 f"(fixed at {t})")
            toks[i] = 0
        return tuple(toks)


def narrower_space(a: str, b: str) -> str | None:
    """Of two space names, the one inside the other (a slice inside its base, or either when
    equal); None when neither is inside the other."""
    if a == b or a.startswith(b + SEPARATOR):
        return a
    if b.startswith(a + SEPARATOR):
        return b
    return None


def slice_space(base: SearchSpace, items: str) -> SlicedSpace:
    """Parse `items` ('op=2,b3.kernel=1,...') into a slice of `base`; ValueError names the item."""
    names = base.decision_names
    suffixes = sorted({n.split(".", 1)[-1] for n in names})
    fixed: dict[int, int] = {}
    for item in (s.strip() for s in items.split(",")):
        decision, sep, value = item.partition("=")
        where = [i for i, n in enumerate(names) if n == decision or n.split(".", 1)[-1] == decision]
        if not sep or not where:
            raise ValueError(f"space slice item {item!r}: use DECISION=TOKEN with a decision of "
                             f"{base.name} ({', '.join(suffixes)}, or one block's, e.g. "
                             f"{names[0]}); see 'mnas space describe'")
        try:
            token = int(value)
        except ValueError:
            raise ValueError(f"space slice item {item!r}: {value!r} is not a token index") from None
        for i in where:
            if not 0 <= token < base.choices[i]:
                raise ValueError(f"space slice item {item!r}: {names[i]} has tokens "
                                 f"0..{base.choices[i] - 1}")
            fixed[i] = token
    return SlicedSpace(base, tuple(sorted(fixed.items())), ",".join(
        s.strip() for s in items.split(",")))
