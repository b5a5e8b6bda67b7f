"""The search report directory: samples (CSV + JSON), Pareto front, plots, best models."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnas_jax.search.pareto import pareto_front

SAMPLE_COLUMNS = ("step", "index", "arch_id", "status", "accuracy", "predicted_latency",
                  "uncertainty", "measured_latency", "reward", "train_seconds", "reason", "spec")


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_samples(samples: Sequence[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _atomic_text(out / "samples.json", json.dumps(list(samples), indent=1))
    fd, tmp = tempfile.mkstemp(dir=out, suffix=".tmp")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=SAMPLE_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for s in samples:
            w.writerow(s)
    os.replace(tmp, out / "samples.csv")


def plot_search(samples: Sequence[dict[str, Any]], out: Path, *, target: float, unit: str,
                front: Sequence[dict[str, Any]] = (), baselines: Sequence[dict[str, Any]] = ()
                ) -> list[Path]:
    """reward over steps, histogram of sampled latencies (the paper's Fig. 6), Pareto front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    steps = np.array([s["step"] for s in samples])
    rewards = np.array([s["reward"] for s in samples])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(steps, rewards, s=8, alpha=0.5, label="samples")
    if len(steps):
        mean = [rewards[steps == k].mean() for k in sorted(set(steps))]
        ax.plot(sorted(set(steps)), mean, "r-", label="mean per step")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "reward.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    lat = np.array([s["predicted_latency"] for s in samples])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lat, bins=30)
    ax.axvline(target, color="r", ls="--", label=f"target T = {target:g} {unit}")
    ax.set_xlabel(f"predicted latency ({unit})")
    ax.set_ylabel("sampled models")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "latency_histogram.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ok = [s for s in samples if s["status"] == "ok"]
    ax.scatter([s["predicted_latency"] for s in ok], [s["accuracy"] for s in ok], s=8, alpha=0.3,
               color="gray", label="sampled (predicted latency)")
    if front:
        ax.plot([f["latency"] for f in front], [f["accuracy"] for f in front], "o-", color="C0",
                label="found models (measured)")
    if baselines:
        ax.plot([b["latency"] for b in baselines], [b["accuracy"] for b in baselines], "s--",
                color="C1", label="MobileNetV2 family (measured)")
        for b in baselines:
            ax.annotate(b["name"].replace("mobilenetv2-", ""), (b["latency"], b["accuracy"]),
                        fontsize=7)
    ax.set_xlabel(f"latency ({unit})")
    ax.set_ylabel("validation accuracy (proxy training)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "pareto.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def front_candidates(samples: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Up to k distinct trained samples on the predicted-latency Pareto front, best reward first."""
    ok = {}
    for s in samples:
        if s["status"] == "ok" and s["accuracy"] is not None:
            if s["arch_id"] not in ok or s["accuracy"] > ok[s["arch_id"]]["accuracy"]:
                ok[s["arch_id"]] = s
    cands = list(ok.values())
    idx = pareto_front([(c["predicted_latency"], c["accuracy"]) for c in cands])
    front = sorted((cands[i] for i in idx), key=lambda c: -c["reward"])
    return front[:k]
