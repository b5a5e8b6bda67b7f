"""The proxy-fidelity report: for each proxy budget, how well its accuracy ranks the candidates
like the reference training does, against free baselines, with the noise ceilings and the cost.

`summarise` is a pure function of the selection, the result rows, the budgets and the baseline
scores; `write_report` writes it as JSON, markdown and one PNG of scatter plots.

Conventions: a proxy's score of a candidate is the mean over its seeds (a candidate counts once
every seed is done), ranked against the reference's seed 0; a failed run (diverged) scores 0,
the worst, as the search's reward treats it; cost per child is the median wall seconds of the
budget's runs (compile + train + evaluate, from the run's own timer; runs in one process share
compiled stages, so this is the warm cost).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnas_jax.costs import arch_params
from mnas_jax.fidelity.budgets import Budget
from mnas_jax.fidelity.candidates import Selection
from mnas_jax.fidelity.results import RunKey, done_runs
from mnas_jax.fidelity.stats import MIN_N, agreement, seed_tau
from mnas_jax.files import save_figure_atomic, write_atomic

GOAL_TAU = 0.6
REFERENCE_SEED = 0
RULE = (f"the cheapest proxy budget whose Kendall tau against the reference is >= "
        f"{GOAL_TAU} and whose 95% interval's lower end is above the MACs count's tau")


def _acc(row: dict[str, Any]) -> float:
    value = row.get("val_accuracy")
    return 0.0 if value is None else float(value)


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _proxy_entry(budget: Budget, ids: Sequence[str], runs: Mapping[RunKey, dict[str, Any]],
                 ref: Mapping[str, float], seeds: int, resamples: int) -> dict[str, Any]:
    rows = [runs[(a, budget.name, s)] for a in ids for s in range(seeds) if (a, budget.name, s) in runs]
    full = [a for a in ids if all((a, budget.name, s) in runs for s in range(seeds))]
    scores = np.array([[_acc(runs[(a, budget.name, s)]) for s in range(seeds)] for a in full])
    scores = scores.reshape(len(full), seeds)
    paired = [i for i, a in enumerate(full) if a in ref]
    proxy = scores[paired].mean(axis=1) if paired else np.zeros(0)
    truth = [ref[full[i]] for i in paired]
    stat = agreement(proxy.tolist(), truth, resamples=resamples)
    images = budget.images if budget.images is not None else _median([r["images"] for r in rows])
    size = budget.config.input_size or (rows[0]["input_size"] if rows else None)
    return {"name": budget.name, "images": None if images is None else int(images), "input_size": size,
            "steps": budget.config.max_steps, "batch_size": budget.config.batch_size, "runs": len(rows),
            "n_seeded": len(full), **stat,
            "tau_per_seed": [agreement(scores[paired, k].tolist(), truth, resamples=0)["kendall_tau"]
                             for k in range(seeds)] if len(paired) >= MIN_N else None,
            "seed_tau": seed_tau(scores),
            "cost_s": _median([r["wall_seconds"] for r in rows]),
            "compile_s": _median([r["compile_seconds"] for r in rows]),
            "train_s": _median([r["train_seconds"] for r in rows]),
            "mean_accuracy": float(scores.mean()) if scores.size else None,
            "points": [[ref[full[i]], float(proxy[k])] for k, i in enumerate(paired)]}


def _reference_seed_tau(ids: Sequence[str], runs: Mapping[RunKey, dict[str, Any]], reference: str,
                        seeds: int) -> dict[str, Any]:
    both = [a for a in ids if all((a, reference, s) in runs for s in range(max(seeds, 2)))]
    scores = np.array([[_acc(runs[(a, reference, s)]) for s in range(max(seeds, 2))] for a in both])
    value = seed_tau(scores) if len(both) >= MIN_N else None
    reason = None
    if len(both) < MIN_N:
        reason = f"{len(both)} candidate(s) trained at the reference with 2 seeds; {MIN_N} needed"
    return {"reference_seed_tau": value, "reference_seed_n": len(both), "reference_seed_reason": reason}


def recommend(budgets: Sequence[dict[str, Any]], macs_tau: float | None) -> tuple[str | None, str]:
    """The cheapest budget meeting the goal (see RULE), and why (or why none does)."""
    if macs_tau is None:
        return None, "no MACs tau yet (fewer than 4 candidates with a reference run)"
    if all(b["kendall_tau"] is None for b in budgets):
        return None, (f"no proxy budget has a tau yet (fewer than {MIN_N} candidates with "
                      "reference and proxy runs)")
    good = [b for b in budgets if b["kendall_tau"] is not None and b["kendall_tau"] >= GOAL_TAU
            and b["tau_ci"] is not None and b["tau_ci"][0] > macs_tau and b["cost_s"] is not None]
    if not good:
        return None, (f"no proxy budget has tau >= {GOAL_TAU} with its interval's lower end above "
                      f"the MACs tau {macs_tau:.3f}")
    best = min(good, key=lambda b: b["cost_s"])
    return best["name"], (f"{best['name']}: tau {best['kendall_tau']:.3f} (95% interval "
                          f"{best['tau_ci'][0]:.3f}-{best['tau_ci'][1]:.3f}, above MACs {macs_tau:.3f}) "
                          f"at {best['cost_s']:.1f} s per child, the cheapest that qualifies")


def summarise(selection: Selection, rows: list[dict[str, Any]], budgets: Sequence[Budget], *,
              seeds: int = 2, zero_cost: Mapping[str, float] | None = None,
              resamples: int = 1000) -> dict[str, Any]:
    """The report's numbers (see the module docstring for the conventions)."""
    runs = done_runs(rows)
    ids = [c.arch_id for c in selection.candidates]
    reference = next((b for b in budgets if b.is_reference), None)
    if reference is None:
        raise ValueError("no reference budget to rank against")
    ref = {a: _acc(runs[(a, reference.name, REFERENCE_SEED)]) for a in ids
           if (a, reference.name, REFERENCE_SEED) in runs}
    ref_rows = [runs[(a, reference.name, s)] for a in ids for s in range(seeds)
                if (a, reference.name, s) in runs]
    entries = [_proxy_entry(b, ids, runs, ref, seeds, resamples) for b in budgets if b.role == "proxy"]
    have = [a for a in ids if a in ref]
    by_id = selection.by_id()
    free = {"macs": {a: float(by_id[a].macs) for a in ids},
            "params": {a: float(arch_params(by_id[a].arch)) for a in ids}}
    if zero_cost is not None:
        free["zero_cost"] = {a: float(zero_cost[a]) for a in ids if a in zero_cost}
    baselines = {}
    for name, score in free.items():
        paired = [a for a in have if a in score]
        stat = agreement([score[a] for a in paired], [ref[a] for a in paired], resamples=resamples)
        baselines[name] = {**stat, "points": [[ref[a], score[a]] for a in paired]}
    if "zero_cost" in baselines:
        baselines["zero_cost"]["method"] = "grad_norm at initialisation, one batch"
    macs_tau = baselines["macs"]["kendall_tau"]
    best, why = recommend(entries, macs_tau)
    status = f"{len(ref)} of {len(ids)} candidates have a reference run (seed {REFERENCE_SEED})"
    if len(ref) < MIN_N:
        status += f"; rank statistics need {MIN_N}: nulls until then"
    return {
        "space": selection.space, "setting": selection.setting, "selection_id": selection.selection_id,
        "n_archs": len(ids), "status": status,
        "reference": {"budget": reference.name, "epochs": reference.config.epochs,
                      "images": _int(_median([r["images"] for r in ref_rows])),
                      "input_size": reference.config.input_size or (ref_rows[0]["input_size"]
                                                                    if ref_rows else None),
                      "batch_size": reference.config.batch_size, "n_done": len(ref),
                      "runs": len(ref_rows), "cost_s": _median([r["wall_seconds"] for r in ref_rows])},
        "budgets": entries, "baselines": baselines,
        **_reference_seed_tau(ids, runs, reference.name, seeds),
        "recommended": best, "recommended_reason": why, "rule": RULE, "resamples": resamples,
        "candidates": [{"name": c.name, "arch_id": c.arch_id, "relative_latency": c.relative_latency,
                        "macs": c.macs, "params": int(free["params"][c.arch_id]),
                        "zero_cost": free.get("zero_cost", {}).get(c.arch_id),
                        "reference_accuracy": ref.get(c.arch_id)} for c in selection.candidates],
    }


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` decimals, '-' for None, '[lo, hi]' for an interval."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v, digits) for v in value) + "]"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(summary: dict[str, Any]) -> str:
    """The report as markdown."""
    ref = summary["reference"]
    lines = [f"# Proxy fidelity ({summary['space']} space, {summary['setting']} setting)", "",
             f"{summary['n_archs']} correlation candidates (selection {summary['selection_id']}); "
             f"reference: budget `{ref['budget']}`, {fmt(ref['epochs'], 1)} epochs "
             f"({fmt(ref['images'])} images at {fmt(ref['input_size'])}x{fmt(ref['input_size'])}, "
             f"{fmt(ref['cost_s'], 0)} s per child). {summary['status']}.", "",
             "| budget | input | images | runs | n | Kendall tau | 95% interval | Spearman | top-25% "
             "| seed-vs-seed tau | cost s/child | compile s | mean acc |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in summary["budgets"]:
        lines.append(f"| {b['name']} | {fmt(b['input_size'])} | {fmt(b['images'])} | {b['runs']} | "
                     f"{b['n']} | "
                     f"{fmt(b['kendall_tau'])} | {fmt(b['tau_ci'])} | {fmt(b['spearman'])} | "
                     f"{fmt(b['top25_overlap'], 2)} | {fmt(b['seed_tau'])} | {fmt(b['cost_s'], 1)} | "
                     f"{fmt(b['compile_s'], 1)} | {fmt(b['mean_accuracy'])} |")
    lines += ["", "Free baselines, ranked the same way against the reference:", "",
              "| baseline | n | Kendall tau | 95% interval | Spearman | top-25% |",
              "|---|---|---|---|---|---|"]
    for name, b in summary["baselines"].items():
        lines.append(f"| {name} | {b['n']} | {fmt(b['kendall_tau'])} | {fmt(b['tau_ci'])} | "
                     f"{fmt(b['spearman'])} | {fmt(b['top25_overlap'], 2)} |")
    seed_line = (f"{summary['reference_seed_tau']:.3f} over {summary['reference_seed_n']} candidates"
                 if summary["reference_seed_tau"] is not None
                 else f"null ({summary['reference_seed_reason']})")
    lines += ["", f"Noise ceilings: the reference's own seed-vs-seed tau: {seed_line}; each proxy's is "
              "its seed-vs-seed column.", "",
              f"**Recommended: {summary['recommended'] or 'none'}** ({summary['recommended_reason']}). "
              f"Rule: {summary['rule']}.", "",
              "Conventions: a proxy's score is the mean accuracy over its seeds, ranked against the "
              "reference's seed 0; a failed run scores 0; intervals: percentile bootstrap over "
              f"candidates ({summary['resamples']:,} resamples, fixed seed); cost: median wall seconds of the budget's "
              "runs (compile + train + evaluate; runs in one process share compiled stages). "
              "Plot: proxy_fidelity.png. Reproduce: `mnas proxy select`, `mnas proxy train`, "
              "`mnas proxy report`."]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any]) -> Any:
    """A matplotlib Figure: one scatter per proxy budget and baseline against the reference."""
    from matplotlib.figure import Figure

    panels = [(b["name"], b["points"], b["kendall_tau"], b["tau_ci"], "proxy accuracy (mean of seeds)")
              for b in summary["budgets"] if b["runs"]]
    panels += [(name, b["points"], b["kendall_tau"], b["tau_ci"], name)
               for name, b in summary["baselines"].items()]
    cols = 4
    rows = max(1, math.ceil(len(panels) / cols))
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows))
    for k, (name, points, t, ci, ylabel) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        if points:
            xy = np.asarray(points, float)
            ax.scatter(xy[:, 0], xy[:, 1], s=14)
            if name in ("macs", "params"):
                ax.set_yscale("log")
        shown = "tau -" if t is None else f"tau {t:.2f}"
        shown += "" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        ax.set_title(f"{name}: {shown}", fontsize=8)
        ax.set_xlabel("reference accuracy", fontsize=7)
        ax.set_ylabel(ylabel, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Proxy fidelity, {summary['space']} space, {summary['setting']} setting "
                 f"({summary['reference']['n_done']} reference runs)", fontsize=9)
    fig.tight_layout()
    return fig


def write_report(summary: dict[str, Any], out_dir: str | Path, stem: str = "proxy_fidelity") -> list[Path]:
    """Write ``stem``.json, .md and .png under ``out_dir`` (each atomically)."""
    out = Path(out_dir)
    return [write_atomic(out / f"{stem}.json", json.dumps(summary, indent=1) + "\n"),
            write_atomic(out / f"{stem}.md", markdown(summary)),
            save_figure_atomic(plot(summary), out / f"{stem}.png")]
