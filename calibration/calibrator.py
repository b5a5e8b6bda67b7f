"""A calibration round: choose candidates, measure them on the device, compare with the
predictor, append to its training set and refit."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Protocol, Sequence

from calibration.drift import round_errors
from calibration.policy import CalibrationPolicy, choose
from mnas_jax.space import ArchSpec

log = logging.getLogger(__name__)

# measure(specs, remeasure_reference) -> measured latency per spec in the predictor's unit
MeasureFn = Callable[[Sequence[ArchSpec]], list[float]]


class Refittable(Protocol):
    def predict(self, specs: Sequence[ArchSpec]) -> tuple[Any, Any]: ...

    def add_and_refit(self, specs: Sequence[ArchSpec], latencies: Sequence[float]) -> None: ...


class Calibrator:
    """Runs rounds per `policy`; `rounds` is the drift series (one dict per round)."""

    def __init__(self, policy: CalibrationPolicy, estimator: Refittable, measure: MeasureFn,
                 remeasure: Callable[[int], list[tuple[ArchSpec, float]]] | None = None,
                 on_round: Callable[[dict[str, Any]], None] | None = None,
                 rounds: Sequence[dict[str, Any]] = ()) -> None:
        self.policy, self.estimator, self.measure = policy, estimator, measure
        self.remeasure, self.on_round = remeasure, on_round
        self.rounds: list[dict[str, Any]] = list(rounds)

    def due(self, step: int) -> bool:
        return self.policy.due(step)

    def measured_ids(self) -> set[str]:
        return {c["arch_id"] for r in self.rounds for c in r["candidates"]}

    def run(self, step: int, samples: Sequence[dict[str, Any]], seed: int) -> dict[str, Any]:
        picked = choose(samples, self.measured_ids(), self.policy, seed)
        if not picked:
            return {"step": step, "skipped": "no unmeasured candidates"}
        started = time.time()
        specs = [ArchSpec.from_string(s["spec"]) for s, _ in picked]
        measured = self.measure(specs)
        predicted, _ = self.estimator.predict(specs)
        before = round_errors(predicted, measured)
        broad = bool(self.rounds) and before["mean_abs_pct"] > 100 * self.policy.error_threshold
        extra_specs, extra_y = [], []
        if broad and self.remeasure is not None and self.policy.n_remeasure:
            for spec, y in self.remeasure(self.policy.n_remeasure):
                extra_specs.append(spec)
                extra_y.append(y)
        self.estimator.add_and_refit(list(specs) + extra_specs, list(measured) + extra_y)
        after_pred, _ = self.estimator.predict(specs)
        record = {
            "step": step, "time": time.time(), "seconds": time.time() - started,
            "candidates": [{"arch_id": s["arch_id"], "why": why, "predicted": float(p),
                            "measured": float(m)}
                           for (s, why), p, m in zip(picked, predicted, measured)],
            "before_refit": before, "after_refit": round_errors(after_pred, measured),
            "broad_refit": broad, "remeasured": len(extra_specs),
        }
        self.rounds.append(record)
        log.info("calibration step %d: %d measured, error %.1f%% before refit", step,
                 len(specs), before["mean_abs_pct"])
        if self.on_round is not None:
            self.on_round(record)
        return record
