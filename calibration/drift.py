"""The predictor's error over search time: a series saved as JSON and drawn as a PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnas_jax.files import write_atomic


def round_errors(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    err = p / m - 1
    return {"n": int(len(m)), "mean_abs_pct": float(np.mean(np.abs(err)) * 100) if len(m) else 0.0,
            "max_abs_pct": float(np.max(np.abs(err)) * 100) if len(m) else 0.0,
            "bias_pct": float(np.mean(err) * 100) if len(m) else 0.0,
            "within_10": float(np.mean(np.abs(err) <= 0.10)) if len(m) else 0.0}


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
    fig.savefig(png, dpi=120)
    return path, png
