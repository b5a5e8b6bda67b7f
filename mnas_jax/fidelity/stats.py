"""Rank agreement between two scorings of the same candidates, with its uncertainty.

Kendall tau-b and Spearman come from `predictor.metrics` (one definition in the project), applied
to ranks (positive, as it expects of a measured side; rank statistics do not change). The 95%
interval is a percentile bootstrap over candidates: draw the candidates with replacement,
recompute tau-b (vectorised over resamples: the same formula, (concordant - discordant) /
sqrt(untied pairs in x * untied pairs in y)), take the 2.5th and 97.5th percentiles (resamples
where one side is constant, and tau undefined, are left out).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from predictor.metrics import kendall_tau, spearman

MIN_N = 4  # fewer candidates than this: no rank statistic is reported


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ranks(x: Sequence[float]) -> np.ndarray:
    return rankdata(np.asarray(x, float))


def tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall tau-b of two scorings; None when undefined (fewer than 2, or a side constant)."""
    if len(x) < 2 or np.ptp(np.asarray(x, float)) == 0 or np.ptp(np.asarray(y, float)) == 0:
        return None
    return _finite(kendall_tau(_ranks(x), _ranks(y)))


def rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation; None when undefined."""
    if len(x) < 2:
        return None
    return _finite(spearman(_ranks(x), _ranks(y)))


def taus_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair of two (resamples x candidates) matrices; nan where a
    row is constant."""
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    num = (sx * sy).sum(axis=(1, 2))
    den = np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_tau(x: Sequence[float], y: Sequence[float], *, resamples: int = 1000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of Kendall tau over candidates drawn with replacement;
    None when fewer than half the resamples give a defined tau."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    n = len(xa)
    if n < 2 or resamples < 1:
        return None
    idx = np.random.default_rng(seed).integers(0, n, (resamples, n))
    chunk = max(1, 2_000_000 // (n * n))
    all_taus = np.concatenate([taus_b(xa[idx[i:i + chunk]], ya[idx[i:i + chunk]])
                               for i in range(0, resamples, chunk)])
    values = all_taus[np.isfinite(all_taus)]
    if len(values) < resamples / 2:
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return (float(lo), float(hi))


def top_overlap(x: Sequence[float], y: Sequence[float], share: float = 0.25) -> float | None:
    """Share of the top ``share`` by ``y`` that is also in the top ``share`` by ``x`` (at least
    one candidate); None without candidates."""
    n = len(x)
    if n == 0:
        return None
    k = max(1, math.ceil(share * n))
    top_x = set(np.argsort(-np.asarray(x, float), kind="stable")[:k].tolist())
    top_y = set(np.argsort(-np.asarray(y, float), kind="stable")[:k].tolist())
    return len(top_x & top_y) / k


def seed_tau(scores: np.ndarray) -> float | None:
    """Mean Kendall tau between the seeds (columns) of a candidates x seeds matrix: a scoring's
    own noise floor; None with fewer than 2 seeds or ``MIN_N`` candidates."""
    if scores.ndim != 2 or scores.shape[1] < 2 or scores.shape[0] < MIN_N:
        return None
    pairs = [tau(scores[:, a], scores[:, b]) for a, b in itertools.combinations(range(scores.shape[1]), 2)]
    defined = [p for p in pairs if p is not None]
    return float(np.mean(defined)) if defined else None


def agreement(x: Sequence[float], y: Sequence[float], *, resamples: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """Kendall tau (with its bootstrap interval), Spearman and top-25% overlap of ``x`` against
    ``y``; nulls with fewer than ``MIN_N`` candidates."""
    n = len(x)
    if n < MIN_N:
        return {"n": n, "kendall_tau": None, "tau_ci": None, "spearman": None, "top25_overlap": None}
    ci = bootstrap_tau(x, y, resamples=resamples, seed=seed)
    return {"n": n, "kendall_tau": tau(x, y), "tau_ci": None if ci is None else list(ci),
            "spearman": rho(x, y), "top25_overlap": top_overlap(x, y)}
