"""What the search loop exchanges with its parts (evaluators, latency estimators, calibration)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from mnas_jax.space import ArchSpec

STATUSES = ("ok", "failed", "screened")


@dataclasses.dataclass(frozen=True)
class ChildResult:
    """ACC(m) of one child, or why there is none."""

    arch_id: str
    status: str  # ok | failed | screened
    accuracy: float | None = None
    reason: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"child status {self.status!r} is not one of {STATUSES}")


class Evaluator(Protocol):
    """Trains children for ACC(m): in-process, or on a cluster (same contract)."""

    def evaluate(self, specs: Sequence[ArchSpec], seeds: Sequence[int],
                 on_result: Callable[[int, ChildResult], None] | None = None) -> list[ChildResult]:
        """Results in input order; `on_result(i, result)` is called as each one arrives."""
        ...


class LatencyEstimator(Protocol):
    """LAT(m) for the reward, in the unit of the reward's target ('ms' or 'relative')."""

    unit: str

    def predict(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        """(latency, uncertainty) per spec."""
        ...


class CalibrationHook(Protocol):
    """Measures a few candidates on the real device now and then and refits the estimator."""

    def due(self, step: int) -> bool:
        """Whether a calibration round runs after `step`."""

    def run(self, step: int, samples: Sequence[dict[str, Any]], seed: int) -> dict[str, Any]:
        """Measure, compare, refit; returns the round's record (errors, measured latencies)."""
        ...
