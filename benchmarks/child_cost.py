"""Wall time of one proxy child (compile + train + evaluate) on a fresh batch of sampled children.

Two phases, each a fresh process: ``cold`` starts with no compiled stage in memory and an EMPTY
persistent compilation cache (a new directory); ``warm`` is a second process on the same
children with the cache the cold one filled (what every later search child, Ray worker or
re-run on the machine gets). Within a process the children are trained one after another as
the search's local executor trains them, so later children reuse the stages earlier ones
compiled, exactly as in a search. Budgets are compared side by side in one run (the machine
drifts between runs): each child is trained under every budget before the next child starts.

    python -m benchmarks.child_cost [--budgets proxy] [--n 8] [--seed 777]

Budget names: ``proxy`` (the search's preset now) or any budget of benchmarks/proxy_fidelity.py.
Writes benchmarks/reports/child_cost.{md,json} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPORTS = Path(__file__).parent / "reports"


def configs(names: list[str]) -> dict[str, Any]:
    from benchmarks.proxy_fidelity import budgets
    from mnas_jax.train.config import proxy

    table = {"proxy": proxy(), **budgets()}
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown budget(s) {unknown}; choose from {sorted(table)}")
    return {n: table[n] for n in names}


def run(names: list[str], n: int, seed: int, phase: str = "cold") -> list[dict[str, Any]]:
    """Train the children under every budget in this process; one row per (child, budget)."""
    import jax

    from mnas_jax.data.fashion_mnist import load_fashion_mnist
    from mnas_jax.space import get_space, sample_tokens
    from mnas_jax.train.loop import train_and_evaluate
    from mnas_jax.train.stage_compile import StageCache

    chosen = configs(names)
    space = get_space("mnasnet", "fmnist")
    specs = [space.decode(t) for t in sample_tokens(space.choices, seed, n)]
    caches = {name: StageCache() for name in chosen}  # one per budget: each starts cold
    data: dict[int, Any] = {}
    rows = []
    for i, spec in enumerate(specs):
        for name, config in chosen.items():
            size = config.input_size or spec.input_size
            data.setdefault(size, load_fashion_mnist(input_size=size))
            misses = caches[name].misses
            start = time.perf_counter()
            res = train_and_evaluate(spec, config, jax.random.key(i), data[size], stage_cache=caches[name])
            wall = time.perf_counter() - start
            rows.append({"phase": phase, "budget": name, "child": i, "arch_id": spec.arch_id, "wall_seconds": wall,
                         "compile_seconds": res.compile_seconds, "train_seconds": res.train_seconds,
                         "evaluate_seconds": wall - res.compile_seconds - res.train_seconds,
                         "new_stages": caches[name].misses - misses, "val_accuracy": res.val_accuracy,
                         "status": res.status})
            print(f"{phase} child {i} {name}: {wall:.1f} s (compile {res.compile_seconds:.1f}, train "
                  f"{res.train_seconds:.1f}, new stages {rows[-1]['new_stages']}) acc {res.val_accuracy}",
                  flush=True)
    return rows


def summarise(chosen: dict[str, Any], rows: list[dict[str, Any]], n: int, seed: int) -> dict[str, Any]:
    """Medians per (phase, budget) over the children trained so far."""
    summary = {}
    for phase in ("cold", "warm"):
        for name in chosen:
            mine = [r for r in rows if r["budget"] == name and r.get("phase", "cold") == phase]
            if not mine:
                continue
            key = f"{name} {phase}"
            summary[key] = {k: float(np.median([r[k] for r in mine])) for k in
                            ("wall_seconds", "compile_seconds", "train_seconds", "evaluate_seconds")}
            summary[key]["mean_wall_seconds"] = float(np.mean([r["wall_seconds"] for r in mine]))
            summary[key]["children"] = len(mine)
            summary[key]["images"] = chosen[name].batch_size * (chosen[name].max_steps or 0)
            summary[key]["input_size"] = chosen[name].input_size or 32
    return {"n": n, "seed": seed, "summary": summary, "rows": rows,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}


def write(report: dict[str, Any]) -> str:
    names = list(report["summary"])
    first = report["summary"][names[0]]
    lines = ["# Proxy child cost (fresh sampled children; cold: new process, empty compilation cache; "
             "warm: a second process, the cache the cold one filled)", "",
             f"{min(b['children'] for b in report['summary'].values())} of {report['n']} children of the "
             f"MnasNet space, fmnist setting (sample seed {report['seed']}), each trained under every "
             "budget in turn.", "",
             "| budget | input | images | median wall s | mean wall s | compile s | train s | evaluate s "
             f"| wall vs {names[0]} |", "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        b = report["summary"][name]
        lines.append(f"| {name} | {b['input_size']} | {b['images']} | {b['wall_seconds']:.1f} | "
                     f"{b['mean_wall_seconds']:.1f} | {b['compile_seconds']:.1f} | {b['train_seconds']:.1f} | "
                     f"{b['evaluate_seconds']:.1f} | {b['mean_wall_seconds'] / first['mean_wall_seconds']:.2f} |")
    lines += ["", "Medians over children; 'evaluate' is BN recalibration + validation. Reproduce: "
              "`python -m benchmarks.child_cost` (see its docstring)."]
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "child_cost.json").write_text(json.dumps(report, indent=1))
    (REPORTS / "child_cost.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="proxy", help="comma-separated budget names")
    parser.add_argument("--n", type=int, default=8, help="children")
    parser.add_argument("--seed", type=int, default=777, help="sample seed (fresh archs)")
    parser.add_argument("--phase", choices=("both", "cold", "warm"), default="both",
                        help="both: cold here, then warm in a second process (default)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="compilation cache of the phases (default: a new one under runs/)")
    parser.add_argument("--rows", type=Path, default=None, help="(internal) where a phase writes its rows")
    args = parser.parse_args(argv)
    import subprocess
    import tempfile

    from mnas_jax.train.runtime import prepare_process

    names = [b for b in args.budgets.split(",") if b]
    chosen = configs(names)
    if args.phase == "both":
        Path("runs").mkdir(exist_ok=True)
        cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="child-cost-cache-", dir="runs"))
        rows: list[dict[str, Any]] = []
        for phase in ("cold", "warm"):  # each a fresh process
            out = cache.parent / f"{cache.name}-{phase}.json"
            subprocess.run([sys.executable, "-m", "benchmarks.child_cost", "--phase", phase, "--budgets",
                            args.budgets, "--n", str(args.n), "--seed", str(args.seed), "--cache-dir",
                            str(cache), "--rows", str(out)], check=True)
            rows += json.loads(out.read_text())
            print(write(summarise(chosen, rows, args.n, args.seed)))
        return 0
    if args.cache_dir is None:
        raise SystemExit("--phase cold|warm needs --cache-dir")
    if args.phase == "cold" and args.cache_dir.exists() and any(args.cache_dir.iterdir()):
        raise SystemExit(f"--cache-dir {args.cache_dir} is not empty: a cold phase needs an empty cache")
    prepare_process(args.cache_dir)
    rows = run(names, args.n, args.seed, args.phase)
    if args.rows is not None:
        args.rows.write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
