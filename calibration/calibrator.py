"""A calibration round: choose candidates, measure them on the device, compare with the
predictor, add them to its training set and refit.

Safe under a kill at any instant (``mnas search --resume`` after SIGKILL):
- measuring is resumable: ``measure(specs, tag)`` stores every pass of a round under the round's
  tag and measures only the passes a killed run did not store (nothing is measured twice);
- the round's record (what was measured) is stored before anything is refitted, so no
  calibration point is lost once measured;
- refitting is idempotent: every point has an id (``ARCH@calSTEP``), the estimator skips ids it
  already has, and ``sync`` adds whatever stored rounds the saved predictor lacks. So after a
  resume the predictor on disk holds exactly the stored rounds' points.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Protocol, Sequence

from calibration.error_series import round_errors
from calibration.policy import CalibrationPolicy, choose
from mnas_jax.space import ArchSpec

log = logging.getLogger(__name__)

# measure(specs, tag) -> latency per spec in the predictor's unit; passes stored under `tag`
MeasureFn = Callable[[Sequence[ArchSpec], str], list[float]]
# remeasure(n, tag) -> (spec, latency) of n earlier training archs, measured again
RemeasureFn = Callable[[int, str], list[tuple[ArchSpec, float]]]


class RefittableEstimator(Protocol):
    """A latency estimator that takes new measured points and refits (and saves) itself."""

    def predict(self, specs: Sequence[ArchSpec]) -> tuple[Any, Any]:
        """(latency, uncertainty) per spec."""

    def add_points(self, specs: Sequence[ArchSpec], latencies: Sequence[float], ids: Sequence[str]) -> int:
        """Refit with the points whose ids it does not hold yet; returns how many were new."""
        ...


def round_tag(step: int) -> str:
    """The tag of a round's device measurements (one round per step at most)."""
    return f"calibration-step{step}"


def point_id(arch_id: str, step: int, remeasured: bool = False) -> str:
    """A calibration point's id in the predictor's training set."""
    return f"{arch_id}@cal{step}" + ("r" if remeasured else "")


def round_points(record: dict[str, Any]) -> list[tuple[ArchSpec, float, str]]:
    """(spec, measured latency, id) of every point a stored round adds to the predictor."""
    step = record["step"]
    out = [(ArchSpec.from_string(c["spec"]), float(c["measured"]), point_id(c["arch_id"], step))
           for c in record.get("candidates", [])]
    out += [(ArchSpec.from_string(c["spec"]), float(c["measured"]), point_id(c["arch_id"], step, True))
            for c in record.get("remeasured_points", [])]
    return out


class Calibrator:
    """Runs rounds per ``policy``; ``rounds`` are the stored round records (the drift series)."""

    def __init__(self, policy: CalibrationPolicy, estimator: RefittableEstimator, measure: MeasureFn,
                 remeasure: RemeasureFn | None = None,
                 on_round: Callable[[dict[str, Any]], None] | None = None,
                 on_refit: Callable[[dict[str, Any]], None] | None = None,
                 rounds: Sequence[dict[str, Any]] = (), refits: Sequence[dict[str, Any]] = ()) -> None:
        self.policy, self.estimator, self.measure = policy, estimator, measure
        self.remeasure, self.on_round, self.on_refit = remeasure, on_round, on_refit
        self.rounds: list[dict[str, Any]] = list(rounds)
        self.refits: dict[int, dict[str, Any]] = {r["step"]: r for r in refits}

    def due(self, step: int) -> bool:
        """Whether a round runs after this step."""
        return self.policy.due(step)

    def measured_ids(self) -> set[str]:
        """Architectures measured by earlier rounds (never chosen again)."""
        return {c["arch_id"] for r in self.rounds for c in r.get("candidates", [])}

    def run(self, step: int, samples: Sequence[dict[str, Any]], seed: int) -> dict[str, Any]:
        """The round of ``step``: measured now, or taken from the store when a killed run already
        measured it; then the predictor is brought up to date. Returns the round's record."""
        record = next((r for r in self.rounds if r["step"] == step), None)
        if record is None:
            record = self._measure_round(step, samples, seed)
            if record.get("skipped"):
                return record
            self.rounds.append(record)
            if self.on_round is not None:
                self.on_round(record)  # stored before the refit: the points are safe from here on
        self.sync()
        return {**record, "after_refit": self.refits.get(step, {}).get("after_refit")}

    def _measure_round(self, step: int, samples: Sequence[dict[str, Any]], seed: int) -> dict[str, Any]:
        picked = choose(samples, self.measured_ids(), self.policy, seed)
        if not picked:
            return {"step": step, "skipped": "no unmeasured candidates"}
        started = time.time()
        specs = [ArchSpec.from_string(s["spec"]) for s, _ in picked]
        measured = self.measure(specs, round_tag(step))
        predicted, _ = self.estimator.predict(specs)
        before = round_errors(predicted, measured)
        earlier = [r for r in self.rounds if not r.get("skipped")]
        broad = bool(earlier) and before["mean_abs_pct"] > 100 * self.policy.error_threshold
        extra: list[tuple[ArchSpec, float]] = []
        if broad and self.remeasure is not None and self.policy.n_remeasure:
            extra = self.remeasure(self.policy.n_remeasure, round_tag(step) + "-remeasure")
        log.info("calibration step %d: %d measured, error %.1f%% before refit", step, len(specs),
                 before["mean_abs_pct"])
        return {
            "step": step, "time": time.time(), "seconds": time.time() - started,
            "candidates": [{"arch_id": s["arch_id"], "spec": s["spec"], "why": why, "predicted": float(p),
                            "measured": float(m)} for (s, why), p, m in zip(picked, predicted, measured)],
            "before_refit": before, "broad_refit": broad, "remeasured": len(extra),
            "remeasured_points": [{"arch_id": sp.arch_id, "spec": sp.to_string(), "measured": float(y)}
                                  for sp, y in extra],
        }

    def sync(self) -> int:
        """Refit with every stored round's points the estimator lacks; record each round's error
        after its refit. Returns the number of points added (0: the predictor was up to date)."""
        points = [p for r in self.rounds if not r.get("skipped") for p in round_points(r)]
        added = self.estimator.add_points([p[0] for p in points], [p[1] for p in points], [p[2] for p in points]) \
            if points else 0
        for r in self.rounds:
            if r.get("skipped") or r["step"] in self.refits:
                continue
            specs = [ArchSpec.from_string(c["spec"]) for c in r["candidates"]]
            after, _ = self.estimator.predict(specs)
            refit = {"step": r["step"], "after_refit": round_errors(after, [c["measured"] for c in r["candidates"]])}
            self.refits[r["step"]] = refit
            if self.on_refit is not None:
                self.on_refit(refit)
        return added

    def series(self) -> list[dict[str, Any]]:
        """The rounds with their after-refit errors: the drift series for the report."""
        return [{**r, "after_refit": self.refits.get(r["step"], {}).get("after_refit")}
                for r in self.rounds if not r.get("skipped")]
