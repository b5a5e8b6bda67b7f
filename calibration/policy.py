"""Which candidates a calibration round sends to the device."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class CalibrationPolicy:
    """Every `every` steps measure up to `n_best + n_uncertain + n_random` candidates not measured
    before: the best rewards (the models the search will keep), the most uncertain predictions
    (where the predictor learns most) and a random one (an unbiased error estimate). When the
    running error passes `error_threshold`, the next round also re-measures the reference and
    `n_remeasure` earlier training archs (the device may have drifted) before a broader refit."""

    every: int = 2
    n_best: int = 1
    n_uncertain: int = 1
    n_random: int = 1
    error_threshold: float = 0.10  # mean |pred/measured - 1| of a round
    n_remeasure: int = 3

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"calibration every={self.every} must be >= 1 step")
        if min(self.n_best, self.n_uncertain, self.n_random, self.n_remeasure) < 0:
            raise ValueError("calibration counts must be >= 0")
        if self.error_threshold <= 0:
            raise ValueError(f"error_threshold={self.error_threshold} must be > 0")

    @property
    def budget(self) -> int:
        """Candidates measured per round: best + most uncertain + random."""
        return self.n_best + self.n_uncertain + self.n_random

    def due(self, step: int) -> bool:
        """Whether a calibration round runs after `step` (every `every` steps)."""
        return (step + 1) % self.every == 0


def choose(samples: Sequence[dict[str, Any]], measured: set[str], policy: CalibrationPolicy,
           seed: int) -> list[tuple[dict[str, Any], str]]:
    """(sample, why) pairs: best reward, highest relative uncertainty, random; distinct archs."""
    pool: dict[str, dict[str, Any]] = {}
    for s in samples:
        if s["arch_id"] not in measured:
            pool.setdefault(s["arch_id"], s)
    picked: list[tuple[dict[str, Any], str]] = []
    ids: set[str] = set()

    def take(ordered: list[dict[str, Any]], n: int, why: str) -> None:
        for s in ordered:
            if len([p for p in picked if p[1] == why]) >= n:
                return
            if s["arch_id"] not in ids:
                ids.add(s["arch_id"])
                picked.append((s, why))

    cands = list(pool.values())
    rewarded = [s for s in cands if s.get("reward") is not None]  # screened ones have none
    take(sorted(rewarded, key=lambda s: -s["reward"]), policy.n_best, "best_reward")
    take(sorted(cands, key=lambda s: -s["uncertainty"] / max(s["predicted_latency"], 1e-12)),
         policy.n_uncertain, "uncertain")
    rng = np.random.default_rng(seed)
    take([cands[i] for i in rng.permutation(len(cands))], policy.n_random, "random")
    return picked
