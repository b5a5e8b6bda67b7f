"""Search evidence in seconds: PPO (the paper's controller), REINFORCE with an EMA baseline
(TuNAS's), regularised evolution and random search on a tabular benchmark, at equal sample
budgets, many seeds, soft and hard reward, three latency targets (the 25th, 50th and 75th
percentile of the table's latency).

Every search is the real search step (`mnas_jax.search.step.search_step`: controller, MnasNet
reward, screening at 1.5 x T) with ACC(m) read from the table (one training seed's accuracy per
query) and LAT(m) from its latency column; regret = the table's optimal true reward minus the
true reward (mean accuracy over seeds) of the search's pick (the sample it saw the highest reward
for). One run of the largest budget gives every smaller budget's pick (the first N samples).

    python -m benchmarks.search_tabular tune     # controller settings, on ONE target (soft, p50)
    python -m benchmarks.search_tabular run      # -> benchmarks/reports/search_tabular.{md,json,png}

Options: --table FILE (default: the shipped NAS-Bench-Macro derivative), --latency COLUMN,
--seeds N (default 50).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPORTS = Path(__file__).parent / "reports"
DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "data" / "nas-bench-macro" / "nas-bench-macro_cifar10_local.csv"
BUDGETS = (12, 50, 200, 1000)
TARGETS = ("p25", "p50", "p75")
REWARDS = ("soft", "hard")
TUNE_TARGET = ("soft", "p50")


def grid() -> dict[str, list[dict[str, Any]]]:
    """The settings `tune` tries per searcher (keyword changes of TabularSearchConfig). The
    controller's logits are squashed to C * tanh(logits/C) (ENAS's tanh constant): C bounds how
    sure the policy can get, the first thing a 6,561-architecture space needed (2.5, the
    default, collapsed early onto a sub-optimal architecture in a first exploration)."""
    from mnas_jax.controller.policy import PolicyConfig
    from mnas_jax.controller.ppo import PPOConfig
    from mnas_jax.search.searchers import reinforce_config

    out: dict[str, list[dict[str, Any]]] = {"random": [{}], "ppo": [], "reinforce": [], "evolution": []}
    for batch, lr, tanh in itertools.product((8, 16), (0.01, 0.02), (1.0, 1.5, 2.5)):
        policy = PolicyConfig(tanh_constant=tanh)
        out["ppo"].append({"batch_size": batch, "ppo": PPOConfig(learning_rate=lr, policy=policy)})
    for batch, lr, tanh in itertools.product((8, 16), (0.02, 0.05), (1.0, 1.5)):
        policy = PolicyConfig(tanh_constant=tanh)
        out["reinforce"].append({"batch_size": batch, "ppo": reinforce_config(learning_rate=lr, baseline_decay=0.95,
                                                                              policy=policy)})
    for pop, sample in ((8, 2), (16, 4), (32, 8), (64, 16)):
        out["evolution"].append({"population_size": pop, "sample_size": sample, "batch_size": 8})
    return out


def describe(change: dict[str, Any]) -> str:
    """A short label of a setting."""
    parts = []
    for k, v in change.items():
        if k == "ppo":
            parts += [f"lr={v.learning_rate:g}", f"epochs={v.epochs}", f"entropy={v.entropy_coef:g}",
                      f"baseline_decay={v.baseline_decay:g}", f"adv={v.advantage_norm}",
                      f"tanh={v.policy.tanh_constant}"]
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts) or "-"


def run_cell(table: Any, searcher: str, change: dict[str, Any], reward: str, target: str,
             seeds: range, latency: str | None) -> dict[str, Any]:
    """Regret and top-1% share per budget over seeds for one (searcher, setting, reward, target)."""
    from mnas_jax.search.tabular.run import TabularSearchConfig, search_table

    regrets = np.zeros((len(seeds), len(BUDGETS)))
    top = np.zeros_like(regrets)
    seconds = []
    for i, seed in enumerate(seeds):
        config = TabularSearchConfig(searcher=searcher, samples=max(BUDGETS), reward=reward, target=target,
                                     latency=latency, seed=seed, **change)
        start = time.perf_counter()
        out = search_table(table, config)
        seconds.append(time.perf_counter() - start)
        truth_sorted = None
        for j, b in enumerate(BUDGETS):
            regrets[i, j] = out.regret(b)
            if truth_sorted is None:
                truth_sorted = _top_threshold(table, out, reward, target, latency)
            top[i, j] = out.true[out.pick(b)] >= truth_sorted
    return {"regret": regrets, "top1": top, "seconds": seconds}


def _top_threshold(table: Any, out: Any, reward: str, target: str, latency: str | None) -> float:
    """The true reward a pick needs to be in the optimum's top 1% of the table."""
    from mnas_jax.reward import RewardConfig
    from mnas_jax.search.tabular.run import true_rewards

    truth = true_rewards(table, RewardConfig.preset(reward, out.target_ms), latency)
    return float(np.sort(truth)[::-1][max(0, int(np.ceil(0.01 * len(truth))) - 1)])


def interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% t-interval."""
    from scipy import stats

    m = float(np.mean(x))
    if len(x) < 2 or np.std(x) == 0:
        return m, m, m
    h = float(stats.sem(x) * stats.t.ppf(0.975, len(x) - 1))
    return m, m - h, m + h


def tune(table: Any, seeds: int, latency: str | None) -> dict[str, Any]:
    """Each searcher's settings on ONE target (soft reward, p50); score = the mean over budgets
    >= 50 of regret / random search's regret at that budget (each budget counts alike)."""
    reward, target = TUNE_TARGET
    out: dict[str, Any] = {"target": target, "reward": reward, "seeds": seeds, "searchers": {}}
    random_regret = None
    for searcher, changes in grid().items():
        rows = []
        for change in changes:
            cell = run_cell(table, searcher, change, reward, target, range(1000, 1000 + seeds), latency)
            mean = cell["regret"].mean(axis=0)
            if random_regret is None:
                random_regret = np.maximum(mean, 1e-9)
            score = float(np.mean(mean[1:] / random_regret[1:]))
            rows.append({"setting": describe(change), "score": score, "regret": mean.tolist()})
            print(f"{searcher:10s} {describe(change):90s} score {score:.3f} | "
                  + " ".join(f"{x:.4f}" for x in mean), flush=True)
        best = min(range(len(rows)), key=lambda k: rows[k]["score"])
        out["searchers"][searcher] = {"tried": rows, "best": rows[best]["setting"], "best_index": best}
    from mnas_jax.files import write_atomic

    write_atomic(REPORTS / "search_tabular_tune.json", json.dumps(out, indent=1))
    return out


def chosen() -> dict[str, dict[str, Any]]:
    """The settings the report uses: the tuned defaults of mnas_jax.search.tabular.run."""
    from mnas_jax.search.searchers import SEARCHER_NAMES
    from mnas_jax.search.tabular.run import tuned

    return {s: tuned(s) for s in SEARCHER_NAMES}


def run(table: Any, seeds: int, latency: str | None) -> dict[str, Any]:
    """Every searcher x reward x target x budget over `seeds` seeds; the report."""
    from scipy import stats

    settings = chosen()
    cells = []
    raw: dict[tuple[str, str, str], dict[str, Any]] = {}
    for reward, target, searcher in itertools.product(REWARDS, TARGETS, settings):
        cell = run_cell(table, searcher, settings[searcher], reward, target, range(seeds), latency)
        raw[(searcher, reward, target)] = cell
        for j, b in enumerate(BUDGETS):
            m, lo, hi = interval(cell["regret"][:, j])
            cells.append({"searcher": searcher, "reward": reward, "target": target, "budget": b,
                          "mean_regret": m, "ci95": [lo, hi], "top1_share": float(cell["top1"][:, j].mean()),
                          "seconds_per_search": float(np.median(cell["seconds"]))})
        print(f"{reward} {target} {searcher:10s} " + " ".join(
            f"{b}: {cell['regret'][:, j].mean():.4f}" for j, b in enumerate(BUDGETS)), flush=True)
    # the goal, checked cell by cell: PPO below random at every budget >= 50, not above evolution at >= 200
    checks = []
    for reward, target in itertools.product(REWARDS, TARGETS):
        for j, b in enumerate(BUDGETS):
            if b < 50:
                continue
            p, r, e = (raw[(s, reward, target)]["regret"][:, j] for s in ("ppo", "random", "evolution"))
            vs_random = stats.wilcoxon(p, r, alternative="less", zero_method="zsplit").pvalue if np.any(p != r) else 1.0
            vs_evo = stats.wilcoxon(p, e, alternative="greater", zero_method="zsplit").pvalue if np.any(p != e) else 1.0
            checks.append({"reward": reward, "target": target, "budget": b,
                           "ppo": float(p.mean()), "random": float(r.mean()), "evolution": float(e.mean()),
                           "below_random": bool(p.mean() < r.mean()), "p_below_random": float(vs_random),
                           "not_above_evolution": bool(b < 200 or p.mean() <= e.mean()),
                           "p_above_evolution": float(vs_evo)})
    meta = {"table": table.path, "sha256": table.sha256, "rows": len(table), "seeds": seeds,
            "budgets": list(BUDGETS), "targets_ms": {t: _target_ms(table, t, latency) for t in TARGETS},
            "latency_column": table.latency_column(latency),
            "settings": {s: describe(c) for s, c in settings.items()}}
    report = {"meta": meta, "cells": cells, "goal_checks": checks}
    write(report)
    return report


def _target_ms(table: Any, target: str, latency: str | None) -> float:
    from mnas_jax.search.tabular.run import resolve_table_target

    return resolve_table_target(target, table, latency)


def write(report: dict[str, Any]) -> None:
    """search_tabular.json, .md (tables) and .png (regret vs samples)."""
    from matplotlib.figure import Figure

    from mnas_jax.files import save_figure_atomic, write_atomic

    meta, cells = report["meta"], report["cells"]
    write_atomic(REPORTS / "search_tabular.json", json.dumps(report, indent=1))
    fig = Figure(figsize=(12, 6.5))
    axes = fig.subplots(len(REWARDS), len(TARGETS), sharex=True)
    for (i, reward), (j, target) in itertools.product(enumerate(REWARDS), enumerate(TARGETS)):
        ax = axes[i][j]
        for searcher in meta["settings"]:
            rows = [c for c in cells if (c["searcher"], c["reward"], c["target"]) == (searcher, reward, target)]
            b = [c["budget"] for c in rows]
            ax.plot(b, [c["mean_regret"] for c in rows], marker="o", label=searcher)
            ax.fill_between(b, [c["ci95"][0] for c in rows], [c["ci95"][1] for c in rows], alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.set_title(f"{reward} reward, T = {target} ({meta['targets_ms'][target]:.2f} ms)", fontsize=9)
        ax.grid(alpha=0.3)
        if i == len(REWARDS) - 1:
            ax.set_xlabel("trained samples")
        if j == 0:
            ax.set_ylabel("regret (optimal - picked true reward)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Tabular search, {Path(meta['table']).name}: mean regret over {meta['seeds']} seeds "
                 "(bands: 95% interval)", fontsize=10)
    fig.tight_layout()
    save_figure_atomic(fig, REPORTS / "search_tabular.png")
    lines = ["# Tabular search: PPO vs REINFORCE vs evolution vs random", "",
             f"Table `{Path(meta['table']).name}` ({meta['rows']} architectures, sha256 {meta['sha256'][:12]}), "
             f"latency column `{meta['latency_column']}`; {meta['seeds']} seeds per cell; targets "
             + ", ".join(f"{t} = {v:.3f} ms" for t, v in meta["targets_ms"].items()) + ".",
             "Each query returns one training seed's accuracy (the child's seed picks the column); the pick "
             "is the architecture with the highest mean reward the search saw over its queries; regret = optimal true reward - the pick's "
             "true reward (mean accuracy over seeds). Top 1%: share of runs whose pick is among the table's "
             "best 1% by true reward.", "",
             "Settings (tuned on soft reward, p50 only: `python -m benchmarks.search_tabular tune`, "
             "search_tabular_tune.json):", ""]
    lines += [f"- {s}: {d}" for s, d in meta["settings"].items()]
    for reward, target in itertools.product(REWARDS, TARGETS):
        lines += ["", f"## {reward} reward, T = {target} ({meta['targets_ms'][target]:.3f} ms)", "",
                  "| searcher | " + " | ".join(f"{b} samples" for b in meta["budgets"]) + " |",
                  "|---|" + "---|" * len(meta["budgets"])]
        for searcher in meta["settings"]:
            rows = [c for c in cells if (c["searcher"], c["reward"], c["target"]) == (searcher, reward, target)]
            lines.append(f"| {searcher} | " + " | ".join(
                f"{c['mean_regret']:.4f} [{c['ci95'][0]:.4f}, {c['ci95'][1]:.4f}] ({100 * c['top1_share']:.0f}%)"
                for c in rows) + " |")
    lines += ["", "Cells: mean regret [95% interval] (share of runs picking from the top 1%).", "",
              "## The goal: PPO below random at every budget >= 50, not above evolution at >= 200", "",
              "| reward | target | budget | PPO | random | evolution | below random (p, one-sided Wilcoxon) "
              "| not above evolution (p that PPO is above) |", "|---|---|---|---|---|---|---|---|"]
    for c in report["goal_checks"]:
        lines.append(f"| {c['reward']} | {c['target']} | {c['budget']} | {c['ppo']:.4f} | {c['random']:.4f} | "
                     f"{c['evolution']:.4f} | {'yes' if c['below_random'] else 'NO'} ({c['p_below_random']:.3g}) | "
                     f"{'yes' if c['not_above_evolution'] else 'NO'} ({c['p_above_evolution']:.3g}) |")
    met = all(c["below_random"] and c["not_above_evolution"] for c in report["goal_checks"])
    lines += ["", f"Goal met in every cell: {'yes' if met else 'NO'}.", "",
              "Plot: search_tabular.png. Reproduce: `python -m benchmarks.search_tabular run`."]
    write_atomic(REPORTS / "search_tabular.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run `tune` or `run`."""
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)  # XLA:CPU flags and the project's compilation cache, before JAX starts
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("tune", "run"))
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE, help="tabular benchmark file")
    parser.add_argument("--latency", default=None, help="latency column (default: the only one)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: tune 20, run 50)")
    args = parser.parse_args(argv)
    from mnas_jax.search.tabular.table import load_table

    table = load_table(args.table)
    if args.command == "tune":
        tune(table, args.seeds or 20, args.latency)
    else:
        run(table, args.seeds or 50, args.latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
