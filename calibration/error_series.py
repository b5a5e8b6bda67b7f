"""The predictor's error over search time: a series saved as JSON and drawn as a PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from mnas_jax.files import save_figure_atomic, write_atomic
from predictor.metrics import max_abs_pct, mean_abs_pct, mean_bias, within_10


def round_errors(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """The predictor's error on one round's fresh measurements (metrics of predictor.metrics)."""
    if not len(measured):
        return {"n": 0, "mean_abs_pct": 0.0, "max_abs_pct": 0.0, "bias_pct": 0.0, "within_10": 0.0}
    return {"n": len(measured), "mean_abs_pct": mean_abs_pct(predicted, measured),
            "max_abs_pct": max_abs_pct(predicted, measured), "bias_pct": mean_bias(predicted, measured),
            "within_10": within_10(predicted, measured)}


def write_series(rounds: Sequence[dict[str, Any]], out_dir: Path) -> tuple[Path, Path | None]:
    """calibration.json and calibration.png (error per round over search steps)."""
    from matplotlib.figure import Figure

    path = write_atomic(Path(out_dir) / "calibration.json", json.dumps(list(rounds), indent=1))
    if not rounds:
        return path, None
    steps = [r["step"] for r in rounds]
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.plot(steps, [r["before_refit"]["mean_abs_pct"] for r in rounds], "o-",
            label="error of the predictor before the round's refit")
    after = [(r["step"], r["after_refit"]["mean_abs_pct"]) for r in rounds if r.get("after_refit")]
    if after:
        ax.plot(*zip(*after), "s--", label="after the refit (same candidates)")
    ax.axhline(10, color="gray", ls="--", lw=0.8, label="10%")
    ax.set_xlabel("search step")
    ax.set_ylabel("mean |pred/measured - 1| (%)")
    ax.set_title("predictor error on fresh device measurements")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = Path(out_dir) / "calibration.png"
    save_figure_atomic(fig, png)
    return path, png
