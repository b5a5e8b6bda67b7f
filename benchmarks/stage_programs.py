"""Distinct stage programs of the fmnist space, and the step time channel padding costs.

(a) Programs: every distinct layer of the MnasNet space in the fmnist setting (the rows of its
lookup table, `space.table_layers()`) mapped to its stage key (`stages.layer_stage_key`), Net's
own and channel-padded (`mnas_jax.models.padding`), plus the stem and one tail per channel count
that can reach the head. Also how many stages a child meets that no earlier child had, over a
run of sampled children (what a search's child compiles).

(b) Step time: sampled children (seed fixed) compiled for the proxy preset both ways in this one
process; the steady-state training step (compiles excluded, one batch on the device reused) is
timed in rounds that alternate the two, so the machine's drift falls on both alike.

    python -m benchmarks.stage_programs [--n 6] [--seed 777] [--rounds 7] [--steps 10]

Writes benchmarks/reports/stage_programs.{md,json} and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPORTS = Path(__file__).parent / "reports"


def count_programs(impl_name: str = "shift", children: int = 500, seed: int = 1) -> dict[str, Any]:
    """Distinct stage keys of the fmnist space, Net's own and padded, and unseen stages per child."""
    from mnas_jax.models.depthwise import DepthwiseImpl
    from mnas_jax.models.padding import padded_width
    from mnas_jax.models.stages import layer_stage_key, net_stages
    from mnas_jax.space import get_space, sample_tokens
    from mnas_jax.space.spec import Op

    impl = DepthwiseImpl(impl_name)
    space = get_space("mnasnet", "fmnist")
    layers = space.table_layers()
    body = [layer for layer in layers[1:] if layer.op not in (Op.POOL, Op.FC)
            and not (layer.kernel == 1 and layer.out_channels == space.head_channels)]
    heads = space.block_input_channels()[-1]
    out: dict[str, Any] = {"table_layers": len(layers), "body_layers": len(body), "head_inputs": heads}
    specs = [space.decode(t) for t in sample_tokens(space.choices, seed, children)]
    for pad in (False, True):
        keys = {(layer_stage_key(layer, impl, pad), padded_width(layer.in_channels) if pad else layer.in_channels)
                for layer in body}
        tails = {padded_width(c) if pad else c for c in heads}
        seen: set = set()
        unseen = []
        for spec in specs:
            stage_keys = {(s.key, s.in_shape) for s in net_stages(spec, impl, pad)}
            unseen.append(len(stage_keys - seen))
            seen |= stage_keys
        out["padded" if pad else "unpadded"] = {
            "programs": len(keys) + len(tails) + 1, "layer_programs": len(keys), "tails": len(tails),
            "unseen_first_child": unseen[0], "unseen_children_2_10": float(np.mean(unseen[1:10])),
            "unseen_children_50_100": float(np.mean(unseen[49:100])),
            "unseen_last_100": float(np.mean(unseen[-100:])), "distinct_in_run": len(seen)}
    out["children_sampled"] = children
    return out


def _compiled(spec: Any, config: Any, cache: Any) -> tuple[Any, Any, Any]:
    """A child's layer-wise bundle, its fresh state and one device batch of the config's shape."""
    import jax

    from mnas_jax.data.pipeline import put_sharded
    from mnas_jax.data.source import Batch
    from mnas_jax.models import build_model, init_variables
    from mnas_jax.train.layerwise import compile_layerwise
    from mnas_jax.train.loop import resolve_dw_impl
    from mnas_jax.train.sharding import make_placement

    spec = dataclasses.replace(spec, input_size=config.input_size or spec.input_size)
    placement = make_placement()
    impl = resolve_dw_impl(config.dw_impl)
    variables = jax.device_put(init_variables(build_model(spec, impl), (1, spec.input_size, spec.input_size,
                                                                        spec.input_channels), seed=0),
                               placement.replicated)
    compiled = compile_layerwise(spec, impl, config, variables, placement, jax.random.key(0), 312,
                                 config.max_steps, cache)
    rng = np.random.default_rng(0)
    n, size = config.batch_size, spec.input_size
    batch = Batch(rng.standard_normal((n, size, size, spec.input_channels)).astype(np.float32),
                  rng.integers(0, spec.num_classes, n).astype(np.int32), np.ones(n, np.float32))
    return compiled, compiled.make_state(variables), put_sharded(batch, placement.data)


def step_times(n: int, seed: int, rounds: int, steps: int,
               on_row: Any = None) -> list[dict[str, Any]]:
    """Per child: median seconds per proxy training step, unpadded and padded, interleaved
    (``on_row(rows)`` after each child, to keep partial results)."""
    import jax

    from mnas_jax.space import get_space, sample_tokens
    from mnas_jax.train.config import proxy
    from mnas_jax.train.stage_compile import StageCache

    space = get_space("mnasnet", "fmnist")
    specs = [space.decode(t) for t in sample_tokens(space.choices, seed, n)]
    configs = {"unpadded": dataclasses.replace(proxy(), pad_channels=False),
               "padded": dataclasses.replace(proxy(), pad_channels=True)}
    caches = {name: StageCache() for name in configs}
    rows = []
    for i, spec in enumerate(specs):
        runs, row = {}, {"child": i, "arch_id": spec.arch_id}
        for name, config in configs.items():
            start = time.perf_counter()
            compiled, state, batch = _compiled(spec, config, caches[name])
            runs[name] = [compiled.train, state, batch, []]
            row[f"{name}_prepare_seconds"] = time.perf_counter() - start
        for r in range(rounds + 1):  # round 0 warms up (first calls, allocations)
            for name in (list(configs) if r % 2 else list(configs)[::-1]):
                train, state, batch, times = runs[name]
                start = time.perf_counter()
                for _ in range(steps):
                    state, metrics = train(state, batch, None)
                jax.block_until_ready((state.params, metrics))
                runs[name][1] = state
                if r:
                    times.append((time.perf_counter() - start) / steps)
        for name in configs:
            row[f"{name}_step_ms"] = 1e3 * float(np.median(runs[name][3]))
        row["ratio"] = row["padded_step_ms"] / row["unpadded_step_ms"]
        rows.append(row)
        if on_row is not None:
            on_row(rows)
        print(f"child {i} {spec.arch_id}: unpadded {row['unpadded_step_ms']:.1f} ms, padded "
              f"{row['padded_step_ms']:.1f} ms a step, ratio {row['ratio']:.3f}", flush=True)
    return rows


def write(report: dict[str, Any]) -> str:
    """Write the report's markdown and JSON; return the markdown."""
    c = report["programs"]
    lines = ["# Distinct stage programs of the fmnist space, and the step time of channel padding", "",
             f"(a) {c['table_layers']} lookup-table layers ({c['body_layers']} searchable) mapped to stage keys; "
             f"unseen stages per child over {c['children_sampled']} sampled children in sequence.", "",
             "| stages | programs | layer programs | tails | unseen: child 1 | children 2-10 | 50-100 | last 100 |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ("unpadded", "padded"):
        p = c[name]
        lines.append(f"| {name} | {p['programs']} | {p['layer_programs']} | {p['tails']} | {p['unseen_first_child']} "
                     f"| {p['unseen_children_2_10']:.1f} | {p['unseen_children_50_100']:.1f} | "
                     f"{p['unseen_last_100']:.1f} |")
    rows = report["steps"]
    if rows:
        lines += ["", f"(b) Proxy training step (batch 32, 16x16), steady state, {report['rounds']} interleaved rounds "
                  f"of {report['steps_per_round']} steps; children sampled with seed {report['seed']}.", "",
                  "| child | arch | unpadded ms | padded ms | padded / unpadded |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['child']} | {r['arch_id']} | {r['unpadded_step_ms']:.1f} | {r['padded_step_ms']:.1f} "
                         f"| {r['ratio']:.3f} |")
        lines += ["", f"Median ratio {report['median_ratio']:.3f} (target <= 1.2)."]
    lines += ["", "Reproduce: `python -m benchmarks.stage_programs` (see its docstring)."]
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "stage_programs.json").write_text(json.dumps(report, indent=1))
    (REPORTS / "stage_programs.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6, help="children timed (0: count programs only)")
    parser.add_argument("--seed", type=int, default=777, help="sample seed of the timed children")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=10, help="training steps a round")
    args = parser.parse_args(argv)
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)
    programs = count_programs()
    report: dict[str, Any] = {"programs": programs, "steps": [], "seed": args.seed, "rounds": args.rounds,
                              "steps_per_round": args.steps,
                              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    print(write(report), flush=True)
    if args.n:
        def keep(rows: list[dict[str, Any]]) -> None:
            report["steps"] = rows
            report["median_ratio"] = float(np.median([r["ratio"] for r in rows]))
            write(report)

        step_times(args.n, args.seed, args.rounds, args.steps, keep)
        print(write(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
