"""The search report directory: samples (CSV + JSON), the re-trained verdict, plots, summary."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from calibration.error_series import write_series
from mnas_jax.files import save_figure_atomic, write_atomic
from mnas_jax.search.assess import RULE, Assessed, verdicts
from mnas_jax.search.config import SearchConfig
from mnas_jax.search.pareto import pareto_front
from mnas_jax.search.target import ResolvedTarget

SAMPLE_COLUMNS = ("step", "index", "arch_id", "status", "accuracy", "predicted_latency",
                  "uncertainty", "measured_latency", "reward", "train_seconds", "reason", "spec")


def write_samples(samples: Sequence[dict[str, Any]], out: Path) -> None:
    """samples.json and samples.csv: every sample with the search-time (proxy) numbers."""
    write_atomic(out / "samples.json", json.dumps(list(samples), indent=1))
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=SAMPLE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for s in samples:
        w.writerow(s)
    write_atomic(out / "samples.csv", text.getvalue())


def _figure(width: float = 6.0, height: float = 3.5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def plot_search(samples: Sequence[dict[str, Any]], out: Path, *, target: float, unit: str,
                found: Sequence[Assessed] = (), baselines: Sequence[Assessed] = ()) -> list[Path]:
    """reward over steps, histogram of sampled latencies (the paper's Fig. 6), and the re-trained
    found models beside the baselines (mean +- sd over fresh seeds, measured latency)."""
    paths = []
    rewarded = [s for s in samples if s.get("reward") is not None]
    steps = np.array([s["step"] for s in rewarded])
    rewards = np.array([s["reward"] for s in rewarded])
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(steps, rewards, s=8, alpha=0.5, label="trained samples")
    if len(steps):
        ax.plot(sorted(set(steps)), [rewards[steps == k].mean() for k in sorted(set(steps))], "r-",
                label="mean per step")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "reward.png")
    save_figure_atomic(fig, paths[-1])

    fig = _figure()
    ax = fig.add_subplot()
    ax.hist([s["predicted_latency"] for s in samples], bins=30, label="sampled (incl. screened)")
    ax.axvline(target, color="r", ls="--", label=f"target T = {target:g} {unit}")
    ax.set_xlabel(f"predicted latency ({unit})")
    ax.set_ylabel("sampled models")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "latency_histogram.png")
    save_figure_atomic(fig, paths[-1])

    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ok = [s for s in samples if s["status"] == "ok"]
    ax.scatter([s["predicted_latency"] for s in ok], [s["accuracy"] for s in ok], s=8, alpha=0.3,
               color="gray", label="search samples (proxy accuracy, predicted latency)")
    for group, style, label in ((found, "o", "found models, re-trained"), (baselines, "s", "MobileNetV2 widths")):
        if group:
            ax.errorbar([a.latency for a in group], [a.mean for a in group], yerr=[a.sd for a in group],
                        fmt=style, capsize=3, label=f"{label} (mean +- sd, measured latency)")
            for a in group:
                ax.annotate(a.name.replace("mobilenetv2-", ""), (a.latency, a.mean), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"latency ({unit})")
    ax.set_ylabel("accuracy (proxy budget; re-trained: test split)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "pareto.png")
    save_figure_atomic(fig, paths[-1])
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


def _acc(a: Assessed) -> str:
    if not a.n:
        return "failed"
    sd = "" if a.n < 2 else f" +- {a.sd:.4f}"
    return f"{a.mean:.4f}{sd} (n={a.n}{f', {a.failed} failed' if a.failed else ''})"


def write_report(out: Path, *, run_id: str, config: dict[str, Any], target: float, unit: str,
                 samples: Sequence[dict[str, Any]], found: Sequence[Assessed], baselines: Sequence[Assessed],
                 verdicts: Sequence[dict[str, Any]], calibration: Sequence[dict[str, Any]],
                 budget: str) -> Path:
    """summary.json, report.md, samples.csv/json and the plots; returns report.md's path."""
    out.mkdir(parents=True, exist_ok=True)
    write_samples(samples, out)
    plot_search(samples, out, target=target, unit=unit, found=found, baselines=baselines)
    any_dom = any(v["dominates"] for v in verdicts)
    trained = sum(1 for s in samples if s["status"] == "ok")
    summary = {"run_id": run_id, "config": config, "target": target, "unit": unit, "rule": RULE,
               "budget": budget, "found": [a.to_dict() for a in found],
               "baselines": [a.to_dict() for a in baselines], "verdicts": list(verdicts),
               "any_found_dominates_a_baseline": any_dom, "n_samples": len(samples), "n_trained": trained,
               "n_screened": sum(1 for s in samples if s["status"] == "screened"),
               "calibration_rounds": len(calibration),
               "accuracy_note": "test-split accuracy, mean +- sd over fresh seeds (not the search's runs), every "
                                "model with the same training budget; the search selected on validation "
                                "images; its search-time accuracies are in samples.csv"}
    write_atomic(out / "summary.json", json.dumps(summary, indent=1, default=str))
    lines = [f"# Search {run_id}", "",
             f"{len(samples)} sampled models ({trained} trained, {summary['n_screened']} screened by the "
             f"predictor), {len(calibration)} calibration rounds, target T = {target:g} {unit}.", "",
             f"Accuracies below are re-trainings with fresh seeds at the search's budget ({budget}), not the "
             "search's own runs (those are in samples.csv), scored on the TEST split, which the search never "
             "saw (it selected on validation images); latencies are measured again on the device. Winner's "
             "curse: the search-time accuracy minus the re-trainings' mean on the search's validation images.",
             "", f"| model | test accuracy (mean +- sd) | re-trained val accuracy | search-time accuracy | "
             f"winner's curse | measured latency ({unit}) |", "|---|---|---|---|---|---|"]
    for a in list(found) + list(baselines):
        seen = "-" if a.search_accuracy is None else f"{a.search_accuracy:.4f}"
        curse = "-" if a.winners_curse is None else f"{a.winners_curse:+.4f}"
        val = "-" if not a.val_accuracies else f"{a.val_mean:.4f}"
        lines.append(f"| {a.name} `{a.arch_id}` | {_acc(a)} | {val} | {seen} | {curse} | {a.latency:.3f} |")
    lines += ["", f"Rule: {RULE}.", ""]
    for v in verdicts:
        ps = ", ".join(f"{b} p={'n/a' if p is None else f'{p:.3g}'}" for b, p in v["p_more_accurate"].items())
        lines.append(f"- {v['name']} more accurate than (one-sided Welch): {ps}")
    lines.append("")
    for v in verdicts:
        parts = [f"dominates {', '.join(v['dominates'])}" if v["dominates"] else "dominates no baseline"]
        if v["dominated_by"]:
            parts.append(f"is dominated by {', '.join(v['dominated_by'])}")
        if v["faster_at_indistinguishable_accuracy"]:
            parts.append("is faster than " + ", ".join(v["faster_at_indistinguishable_accuracy"])
                         + " at an accuracy the seeds cannot tell apart")
        lines.append(f"- {v['name']}: " + "; ".join(parts) + ".")
    lines += ["", "Verdict: " + ("at least one found model dominates a MobileNetV2 width under the rule."
                                 if any_dom else "no found model dominates a MobileNetV2 width under the rule."),
              "", "Plots: reward.png, latency_histogram.png, pareto.png, calibration.png."]
    return write_atomic(out / "report.md", "\n".join(lines) + "\n")


def write_search_report(out: Path, *, run_id: str, config: SearchConfig, target: ResolvedTarget,
                        samples: Sequence[dict[str, Any]], found: Sequence[Assessed],
                        baselines: Sequence[Assessed], calibration: Sequence[dict[str, Any]]) -> Path:
    """The report of a finished search: samples with the latencies calibration measured, the
    calibration series, the verdicts and write_report's files; returns report.md's path."""
    measured = {c["arch_id"]: c["measured"] for r in calibration for c in r.get("candidates", [])}
    samples = [{**s, "measured_latency": measured.get(s["arch_id"], s["measured_latency"])} for s in samples]
    write_series(calibration, out)
    budget = f"preset {config.train_preset}" + (f", {config.train_steps} steps" if config.train_steps else "")
    return write_report(out, run_id=run_id, config=dataclasses.asdict(config), target=target.value,
                        unit=target.unit, samples=samples, found=found, baselines=baselines,
                        verdicts=verdicts(found, baselines), calibration=calibration, budget=budget)
