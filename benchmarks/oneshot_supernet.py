"""The one-shot supernet's costs on this machine: training step, gather/scatter, evaluation.

Trains the fmnist supernet's shared weights (proxy recipe: 16x16, batch 32) with uniformly
sampled paths for --steps steps in one process with a fresh stage cache, then scores
--children sampled children (BN statistics on --calibration training images, accuracy on
--validation validation images). The runner drops its least recently used stage programs when
the process nears its memory-map limit (`stage_compile.MAP_SHARE`); JAX's persistent compilation cache is on, in a fresh
directory, so a dropped stage met again is reloaded, not recompiled. Reports: the median step over steps that compiled nothing,
after the first --warmup steps; the stage programs compiled and the seconds spent; the
gather (host slices -> device) and scatter (device -> host slices) time per step; seconds per
child evaluated, first call (compiling the stages training had not met) and warm.

    PYTHONPATH=$PWD taskset -c 0 python -m benchmarks.oneshot_supernet [--steps 400]

Writes benchmarks/reports/oneshot_supernet.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPORTS = Path(__file__).parent / "reports"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--children", type=int, default=20)
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPORTS / "oneshot_supernet.json"))
    args = parser.parse_args()

    import tempfile

    import jax

    from mnas_jax.train.compile_cache import enable_compile_cache

    enable_compile_cache(tempfile.mkdtemp(prefix="oneshot-xla-"))

    from mnas_jax.data import load_fashion_mnist
    from mnas_jax.models.depthwise import DepthwiseImpl
    from mnas_jax.space import get_space
    from mnas_jax.train.config import proxy
    from mnas_jax.train.oneshot_eval import evaluate_child, evaluation_batches
    from mnas_jax.train.oneshot_paths import copy_weights, gather_child, scatter_child
    from mnas_jax.train.oneshot_train import default_layout, path_runner, train_supernet, uniform_paths
    from mnas_jax.train.stage_compile import memory_maps

    space = get_space("mnasnet", "fmnist")
    config = proxy()
    layout = default_layout(space, config)
    data = load_fashion_mnist(input_size=config.input_size)
    runner = path_runner(layout, config, DepthwiseImpl.SHIFT)
    sample = uniform_paths(space, config.input_size)
    start = time.perf_counter()
    run = train_supernet(layout, data, config, jax.random.key(args.seed), args.steps, sample_path=sample,
                         runner=runner)
    train_wall = time.perf_counter() - start
    warm = [t for i, (t, m) in enumerate(zip(run.step_seconds, run.step_stage_misses)) if i >= args.warmup and m == 0]
    late = run.step_seconds[args.warmup:]
    late_misses = run.step_stage_misses[args.warmup:]

    # gather/scatter alone, on a snapshot (the run's weights stay as trained)
    snapshot = copy_weights(run.weights)
    gathers, scatters = [], []
    for i in range(20):
        plan = runner.plan(snapshot, sample(jax.random.key(10_000 + i)))
        t0 = time.perf_counter()
        dev = jax.block_until_ready(jax.device_put(gather_child(snapshot, plan), runner.placement.replicated))
        t1 = time.perf_counter()
        scatter_child(snapshot, plan, dev)
        gathers.append(t1 - t0)
        scatters.append(time.perf_counter() - t1)

    cal, val = evaluation_batches(data, runner, args.calibration, args.validation)
    first, again, accs = [], [], []
    compiled_before = runner.compile_seconds
    for i in range(args.children):
        spec = sample(jax.random.key(20_000 + i))
        t0 = time.perf_counter()
        evaluate_child(runner, run.weights, spec, cal, val)
        t1 = time.perf_counter()
        acc, _ = evaluate_child(runner, run.weights, spec, cal, val)
        first.append(t1 - t0)
        again.append(time.perf_counter() - t1)
        accs.append(acc)
    ms = lambda xs: round(1000 * float(np.median(xs)), 1)  # noqa: E731
    report = {
        "machine": f"{platform.node()} {os.cpu_count()} cores; pinned to core 0, shared with other work",
        "steps": args.steps, "warm_steps_timed": len(warm), "median_step_ms": ms(warm),
        "p90_step_ms": round(1000 * float(np.percentile(warm, 90)), 1) if warm else None,
        "median_step_ms_all_after_warmup": ms(late), "mean_step_ms_all_after_warmup": round(1000 * float(np.mean(late)), 1),
        "stage_misses_per_step_after_warmup": round(float(np.mean(late_misses)), 2),
        "train_wall_s": round(train_wall, 1), "compile_or_reload_s": round(run.compile_seconds, 1),
        "stage_misses_total": int(sum(run.step_stage_misses)), "stages_dropped": runner.dropped,
        "stage_programs_kept": run.stages_compiled,
        "memory_maps_and_limit": memory_maps(),
        "loss_first_20": round(float(np.mean(run.losses[:20])), 3),
        "loss_last_20": round(float(np.mean(run.losses[-20:])), 3),
        "median_gather_ms": ms(gathers), "median_scatter_ms": ms(scatters),
        "eval_children": args.children, "calibration_images": len(cal) * config.batch_size,
        "validation_images": args.validation, "eval_first_call_median_s": round(float(np.median(first)), 3),
        "eval_compile_s": round(runner.compile_seconds - compiled_before, 1),
        "eval_warm_median_s": round(float(np.median(again)), 3),
        "eval_warm_max_s": round(float(np.max(again)), 3),
        "eval_accuracy_median": round(float(np.median(accs)), 3),
        "eval_accuracy_range": [round(float(min(accs)), 3), round(float(max(accs)), 3)],
        "stage_programs_after_eval": len(runner.cache),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
