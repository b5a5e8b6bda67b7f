"""Where a proxy training step's time goes: the stage executables' compute against host overhead.

The proxy preset trains a child stage by stage (`mnas_jax.train.layerwise`): per step ~2
executables per layer plus the tail, and whatever Python does around them. For a few fixed
sampled children of the MnasNet space (fmnist setting, the proxy preset at 16x16) this trains
three copies of the same child from the same weights on the same batches, one step of each in
turn (the order alternates), so the machine's drift hits all three alike:

- ``before``: the step loop as it was (`legacy_train_fn`: a host-to-device transfer of the
  learning rate, the EMA decay and the step index every step, one eager op per stage for the
  gradient norm);
- ``after``: the trainer's step now (`layerwise.stage_train_fn`);
- ``compute``: the same executables, each waited for before the next is called, counting only
  the time inside them: the floor a step cannot go below without faster executables.

Each step is waited for (its new weights and metrics) before the next copy steps. Reported per
child: median wall ms a step after the warm-up, the process CPU ms a step (robust when other
jobs share the core: it counts only this process's threads) and the main thread's CPU ms a step
(the host side: Python, flattening, dispatch), the after/before ratio, and whether the two
trainers' losses agree (they must be identical: same executables, same inputs).

    taskset -c 0 python -m benchmarks.step_overhead [--n 5] [--seed 777] [--steps 120]

Writes benchmarks/reports/step_overhead.{md,json} and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPORTS = Path(__file__).parent / "reports"
WARMUP = 10  # steps left out of the medians (first calls of each executable)
VARIANTS = ("before", "after", "compute")


def legacy_train_fn(fns: list, key: Any, lrs: np.ndarray, decays: np.ndarray, replicated: Any) -> Callable:
    """The stage-by-stage step before issue 20 item 4, verbatim: the baseline of this benchmark
    and of tests/test_short_runs.py's check that the losses did not change."""
    import jax
    import jax.numpy as jnp

    chain, tail = fns[:-1], fns[-1]
    put = lambda v: jax.device_put(np.float32(v), replicated)  # noqa: E731

    def train(state: Any, batch: Any, _key: Any) -> tuple[Any, dict]:
        lr, decay = put(lrs[state.step]), put(decays[state.step])
        params, stats, opt = list(state.params), list(state.stats), list(state.opt)
        ema = None if state.ema is None else list(state.ema)
        x, vjps = batch.images, []
        for i, f in enumerate(chain):
            x, stats[i], vjp = f.forward(params[i], stats[i], x)
            vjps.append(vjp)
        t = len(chain)
        dx, loss, correct, params[t], stats[t], opt[t], ema_t, sumsq = tail.train(
            params[t], stats[t], opt[t], None if ema is None else ema[t], x, batch.labels, batch.mask, key,
            jax.device_put(np.int32(state.step), replicated), lr, decay)
        norms = [sumsq]
        if ema is not None:
            ema[t] = ema_t
        for i in reversed(range(t)):
            dx, params[i], opt[i], ema_i, sq = chain[i].backward(vjps[i], dx, params[i], opt[i],
                                                                 None if ema is None else ema[i], lr, decay)
            vjps[i] = None
            norms.append(sq)
            if ema is not None:
                ema[i] = ema_i
        metrics = {"loss": loss, "accuracy": correct / batch.labels.shape[0], "grad_norm": jnp.sqrt(sum(norms))}
        return state._replace(step=state.step + 1, params=params, stats=stats, opt=opt, ema=ema), metrics

    return train


def compute_only_fn(fns: list, key: Any, inputs: Any) -> Callable:
    """The step with every executable waited for; also returns the wall and process-CPU seconds
    spent inside them and the costliest stage's share of that CPU (forward + backward)."""
    import jax

    wait = jax.block_until_ready
    chain, tail = fns[:-1], fns[-1]

    def timed(stage: int, f: Callable, *args: Any) -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        out = wait(f(*args))
        inside[0] += time.perf_counter() - start
        per_stage[stage] += time.process_time() - cpu
        return out

    inside, per_stage = [0.0], [0.0] * len(fns)

    def train(state: Any, batch: Any, _key: Any) -> tuple[Any, dict, tuple[float, float, float]]:
        inside[0], per_stage[:] = 0.0, [0.0] * len(fns)
        lr, decay = inputs.lr[state.step], inputs.decay[state.step]
        params, stats, opt = list(state.params), list(state.stats), list(state.opt)
        x, vjps = batch.images, []
        for i, f in enumerate(chain):
            x, stats[i], vjp = timed(i, f.forward, params[i], stats[i], x)
            vjps.append(vjp)
        t = len(chain)
        dx, loss, _, params[t], stats[t], opt[t], _, _ = timed(
            t, tail.train, params[t], stats[t], opt[t], None, x, batch.labels, batch.mask, key, inputs.step[state.step],
            lr, decay)
        for i in reversed(range(t)):
            dx, params[i], opt[i], _, _ = timed(i, chain[i].backward, vjps[i], dx, params[i], opt[i], None, lr, decay)
            vjps[i] = None
        cpu = sum(per_stage)
        return state._replace(step=state.step + 1, params=params, stats=stats, opt=opt), {"loss": loss}, (
            inside[0], cpu, max(per_stage) / cpu)

    return train


def _child(spec: Any, config: Any, data: Any, cache: Any, placement: Any, index: int) -> dict[str, Any]:
    """Compile a child and build the three steps and their initial states (equal values, separate
    buffers: the steps donate them)."""
    import jax

    from mnas_jax.models import build_model, init_variables
    from mnas_jax.models.stages import net_stages
    from mnas_jax.train import layerwise
    from mnas_jax.train.loop import resolve_dw_impl
    from mnas_jax.train.optim import ema_decay_at, learning_rate_schedule, optimizer_parts

    impl = resolve_dw_impl(config.dw_impl)
    steps_per_epoch = min(config.train_limit, data.num_examples("train")) // config.batch_size
    total = config.max_steps
    variables = jax.device_put(init_variables(build_model(spec, impl), (1, *data.image_shape), seed=index),
                               placement.replicated)
    key = jax.random.key(index)
    compiled = layerwise.compile_layerwise(spec, impl, config, variables, placement, key, steps_per_epoch, total,
                                           cache)
    stages = net_stages(spec, impl, pad=config.pad_channels)  # the stages `compiled` trains
    fns, _ = cache.prepare(stages, layerwise.static_hyper(config), optimizer_parts(config), spec.num_classes,
                           placement.data, placement.replicated)
    steps = jax.numpy.arange(total + 1)
    lrs = np.asarray(jax.vmap(learning_rate_schedule(config, steps_per_epoch, total))(steps), np.float32)
    decays = np.asarray(ema_decay_at(config.ema_decay or 0.0, steps), np.float32)
    trains = {"before": legacy_train_fn(fns, key, lrs, decays, placement.replicated), "after": compiled.train,
              "compute": compute_only_fn(fns, key, layerwise.step_inputs(lrs, decays, placement.replicated))}
    return {"key": key, "trains": trains, "states": {v: compiled.make_state(jax.tree.map(jax.numpy.copy, variables)) for v in VARIANTS},
            "stages": len(fns), "compile_seconds": compiled.seconds}


def _batches(config: Any, data: Any, placement: Any, seed: int) -> tuple[list, float]:
    """The run's batches on the device (as the loop's prefetch thread makes them) and the
    median ms it takes to make one (augmentation + transfer)."""
    from mnas_jax.data.pipeline import put_sharded

    out, times = [], []
    it = data.train_batches(config.batch_size, seed=seed, epoch=0, limit=config.train_limit, augment=config.augment)
    for _ in range(config.max_steps):
        start = time.perf_counter()
        out.append(put_sharded(next(it), placement.data))
        times.append(time.perf_counter() - start)
    return out, float(np.median(times) * 1e3)


def measure_child(spec: Any, config: Any, data: Any, cache: Any, placement: Any, index: int) -> dict[str, Any]:
    """Train the three copies of one child step by step, interleaved; per-step timings."""
    import jax

    child = _child(spec, config, data, cache, placement, index)
    batches, data_ms = _batches(config, data, placement, seed=index)
    states, trains, key = child["states"], child["trains"], child["key"]
    rec: dict[str, dict[str, list[float]]] = {v: {"wall": [], "cpu": [], "main": [], "loss": []} for v in VARIANTS}
    inside: list[tuple[float, float, float]] = []
    for step, batch in enumerate(batches):
        order = VARIANTS if step % 2 == 0 else VARIANTS[::-1]
        for v in order:
            wall, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
            out = trains[v](states[v], batch, key)
            states[v], metrics = jax.block_until_ready(out[:2])
            rec[v]["wall"].append(time.perf_counter() - wall)
            rec[v]["cpu"].append(time.process_time() - cpu)
            rec[v]["main"].append(time.thread_time() - main)
            rec[v]["loss"].append(float(metrics["loss"]))
            if v == "compute":
                inside.append(out[2])
    row: dict[str, Any] = {"child": index, "arch_id": spec.arch_id, "stages": child["stages"],
                           "compile_seconds": child["compile_seconds"], "data_ms": data_ms}
    for v in VARIANTS:
        for k in ("wall", "cpu", "main"):
            row[f"{v}_{k}_ms"] = float(np.median(rec[v][k][WARMUP:]) * 1e3)
    row["compute_inside_ms"] = float(np.median([w for w, _, _ in inside[WARMUP:]]) * 1e3)
    row["compute_inside_cpu_ms"] = float(np.median([c for _, c, _ in inside[WARMUP:]]) * 1e3)
    row["costliest_stage_share"] = float(np.median([f for _, _, f in inside[WARMUP:]]))
    pairs = np.array(rec["after"]["wall"][WARMUP:]) / np.array(rec["before"]["wall"][WARMUP:])
    row["after_over_before"] = float(np.median(pairs))
    before, after = np.array(rec["before"]["loss"]), np.array(rec["after"]["loss"])
    row["max_rel_loss_diff"] = float(np.max(np.abs(after - before) / np.abs(before)))
    row["losses_identical"] = bool(np.array_equal(before, after))
    row["compute_losses_identical"] = bool(np.array_equal(before, np.array(rec["compute"]["loss"])))
    return row


def run(n: int, seed: int, steps: int) -> list[dict[str, Any]]:
    """Measure ``n`` children sampled with ``seed`` (the proxy preset, ``steps`` steps each)."""
    from mnas_jax.data.fashion_mnist import load_fashion_mnist
    from mnas_jax.space import get_space, sample_tokens
    from mnas_jax.train.config import proxy
    from mnas_jax.train.sharding import make_placement
    from mnas_jax.train.stage_compile import StageCache

    config = dataclasses.replace(proxy(), max_steps=steps)
    space = get_space("mnasnet", "fmnist")
    data = load_fashion_mnist(input_size=config.input_size)
    placement, cache, rows = make_placement(), StageCache(), []
    for i, tokens in enumerate(sample_tokens(space.choices, seed, n)):
        spec = dataclasses.replace(space.decode(tokens), input_size=config.input_size)
        rows.append(measure_child(spec, config, data, cache, placement, i))
        r = rows[-1]
        print(f"child {i}: before {r['before_wall_ms']:.0f} ms ({r['before_cpu_ms']:.0f} cpu), after "
              f"{r['after_wall_ms']:.0f} ms ({r['after_cpu_ms']:.0f} cpu), x{r['after_over_before']:.2f}; compute "
              f"{r['compute_inside_cpu_ms']:.0f} cpu ms; losses identical {r['losses_identical']}", flush=True)
    return rows


def summarise(rows: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
    """Medians over children of every per-child column."""
    keys = [k for k in rows[0] if k.endswith("_ms") or k in ("after_over_before", "costliest_stage_share")]
    summary = {k: float(np.median([r[k] for r in rows])) for k in keys}
    summary["all_losses_identical"] = all(r["losses_identical"] for r in rows)
    return {"args": args, "summary": summary, "rows": rows,
            "machine": {"cpus": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
                        "platform": platform.platform()}}


def write(report: dict[str, Any]) -> str:
    """Write the .md and .json reports; return the markdown."""
    a = report["args"]
    lines = ["# Proxy step: compute against host overhead (stage-by-stage trainer)", "",
             f"{len(report['rows'])} children of the MnasNet space, fmnist setting (sample seed {a['seed']}), "
             f"proxy preset ({a['steps']} steps of 32 images at 16x16); cores {report['machine']['affinity']}; "
             f"async dispatch {'off' if a['sync_dispatch'] else 'on'}. Medians over steps {WARMUP}+; the three "
             "copies of each child step in turn (interleaved).", "",
             "| child | stages | before ms | after ms | after/before | before cpu ms | after cpu ms | after cpu/before "
             "| compute cpu ms | costliest stage | before host ms | after host ms | data ms | losses identical |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"] + [dict(report["summary"], child="median", stages="",
                                    losses_identical=report["summary"]["all_losses_identical"])]:
        lines.append(f"| {r['child']} | {r['stages']} | {r['before_wall_ms']:.0f} | {r['after_wall_ms']:.0f} | "
                     f"{r['after_over_before']:.2f} | {r['before_cpu_ms']:.0f} | {r['after_cpu_ms']:.0f} | "
                     f"{r['after_cpu_ms'] / r['before_cpu_ms']:.2f} | {r['compute_inside_cpu_ms']:.0f} | "
                     f"{r['costliest_stage_share']:.0%} | {r['before_main_ms']:.1f} | {r['after_main_ms']:.1f} | "
                     f"{r['data_ms']:.1f} | {r['losses_identical']} |")
    m = report["summary"]
    lines += ["", f"Median child: {m['after_cpu_ms']:.0f} CPU ms a step, {m['after_cpu_ms'] / m['compute_inside_cpu_ms']:.2f}x "
              f"the {m['compute_inside_cpu_ms']:.0f} ms inside its executables: the step runs at its compute floor; "
              f"the host's own share is the main thread's {m['after_main_ms']:.0f} ms (was {m['before_main_ms']:.0f}), "
              "most of it overlapped with the executables by async dispatch."]
    lines += ["", "ms: wall per step (after/before: median of the per-step ratios); cpu: this process's CPU per "
              "step (all threads; what the wall is on an idle core, robust to other jobs on it); compute cpu: the "
              "CPU inside the executables, each waited for (the floor); costliest stage: its share of that "
              "compute (forward + backward); host: the "
              "main thread's CPU per step (Python, pytree flattening, dispatch, transfers); data: making one "
              "batch (the loop's prefetch thread). Reproduce: `taskset -c 0 python -m benchmarks.step_overhead` "
              "(see its docstring)."]
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "step_overhead.json").write_text(json.dumps(report, indent=1))
    (REPORTS / "step_overhead.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5, help="children")
    parser.add_argument("--seed", type=int, default=777, help="sample seed (child_cost's children)")
    parser.add_argument("--steps", type=int, default=120, help="steps per child (the proxy's 120)")
    parser.add_argument("--sync-dispatch", action="store_true",
                        help="run executables in the calling thread (jax_cpu_enable_async_dispatch=False)")
    args = parser.parse_args(argv)
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)
    if args.sync_dispatch:
        import jax

        jax.config.update("jax_cpu_enable_async_dispatch", False)
    rows = run(args.n, args.seed, args.steps)
    print(write(summarise(rows, vars(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
