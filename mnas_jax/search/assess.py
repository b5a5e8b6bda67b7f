"""An unbiased verdict on the found models: re-trained with fresh seeds beside the baselines.

The search's own accuracy of its best model is the best of many noisy proxy runs: selection
bias, not evidence. So the report re-trains the top-k found models and every baseline with the
same budget and ``n`` fresh seeds each (never the search's seeds), measures their latency again,
and calls a found model *dominant* over a baseline only when

    latency(found) <= latency(baseline)   and
    mean_acc(found) - mean_acc(baseline) > z * sqrt(sd_f^2 / n_f + sd_b^2 / n_b)

with z = 2 (the difference of the means exceeds twice its standard error from the seed spread).
A model faster at an accuracy the seeds cannot tell apart is reported as such, not as dominant.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Sequence

Z_DOMINANCE = 2.0
RULE = ("dominates: measured latency no higher, and mean accuracy higher by more than "
        f"{Z_DOMINANCE:g} standard errors of the difference (sqrt(sd_a^2/n_a + sd_b^2/n_b), over fresh seeds)")


@dataclasses.dataclass(frozen=True)
class Assessed:
    """A model re-trained with fresh seeds and measured again."""

    name: str
    kind: str  # "found" | "baseline"
    arch_id: str
    spec: str
    accuracies: tuple[float, ...]  # one per seed that trained (failed seeds are counted apart)
    failed: int
    latency: float  # measured again, in the search's latency unit
    search_accuracy: float | None = None  # what the search saw (found models)
    predicted_latency: float | None = None

    @property
    def n(self) -> int:
        """Number of seeds that trained."""
        return len(self.accuracies)

    @property
    def mean(self) -> float:
        """Mean accuracy over the trained seeds (nan when none trained)."""
        return statistics.fmean(self.accuracies) if self.accuracies else float("nan")

    @property
    def sd(self) -> float:
        """Sample standard deviation of the accuracies (nan with fewer than two)."""
        return statistics.stdev(self.accuracies) if self.n > 1 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with mean and sd."""
        return {**dataclasses.asdict(self), "mean_accuracy": self.mean, "sd_accuracy": self.sd, "n": self.n}


def retrain_seeds(base: int, n: int) -> list[int]:
    """``n`` training seeds for the report, disjoint from the search's child seeds."""
    return [(base * 7_919 + 1_000_003 * (k + 1) + 424_242) % (2**31 - 1) for k in range(n)]


def dominates(a: Assessed, b: Assessed, z: float = Z_DOMINANCE) -> bool:
    """The module's rule: ``a`` no slower than ``b`` and more accurate beyond the seed noise."""
    if a.n < 2 or b.n < 2 or a.latency > b.latency:
        return False
    se = math.sqrt(a.sd**2 / a.n + b.sd**2 / b.n)
    diff = a.mean - b.mean
    return diff > 0 and diff > z * se


def verdicts(found: Sequence[Assessed], baselines: Sequence[Assessed], z: float = Z_DOMINANCE) -> list[dict[str, Any]]:
    """Per found model: the baselines it dominates, those that dominate it, and those it is
    faster than at an accuracy the seeds cannot separate."""
    out = []
    for f in found:
        out.append({
            "name": f.name, "arch_id": f.arch_id,
            "dominates": [b.name for b in baselines if dominates(f, b, z)],
            "dominated_by": [b.name for b in baselines if dominates(b, f, z)],
            "faster_at_indistinguishable_accuracy": [
                b.name for b in baselines
                if f.latency < b.latency and not dominates(f, b, z) and not dominates(b, f, z)
                and f.n > 1 and b.n > 1 and f.mean >= b.mean - z * math.sqrt(f.sd**2 / f.n + b.sd**2 / b.n)],
        })
    return out
