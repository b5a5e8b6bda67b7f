"""Proxy fidelity: does the search's short training rank architectures like a longer one?

Architectures: 16 of the MnasNet space in the fmnist setting (the main job's), stratified over
their latency relative to MobileNetV2 (0.3-2x, measured on the local device), plus MobileNetV2
and its widths. Each is trained once at a reference budget (the paper's recipe for one full
epoch of the 50K training images, batch 128, all 10K validation images) and, with 2 seeds, at
each proxy budget. Reported per budget: Kendall tau and Spearman of the proxy accuracy (mean of
the seeds) against the reference accuracy, the proxy's seed-vs-seed tau (its own noise floor)
and the cost per child (compile + train + evaluate, from the run's own timers).

Every training appends one JSON line to runs/proxy-fidelity/results.jsonl as it ends, so the
benchmark runs in pieces and resumes where it stopped (kill it at any time):

    python -m benchmarks.proxy_fidelity select               # pick and measure the architectures
    python -m benchmarks.proxy_fidelity train --budget reference,r16-s30,r16-s60,r16-s120,r16-s240,r32-s40
    python -m benchmarks.proxy_fidelity report               # -> benchmarks/reports/proxy_fidelity.*
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RUNS = Path("runs/proxy-fidelity")
REPORTS = Path(__file__).parent / "reports"
SETTING = "fmnist"
N_SPACE = 16
LATENCY_RANGE = (0.3, 2.0)
WIDTHS = ("mobilenetv2-0.35", "mobilenetv2-0.5", "mobilenetv2-0.75", "mobilenetv2")
PROXY_SEEDS = (0, 1)
REFERENCE_SEED = 0


def budgets() -> dict[str, Any]:
    """Budget name -> TrainConfig. Names: r{input size}-s{steps} at batch 32, proxy recipe."""
    from mnas_jax.train.config import paper, proxy

    out: dict[str, Any] = {
        # the reference: the paper's recipe for two epochs (780 steps of 128 = 99,840 images, 26x
        # the default proxy's 3,840), at the setting's 32x32, checkpointed so that a run longer
        # than a session resumes (checkpoints under RUNS/checkpoints, never in the repo)
        "reference": dataclasses.replace(paper(), name="reference", epochs=2.0, evaluate_test=False,
                                         val_limit=None, checkpoint_every_epochs=0.1),
        # the first reference (1 epoch, 13x the proxy: too short for the campaign); kept because
        # one run of it exists
        "ref-e1": dataclasses.replace(paper(), name="ref-e1", epochs=1.0, evaluate_test=False,
                                      val_limit=None),
        # the proxy of the search before this benchmark: 40 x 32 images at 32x32, whole network
        "r32-s40-model": dataclasses.replace(proxy(), name="r32-s40-model", max_steps=40, input_size=None,
                                             layerwise=False, val_limit=1000, eval_batch_size=256),
    }
    for res, steps_list in ((16, (30, 60, 120, 240)), (32, (40, 120))):
        for steps in steps_list:
            name = f"r{res}-s{steps}"
            out[name] = dataclasses.replace(proxy(), name=name, max_steps=steps, input_size=res, val_limit=1000,
                                            layerwise=True)
    return out


# -- selection ----------------------------------------------------------------------------------

def select(workdir: Path, device: str, n_pool: int, seed: int) -> list[dict[str, Any]]:
    """16 space archs, one per log-latency bin over LATENCY_RANGE, plus MobileNetV2's widths."""
    from latency.session import DeviceSession
    from mnas_jax.costs import arch_macs
    from mnas_jax.space import get_space, reference, sample_tokens

    space = get_space("mnasnet", SETTING)
    pool = {}
    for tokens in sample_tokens(space.choices, seed, 20 * n_pool):
        spec = space.decode(tokens)
        pool.setdefault(spec.arch_id, spec)
    specs = sorted(pool.values(), key=arch_macs)
    # an even spread over MACs, then measured: MACs only roughly order latency
    picks = [specs[int(i)] for i in np.linspace(0, len(specs) - 1, n_pool)]
    widths = [reference(w, SETTING) for w in WIDTHS]
    with DeviceSession.open(device, workdir) as session:
        result = session.measure_archs(picks + widths, progress=True)
    rel = {c.key: c.relative for c in result.candidates}
    edges = np.geomspace(*LATENCY_RANGE, N_SPACE + 1)
    chosen = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        centre = np.sqrt(lo * hi)
        inside = [s for s in picks if lo <= rel[s.arch_id] < hi and s not in chosen]
        pool_ = inside or [s for s in picks if s not in chosen]
        chosen.append(min(pool_, key=lambda s: abs(np.log(rel[s.arch_id] / centre))))
    rows = [{"name": f"space-{i:02d}", "arch_id": s.arch_id, "spec": s.to_string(),
             "relative_latency": rel[s.arch_id], "macs": arch_macs(s)} for i, s in enumerate(chosen)]
    rows += [{"name": w, "arch_id": s.arch_id, "spec": s.to_string(), "relative_latency": rel[s.arch_id],
              "macs": arch_macs(s)} for w, s in zip(WIDTHS, widths)]
    return rows


# -- training -----------------------------------------------------------------------------------

def done_runs(path: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out[(r["arch_id"], r["budget"], r["seed"])] = r
    return out


def append_run(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def interleaved(archs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cheapest, dearest, second cheapest, ...: any prefix of the run spans the latency range."""
    order = sorted(archs, key=lambda a: a["relative_latency"])
    out = []
    while order:
        out.append(order.pop(0))
        if order:
            out.append(order.pop())
    return out


def train(archs: list[dict[str, Any]], names: list[str], results: Path, keep_order: bool = False) -> None:
    import jax

    from mnas_jax.data.fashion_mnist import load_fashion_mnist
    from mnas_jax.progress import training_progress
    from mnas_jax.space import ArchSpec
    from mnas_jax.train.loop import train_and_evaluate
    from mnas_jax.train.stage_compile import StageCache

    table = budgets()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown budget(s) {unknown}; choose from {sorted(table)}")
    cache = StageCache()
    data: dict[int, Any] = {}
    # architecture-major: every prefix of the run has all budgets of its archs (tau is computable
    # on whatever part has run when the run is stopped)
    for arch in (archs if keep_order else interleaved(archs)):
        for name in names:
            config = table[name]
            seeds = (REFERENCE_SEED,) if name in ("reference", "ref-e1") else PROXY_SEEDS
            for seed in seeds:
                if (arch["arch_id"], name, seed) in done_runs(results):
                    continue
                spec = ArchSpec.from_string(arch["spec"])
                size = config.input_size or spec.input_size
                if size not in data:
                    data[size] = load_fashion_mnist(input_size=size)
                start = time.perf_counter()
                if config.checkpoint_every_epochs < 1.0 and config.layerwise is False and name == "reference":
                    config = dataclasses.replace(config, checkpoint_dir=str(
                        (results.parent / "checkpoints" / f"{arch['arch_id']}-{name}-{seed}").resolve()))
                with training_progress(f"{name} {arch['name']} seed {seed}") as on_step:
                    res = train_and_evaluate(spec, config, jax.random.key(seed), data[size],
                                             stage_cache=cache, on_step=on_step)
                wall = time.perf_counter() - start
                row = {"arch_id": arch["arch_id"], "name": arch["name"], "budget": name, "seed": seed,
                       "wall_seconds": wall, "images": res.steps * config.batch_size,
                       "input_size": size, **res.to_dict()}
                append_run(results, row)
                print(f"{name} {arch['name']} seed {seed}: acc {res.val_accuracy} in {wall:.0f} s "
                      f"(compile {res.compile_seconds:.1f} s)", flush=True)


# -- report -------------------------------------------------------------------------------------

def summarise(archs: list[dict[str, Any]], runs: dict[tuple[str, str, int], dict[str, Any]]) -> dict[str, Any]:
    from predictor.metrics import kendall_tau, spearman

    ids = [a["arch_id"] for a in archs]
    ref = {a: runs[(a, "reference", REFERENCE_SEED)]["val_accuracy"] for a in ids
           if (a, "reference", REFERENCE_SEED) in runs}
    out: dict[str, Any] = {"n_archs": len(archs), "n_reference": len(ref), "budgets": {}}
    for name in budgets():
        if name == "reference":
            continue
        both = [a for a in ids if all((a, name, s) in runs for s in PROXY_SEEDS)]
        if len(both) < 4:
            continue
        accs = np.array([[runs[(a, name, s)]["val_accuracy"] or 0.0 for s in PROXY_SEEDS] for a in both])
        rows = [runs[(a, name, s)] for a in both for s in PROXY_SEEDS]
        with_ref = [i for i, a in enumerate(both) if a in ref]
        entry = {
            "n": len(both), "n_with_reference": len(with_ref),
            "images": rows[0]["images"], "input_size": rows[0]["input_size"],
            "seed_vs_seed_tau": kendall_tau(accs[:, 0], accs[:, 1]),
            "wall_seconds_median": float(np.median([r["wall_seconds"] for r in rows])),
            "compile_seconds_median": float(np.median([r["compile_seconds"] for r in rows])),
            "train_seconds_median": float(np.median([r["train_seconds"] for r in rows])),
            "accuracy_mean": float(accs.mean()),
        }
        if len(with_ref) >= 4:
            proxy_mean = accs[with_ref].mean(axis=1)
            truth = np.array([ref[both[i]] for i in with_ref])
            entry.update({
                "tau_vs_reference": kendall_tau(proxy_mean, truth),
                "spearman_vs_reference": spearman(proxy_mean, truth),
                "tau_vs_reference_per_seed": [kendall_tau(accs[with_ref, k], truth) for k in range(len(PROXY_SEEDS))],
            })
        out["budgets"][name] = entry
    if ref:
        rows = [runs[(a, "reference", REFERENCE_SEED)] for a in ref]
        out["reference"] = {"images": rows[0]["images"], "wall_seconds_median": float(np.median(
            [r["wall_seconds"] for r in rows])), "accuracy": {a: ref[a] for a in ref}}
    return out


def plot(summary: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for name, b in summary["budgets"].items():
        if "tau_vs_reference" not in b:
            continue
        marker = "s" if b["input_size"] == 16 else "o"
        ax.errorbar(b["wall_seconds_median"], b["tau_vs_reference"], fmt=marker, capsize=3,
                    yerr=[[b["tau_vs_reference"] - min(b["tau_vs_reference_per_seed"])],
                          [max(b["tau_vs_reference_per_seed"]) - b["tau_vs_reference"]]])
        ax.annotate(name, (b["wall_seconds_median"], b["tau_vs_reference"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.axhline(0.6, color="grey", ls="--", lw=0.8, label="goal tau 0.6")
    ax.set_xscale("log")
    ax.set_xlabel("wall seconds per proxy child (median; compile + train + evaluate)")
    ax.set_ylabel("Kendall tau vs reference (1 epoch)")
    ax.set_title("Proxy fidelity, MnasNet space, fmnist setting (bars: single seeds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_report(archs: list[dict[str, Any]], results: Path) -> dict[str, Any]:
    runs = done_runs(results)
    summary = summarise(archs, runs)
    summary["archs"] = archs
    summary["runs"] = list(runs.values())
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "proxy_fidelity.json").write_text(json.dumps(summary, indent=1))
    plot(summary, REPORTS / "proxy_fidelity.png")
    lines = ["# Proxy fidelity (MnasNet space, fmnist setting)", "",
             f"{summary['n_archs']} architectures ({N_SPACE} of the space stratified over latency "
             f"{LATENCY_RANGE[0]}-{LATENCY_RANGE[1]} x MobileNetV2, plus {', '.join(WIDTHS)}); "
             f"reference: the paper's recipe for 1 epoch ({summary.get('reference', {}).get('images', '?')} "
             f"images, all 10K validation images), {summary['n_reference']} of them trained so far.", "",
             "| budget | input | images | wall s/child | compile s | tau vs ref | Spearman | tau per seed "
             "| seed-vs-seed tau | mean acc |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, b in summary["budgets"].items():
        tau = b.get("tau_vs_reference")
        per = b.get("tau_vs_reference_per_seed")
        rho = b.get("spearman_vs_reference")
        lines.append(
            f"| {name} | {b['input_size']} | {b['images']} | {b['wall_seconds_median']:.1f} | "
            f"{b['compile_seconds_median']:.1f} | {'-' if tau is None else f'{tau:.3f}'} | "
            f"{'-' if rho is None else f'{rho:.3f}'} | "
            f"{'-' if per is None else ' / '.join(f'{t:.2f}' for t in per)} | "
            f"{b['seed_vs_seed_tau']:.3f} | {b['accuracy_mean']:.3f} |")
    lines += ["", "Wall and compile seconds come from the benchmark's own runs, which share one process "
              "(and so the compiled-stage cache) per budget: they are the warm-cache cost. "
              "The cold cost of a fresh batch of children is benchmarks/child_cost.py's.", "",
              "Plot: proxy_fidelity.png. Reproduce: see the module docstring of benchmarks/proxy_fidelity.py."]
    (REPORTS / "proxy_fidelity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("select", "train", "report"))
    parser.add_argument("--budget", default="reference", help="comma-separated budget names (train)")
    parser.add_argument("--runs", type=Path, default=RUNS, help="work directory of the benchmark")
    parser.add_argument("--device", default="local", help="latency device for the selection")
    parser.add_argument("--pool", type=int, default=48, help="archs measured to choose from (select)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--names", default="", help="comma-separated arch names to train (train; default all), "
                        "in this order")
    args = parser.parse_args(argv)
    from mnas_jax.train.xla_cpu import configure_xla_cpu

    configure_xla_cpu()
    args.runs.mkdir(parents=True, exist_ok=True)
    archs_file = args.runs / "archs.json"
    if args.command == "select":
        if archs_file.exists():
            print(f"{archs_file} exists: delete it to select again (results refer to its archs)")
            return 0
        rows = select(args.runs, args.device, args.pool, args.seed)
        archs_file.write_text(json.dumps(rows, indent=1))
        for r in rows:
            print(f"{r['name']:18s} {r['relative_latency']:.3f} x mbv2  {r['macs'] / 1e6:.1f}M MACs")
        return 0
    if not archs_file.exists():
        print(f"no {archs_file}: run `python -m benchmarks.proxy_fidelity select` first", file=sys.stderr)
        return 2
    archs = json.loads(archs_file.read_text())
    if args.command == "train":
        if args.names:
            by_name = {a["name"]: a for a in archs}
            archs = [by_name[n] for n in args.names.split(",") if n]
        train(archs, [n for n in args.budget.split(",") if n], args.runs / "results.jsonl",
              keep_order=bool(args.names))
    else:
        write_report(archs, args.runs / "results.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
