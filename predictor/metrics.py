"""Error metrics of latency predictions against measurements (same unit on both sides).

One function per number, so a report is a plain dict and each number has one definition:
RMSE, RMSPE (root mean squared relative error, in %), share within +-5% / +-10% (relative error
|pred / true - 1| <= tol), Kendall tau-b and Spearman rho (rank agreement, what a search needs).
`noise_floor` scores a second measuring pass against the first with the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from mnas_jax.files import save_figure_atomic


def _pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(true, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predictions for {t.size} measurements; pass one per arch")
    if p.size == 0:
        raise ValueError("no predictions to score; pass at least one")
    if not np.all(np.isfinite(p)) or not np.all(np.isfinite(t)):
        raise ValueError("predictions and measurements must be finite numbers")
    if np.any(t <= 0):
        raise ValueError(f"measured latencies must be > 0, got min {t.min()!r}")
    return p, t


def rmse(pred: Any, true: Any) -> float:
    """Root mean squared error of predictions against measured latencies."""
    p, t = _pair(pred, true)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def rmspe(pred: Any, true: Any) -> float:
    """Root mean squared percentage error, in percent."""
    p, t = _pair(pred, true)
    return float(100.0 * np.sqrt(np.mean((p / t - 1.0) ** 2)))


def within(pred: Any, true: Any, tol: float) -> float:
    """Share of predictions within +-tol relative error (tol=0.1 for +-10%)."""
    if not 0 < tol < 1:
        raise ValueError(f"tol={tol!r} must be a fraction in (0, 1), e.g. 0.1 for +-10%")
    p, t = _pair(pred, true)
    return float(np.mean(np.abs(p / t - 1.0) <= tol + 1e-12))


def within_5(pred: Any, true: Any) -> float:
    """Share of predictions within +-5% of the measured latency."""
    return within(pred, true, 0.05)


def within_10(pred: Any, true: Any) -> float:
    """Share of predictions within +-10% of the measured latency."""
    return within(pred, true, 0.10)


def kendall_tau(pred: Any, true: Any) -> float:
    """Kendall tau-b (ties in either side handled); nan when either side is constant."""
    p, t = _pair(pred, true)
    if p.size < 2:
        return float("nan")
    return float(stats.kendalltau(p, t).statistic)


def spearman(pred: Any, true: Any) -> float:
    """Spearman rank correlation of predicted and measured latencies (nan if undefined)."""
    p, t = _pair(pred, true)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return float("nan")
    return float(stats.spearmanr(p, t).statistic)


def mean_abs_pct(pred: Any, true: Any) -> float:
    """Mean absolute relative error |pred / true - 1|, in percent."""
    p, t = _pair(pred, true)
    return float(100.0 * np.mean(np.abs(p / t - 1.0)))


def max_abs_pct(pred: Any, true: Any) -> float:
    """Largest absolute relative error, in percent."""
    p, t = _pair(pred, true)
    return float(100.0 * np.max(np.abs(p / t - 1.0)))


def mean_bias(pred: Any, true: Any) -> float:
    """Mean relative error in percent (negative: predictions too low)."""
    p, t = _pair(pred, true)
    return float(100.0 * np.mean(p / t - 1.0))


METRICS = {
    "rmse": rmse,
    "rmspe": rmspe,
    "within_5": within_5,
    "within_10": within_10,
    "kendall_tau": kendall_tau,
    "spearman": spearman,
    "bias_pct": mean_bias,
}


def report(pred: Any, true: Any) -> dict[str, float]:
    """Every metric above, plus the number of archs scored."""
    p, t = _pair(pred, true)
    out = {name: fn(p, t) for name, fn in METRICS.items()}
    out["n"] = int(p.size)
    return out


def noise_floor(pass1: Any, pass2: Any) -> dict[str, float]:
    """The label noise floor: the same archs measured twice, pass 2 scored against pass 1 with
    every metric above, as if it were a predictor of pass 1's labels.

    No predictor can be trusted to beat it on fresh labels of the same protocol: a predictor
    equal to the true latency scores about this against one noisy pass (a little better, since
    only one side is noisy). Printed beside a predictor's accuracy so that an accuracy close to
    it reads as "limited by the labels", not by the predictor.
    """
    return report(pass2, pass1)


def coverage(pred: Any, true: Any, sd: Any, k: float = 1.0) -> float:
    """Share of measurements within k predicted standard deviations: checks the uncertainty."""
    p, t = _pair(pred, true)
    s = np.asarray(sd, dtype=np.float64).ravel()
    if s.shape != p.shape:
        raise ValueError(f"{s.size} uncertainties for {p.size} predictions")
    return float(np.mean(np.abs(p - t) <= k * s))


def plot_predicted_vs_measured(path: str, series: dict[str, tuple[Any, Any]], *, title: str,
                               unit: str = "ms") -> None:
    """Scatter of predicted vs measured per method, with the y = x and +-10% lines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    lo, hi = np.inf, -np.inf
    for label, (pred, true) in series.items():
        p, t = _pair(pred, true)
        ax.scatter(t, p, s=6, alpha=0.5, label=f"{label} (+-10%: {within_10(p, t):.1%})")
        lo, hi = min(lo, t.min(), p.min()), max(hi, t.max(), p.max())
    xs = np.array([lo, hi])
    ax.plot(xs, xs, "k-", lw=1)
    for f in (0.9, 1.1):
        ax.plot(xs, xs * f, "k:", lw=0.8)
    ax.set_xlabel(f"measured ({unit})")
    ax.set_ylabel(f"predicted ({unit})")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path)
