"""The measurement protocol: warm-up, timed runs until a count and a time, robust statistics.

Defaults were chosen from runs on this 2-core machine (LiteRT 2.3, one thread, XNNPACK; the
numbers are in benchmarks/reports/measured_earlier.md):
- only the first invoke of a model is slower than the steady state, so 5 warm-up runs are
  plenty;
- 50-run medians are what the drift numbers in DESIGN.md were taken with;
- a 0.1 s minimum keeps tiny one-layer models from being timed over a few ms only, while a full
  lookup table still takes minutes, not hours;
- a 5% robust CV separates a block timed beside another job on the other core (usable) from one
  timed with a job sharing the core (useless).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from latency.measurement import Fingerprint, Measurement, check_json_fields

log = logging.getLogger(__name__)

#: IQR of a normal distribution in units of its standard deviation.
NORMAL_IQR = 1.3489795


class MeasurementTimeout(TimeoutError):
    """A measurement did not finish before its deadline."""


@dataclass(frozen=True)
class MeasureProtocol:
    """How to time one model: the same parameters drive LiteRT here and benchmark_model on ADB."""

    warmup_runs: int = 5
    min_runs: int = 50
    min_seconds: float = 0.1
    max_seconds: float = 30.0
    max_cv: float = 0.05
    max_retries: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "warmup_runs": self.warmup_runs >= 0,
            "min_runs": self.min_runs >= 1,
            "min_seconds": self.min_seconds >= 0,
            "max_seconds": self.max_seconds > 0 and self.max_seconds >= self.min_seconds,
            "max_cv": self.max_cv > 0,
            "max_retries": self.max_retries >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"MeasureProtocol.{name}={getattr(self, name)!r} is out of range (counts >= 0, "
                    "min_runs >= 1, max_seconds >= min_seconds, max_cv > 0)")

    def to_dict(self) -> dict[str, Any]:
        """The protocol as a plain dict (for JSON requests and stored measurements)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeasureProtocol:
        """Partial dicts are fine (missing fields take the defaults); unknown fields are not."""
        check_json_fields(cls, data)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        try:
            values = {k: type(defaults[k])(v) for k, v in data.items()}
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad MeasureProtocol value in {dict(data)!r}: {e}") from None
        return cls(**values)


class RunStats(NamedTuple):
    """Summary of timed runs (milliseconds); `seconds` is the total timed time."""

    median_ms: float
    min_ms: float
    iqr_ms: float
    cv: float
    runs: int
    seconds: float


def summarize(times_s: Sequence[float]) -> RunStats:
    """Median, min, IQR and robust CV (IQR / 1.349 / median) of per-run times in seconds."""
    t = np.asarray(times_s, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"summarize needs a non-empty 1-D sequence of times, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("summarize got a negative or non-finite run time")
    ms = t * 1e3
    median = float(np.median(ms))
    q1, q3 = np.percentile(ms, [25, 75])
    iqr = float(q3 - q1)
    cv = iqr / NORMAL_IQR / median if median > 0 else 0.0
    return RunStats(median, float(ms.min()), iqr, cv, int(t.size), float(t.sum()))


def time_runs(invoke: Callable[[], object], protocol: MeasureProtocol,
              deadline: float | None = None) -> list[float]:
    """Warm up, then time `invoke` until both min_runs and min_seconds (capped by max_seconds).

    `deadline` is a time.monotonic() value; passing it raises MeasurementTimeout (checked
    between runs) instead of returning fewer runs than asked for.
    """
    def check_deadline() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise MeasurementTimeout("measurement ran past its deadline")

    for _ in range(protocol.warmup_runs):
        invoke()
        check_deadline()
    times: list[float] = []
    start = time.perf_counter_ns()
    while True:
        t0 = time.perf_counter_ns()
        invoke()
        t1 = time.perf_counter_ns()
        times.append((t1 - t0) * 1e-9)
        elapsed = (t1 - start) * 1e-9
        if len(times) >= protocol.min_runs and elapsed >= protocol.min_seconds:
            return times
        if elapsed >= protocol.max_seconds:
            log.warning("max_seconds=%s reached after %d runs", protocol.max_seconds, len(times))
            return times
        check_deadline()


def measure_with_retries(attempt: Callable[[], RunStats], protocol: MeasureProtocol
                         ) -> tuple[RunStats, int]:
    """Run `attempt` again while its CV is above max_cv; keep the steadiest attempt.

    Returns (stats, retries). Noise from a co-running job shows up as a high CV, and a second
    attempt a moment later often lands in a quiet window.
    """
    best = attempt()
    retries = 0
    while best.cv > protocol.max_cv and retries < protocol.max_retries:
        retries += 1
        log.info("CV %.3f above %.3f, re-measuring (%d/%d)", best.cv, protocol.max_cv,
                 retries, protocol.max_retries)
        stats = attempt()
        if stats.cv < best.cv:
            best = stats
    if best.cv > protocol.max_cv:
        log.info("CV %.3f still above %.3f after %d retries", best.cv, protocol.max_cv, retries)
    return best, retries


def to_measurement(stats: RunStats, fingerprint: Fingerprint, warmup: int,
                   retries: int) -> Measurement:
    """Attach the device fingerprint and protocol bookkeeping to the statistics."""
    return Measurement(median_ms=stats.median_ms, min_ms=stats.min_ms, iqr_ms=stats.iqr_ms,
                       cv=stats.cv, runs=stats.runs, warmup=warmup, seconds=stats.seconds,
                       fingerprint=fingerprint, retries=retries)
