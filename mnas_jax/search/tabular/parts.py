"""A tabular benchmark as the search loop's parts: a space (tokens <-> rows), an evaluator (ACC(m)
read from the table, no training) and a latency estimator (LAT(m) read from a column).

Each query of the evaluator returns ONE training seed's accuracy, chosen by the child's seed
(``seed mod number of seeds``), as a real training of the child would give one run's accuracy
and not the mean over seeds; the search's pick is judged by the mean (its true accuracy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from mnas_jax.search.tabular.table import TabularBenchmark
from mnas_jax.search.types import ChildResult
from mnas_jax.space.tokens import token_row


@dataclasses.dataclass(frozen=True)
class TableArch:
    """One architecture of a tabular space: its tokens and its row's name (its identity)."""

    tokens: tuple[int, ...]
    name: str
    row: int | None  # None: the file has no row for these tokens

    @property
    def arch_id(self) -> str:
        """The identity the search loop stores samples under."""
        return self.name

    def to_string(self) -> str:
        """The text form stored with each sample: the row's name."""
        return self.name


class TabularSpace:
    """The token space of a benchmark file: one decision per token position."""

    def __init__(self, table: TabularBenchmark) -> None:
        self.table = table
        self.name = f"table:{table.sha256[:10]}"
        self.setting = table.setting or "table"

    @property
    def choices(self) -> tuple[int, ...]:
        """Number of choices of each decision."""
        return self.table.choices

    @property
    def decision_names(self) -> tuple[str, ...]:
        """One name per decision."""
        return self.table.decision_names

    def decode(self, tokens: Sequence[int]) -> TableArch:
        """The architecture of a token sequence (row None where the file lacks it)."""
        t = token_row(tokens, self.choices)
        row = self.table.row_of(t)
        return TableArch(t, self.table.names[row] if row is not None else "-".join(map(str, t)), row)

    def encode(self, arch: TableArch) -> tuple[int, ...]:
        """Inverse of decode."""
        return arch.tokens


class TableEvaluator:
    """ACC(m) from the table: one training seed's accuracy per query (see the module)."""

    def __init__(self, table: TabularBenchmark) -> None:
        self.table = table
        self.queries = 0

    def evaluate(self, specs: Sequence[TableArch], seeds: Sequence[int],
                 on_result: Callable[[int, ChildResult], None] | None = None) -> list[ChildResult]:
        """Results in input order; a row missing from the file fails (reward 0), with the reason."""
        out = []
        n_seeds = self.table.accuracy.shape[1]
        for i, (arch, seed) in enumerate(zip(specs, seeds)):
            self.queries += 1
            if arch.row is None:
                res = ChildResult(arch.arch_id, "failed", None, f"tokens {arch.name} are not in "
                                  f"{self.table.path}")
            else:
                col = int(seed) % n_seeds
                res = ChildResult(arch.arch_id, "ok", float(self.table.accuracy[arch.row, col]),
                                  extra={"seed_column": self.table.accuracy_columns[col]})
            out.append(res)
            if on_result is not None:
                on_result(i, res)
        return out


class TableLatency:
    """LAT(m) from one latency column of the table, in ms (exact: no uncertainty)."""

    unit = "ms"

    def __init__(self, table: TabularBenchmark, column: str | None = None) -> None:
        self.column = table.latency_column(column)
        self.values = table.latency(column)
        # an architecture the file lacks gets the slowest latency: screened first, never favoured
        self.missing = float(self.values.max())

    def predict(self, specs: Sequence[TableArch]) -> tuple[np.ndarray, np.ndarray]:
        """(latency ms, zero uncertainty) per architecture."""
        lat = np.array([self.values[s.row] if s.row is not None else self.missing for s in specs])
        return lat, np.zeros(len(specs))
