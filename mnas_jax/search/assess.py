"""A verdict on the found models that cannot flatter: re-trained with fresh seeds beside the
baselines, scored on images the search never saw.

The search selects on the validation split, and its accuracy of its best model is the best of many
noisy proxy runs: selection bias, not evidence. So the report re-trains the top-k found models and
every baseline with the same budget and ``n`` fresh seeds each (never the search's seeds),
measures their latency again, scores them on the TEST split (held out from the search), and calls
a found model *dominant* over a baseline only when

    latency(found) <= latency(baseline)   and
    a one-sided Welch t-test (unequal variances) of test accuracy found > baseline has p < 0.05,
    over >= 3 seeds each.

A model faster at an accuracy the test cannot tell apart is reported as such, not as dominant.
The winner's curse of each found model is shown too: its search-time accuracy against the mean
validation accuracy of its fresh re-trainings (the same split and budget the search used).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Sequence

ALPHA = 0.05
MIN_SEEDS = 3
RULE = (f"dominates: measured latency no higher, and test accuracy (held out from the search) higher "
        f"by a one-sided Welch t-test at {ALPHA:g} over >= {MIN_SEEDS} fresh seeds each")


@dataclasses.dataclass(frozen=True)
class Assessed:
    """A model re-trained with fresh seeds and measured again."""

    name: str
    kind: str  # "found" | "baseline"
    arch_id: str
    spec: str
    accuracies: tuple[float, ...]  # test accuracy, one per seed that trained (failures apart)
    failed: int
    latency: float  # measured again, in the search's latency unit
    search_accuracy: float | None = None  # what the search saw (found models)
    predicted_latency: float | None = None
    val_accuracies: tuple[float, ...] = ()  # the same re-trainings on the search's validation images

    @property
    def val_mean(self) -> float:
        """Mean validation accuracy of the re-trainings (nan when none)."""
        return statistics.fmean(self.val_accuracies) if self.val_accuracies else float("nan")

    @property
    def winners_curse(self) -> float | None:
        """Search-time accuracy minus the re-trainings' mean validation accuracy (found models)."""
        if self.search_accuracy is None or not self.val_accuracies:
            return None
        return self.search_accuracy - self.val_mean

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
        return {**dataclasses.asdict(self), "mean_accuracy": self.mean, "sd_accuracy": self.sd, "n": self.n,
                "val_mean_accuracy": self.val_mean, "winners_curse": self.winners_curse}


def retrain_seeds(base: int, n: int) -> list[int]:
    """``n`` training seeds for the report, disjoint from the search's child seeds."""
    return [(base * 7_919 + 1_000_003 * (k + 1) + 424_242) % (2**31 - 1) for k in range(n)]


def welch_p(a: Assessed, b: Assessed) -> float | None:
    """One-sided Welch t-test p-value that ``a``'s mean accuracy exceeds ``b``'s (None with fewer
    than MIN_SEEDS seeds on either side; 0 or 1 when both spreads are 0)."""
    from scipy import stats

    if a.n < MIN_SEEDS or b.n < MIN_SEEDS:
        return None
    if a.sd == 0 and b.sd == 0:
        return 0.0 if a.mean > b.mean else 1.0
    p = float(stats.ttest_ind(a.accuracies, b.accuracies, equal_var=False, alternative="greater").pvalue)
    return p if math.isfinite(p) else None


def dominates(a: Assessed, b: Assessed, alpha: float = ALPHA) -> bool:
    """The module's rule: ``a`` no slower than ``b`` and more accurate by Welch's test at ``alpha``."""
    if a.latency > b.latency:
        return False
    p = welch_p(a, b)
    return p is not None and p < alpha


def verdicts(found: Sequence[Assessed], baselines: Sequence[Assessed], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Per found model: the baselines it dominates, those that dominate it, those it is faster
    than at an accuracy the test cannot separate, and every p-value."""
    out = []
    for f in found:
        out.append({
            "name": f.name, "arch_id": f.arch_id,
            "dominates": [b.name for b in baselines if dominates(f, b, alpha)],
            "dominated_by": [b.name for b in baselines if dominates(b, f, alpha)],
            "faster_at_indistinguishable_accuracy": [
                b.name for b in baselines if f.latency < b.latency and welch_p(f, b) is not None
                and not dominates(f, b, alpha) and not dominates(b, f, alpha)],
            "p_more_accurate": {b.name: welch_p(f, b) for b in baselines},
            "p_less_accurate": {b.name: welch_p(b, f) for b in baselines},
        })
    return out
