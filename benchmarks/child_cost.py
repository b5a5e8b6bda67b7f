"""Wall time of one proxy child (compile + train + evaluate) on a fresh batch of sampled children.

One process, started cold (no compiled stage in memory, no persistent compilation cache): the
children are trained one after another as the search's local executor trains them, so later
children reuse the stages earlier ones compiled, exactly as in a search. Budgets are compared
side by side in one run (the machine drifts between runs): each child is trained under every
budget before the next child starts.

    python -m benchmarks.child_cost [--budgets r32-s40-model,proxy] [--n 12] [--seed 777]

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


def run(names: list[str], n: int, seed: int) -> dict[str, Any]:
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
            rows.append({"budget": name, "child": i, "arch_id": spec.arch_id, "wall_seconds": wall,
                         "compile_seconds": res.compile_seconds, "train_seconds": res.train_seconds,
                         "evaluate_seconds": wall - res.compile_seconds - res.train_seconds,
                         "new_stages": caches[name].misses - misses, "val_accuracy": res.val_accuracy,
                         "status": res.status})
            print(f"child {i} {name}: {wall:.1f} s (compile {res.compile_seconds:.1f}, train "
                  f"{res.train_seconds:.1f}, new stages {rows[-1]['new_stages']}) acc {res.val_accuracy}",
                  flush=True)
        write(summarise(chosen, rows, n, seed))  # a stopped run leaves the children it finished
    return summarise(chosen, rows, n, seed)


def summarise(chosen: dict[str, Any], rows: list[dict[str, Any]], n: int, seed: int) -> dict[str, Any]:
    """Medians per budget over the children trained so far."""
    summary = {}
    for name in chosen:
        mine = [r for r in rows if r["budget"] == name]
        if not mine:
            continue
        summary[name] = {k: float(np.median([r[k] for r in mine])) for k in
                         ("wall_seconds", "compile_seconds", "train_seconds", "evaluate_seconds")}
        summary[name]["mean_wall_seconds"] = float(np.mean([r["wall_seconds"] for r in mine]))
        summary[name]["children"] = len(mine)
        summary[name]["images"] = chosen[name].batch_size * (chosen[name].max_steps or 0)
        summary[name]["input_size"] = chosen[name].input_size or 32
    return {"n": n, "seed": seed, "summary": summary, "rows": rows,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}


def write(report: dict[str, Any]) -> str:
    names = list(report["summary"])
    first = report["summary"][names[0]]
    lines = ["# Proxy child cost (one process, cold start, fresh sampled children)", "",
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
    parser.add_argument("--budgets", default="r32-s40-model,proxy", help="comma-separated budget names")
    parser.add_argument("--n", type=int, default=12, help="children")
    parser.add_argument("--seed", type=int, default=777, help="sample seed (fresh archs)")
    args = parser.parse_args(argv)
    from mnas_jax.train.xla_cpu import configure_xla_cpu

    configure_xla_cpu()
    print(write(run([b for b in args.budgets.split(",") if b], args.n, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
