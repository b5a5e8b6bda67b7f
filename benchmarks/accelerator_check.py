"""The accelerator path, checked in one command (scripts/accelerator_check.sh calls this).

What it runs, each part in a fresh process so every part picks its own JAX platform:
1. backends: the search driver's (`driver_only_cpu`, as a Ray search driver sets it: must be the
   CPU) and a child's (the default platform: the accelerator when one is present);
2. training: a proxy child and a paper-preset child (the paper's recipe, a few hundred steps),
   both whole-network, on the accelerator (platform asserted: the run fails if JAX fell back to
   the CPU) and the same on the CPU; compile seconds and images/s side by side;
3. Ray: 2 children through the search's RayExecutor, each asking for {"GPU": 1} (a CPU-only
   machine asks for {"CPU": 1}); each child's platform and assigned accelerator ids.

With JAX_PLATFORMS=cpu (or on a machine without an accelerator) it runs the CPU half only and says
so. Results: $OUT/accelerator.{json,md} when OUT is set, else runs/accelerator_check/.

    bash scripts/accelerator_check.sh            # on the GPU/TPU host
    JAX_PLATFORMS=cpu bash scripts/accelerator_check.sh --quick   # the CPU half, small (slow test)
    JAX_PLATFORMS=cpu bash scripts/accelerator_check.sh --quick --parts proxy   # default-suite test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_BACKEND = """
import json, os, sys
from mnas_jax.train.runtime import driver_only_cpu, prepare_process
if sys.argv[1] == "driver":
    driver_only_cpu()
prepare_process()
import jax
print(json.dumps({"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
                  "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")}))
"""


def _python(code_or_args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, *code_or_args], env=env, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        return {"error": f"exit {out.returncode}: {tail}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def train_one(kind: str, platform: str, quick: bool) -> dict[str, Any]:
    """Train one child whole-network on `platform` in this process; platform asserted."""
    import dataclasses

    from mnas_jax.train.runtime import prepare_process

    prepare_process()
    import jax

    from mnas_jax.data.fashion_mnist import load_fashion_mnist
    from mnas_jax.space import reference
    from mnas_jax.train.config import paper, proxy
    from mnas_jax.train.loop import train_and_evaluate

    got = jax.default_backend()
    if (got == "cpu") != (platform == "cpu"):
        raise SystemExit(f"asked for {platform}, JAX runs on {got}")
    name = "mobilenetv2-0.35" if quick else "mnasnet-a1"
    spec = reference(name, "fmnist")
    if kind == "proxy":
        config = dataclasses.replace(proxy(), layerwise=False, max_steps=4 if quick else 120,
                                     val_limit=64 if quick else 512)
    else:
        config = dataclasses.replace(paper(), max_steps=4 if quick else 300, evaluate_test=False,
                                     val_limit=256 if quick else 2000, bn_recalibration_examples=256)
    size = config.input_size or spec.input_size
    data = load_fashion_mnist(input_size=size)
    start = time.perf_counter()
    res = train_and_evaluate(spec, config, jax.random.key(0), data)
    return {"kind": kind, "platform": got, "devices": jax.device_count(), "arch": name,
            "steps": res.steps, "batch": config.batch_size, "input_size": size, "status": res.status,
            "compile_seconds": res.compile_seconds, "images_per_second": res.images_per_second,
            "wall_seconds": time.perf_counter() - start, "val_accuracy": res.val_accuracy}


def ray_children(accelerator: str | None, quick: bool) -> dict[str, Any]:
    """2 children through RayExecutor, {"GPU": 1}/{"TPU": 1} each (or {"CPU": 1} without one)."""
    import functools

    from mnas_jax.search.children import train_child
    from mnas_jax.search.executors import RayExecutor
    from mnas_jax.space import reference

    resources = {"CPU": 1.0, accelerator.upper(): 1.0} if accelerator else {"CPU": 1.0}
    overrides = (("max_steps", 4 if quick else 60), ("val_limit", 64 if quick else 512), ("layerwise", False))
    fn = functools.partial(train_child, preset="proxy", overrides=overrides)
    specs = [reference("mobilenetv2-0.35", "fmnist"), reference("mobilenetv2-0.5", "fmnist")]
    ex = RayExecutor(fn, num_cpus=2, resources=resources)
    start = time.perf_counter()
    try:
        results = ex.evaluate(specs, [0, 1])
    finally:
        ex.shutdown()
    return {"resources": resources, "wall_seconds": time.perf_counter() - start,
            "children": [{"status": r.status, "reason": r.reason, "accuracy": r.accuracy,
                          "platform": r.extra.get("platform"), "accelerator_ids": r.extra.get("accelerator_ids")}
                         for r in results]}


def report(results: dict[str, Any], out: Path) -> str:
    """Write accelerator.{json,md} under `out`; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    from mnas_jax.files import write_atomic

    write_atomic(out / "accelerator.json", json.dumps(results, indent=1))
    lines = ["# Accelerator check", "",
             f"Accelerator: {results['accelerator'] or 'none (CPU half only)'}; driver backend "
             f"{results['driver'].get('backend')} (preallocation {results['driver'].get('preallocate')}), "
             f"child backend {results['child'].get('backend')} ({', '.join(results['child'].get('devices', []))}).",
             "", "| child | platform | devices | arch | steps x batch | compile s | images/s | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["training"]:
        if "error" in r:
            lines.append(f"| {r.get('kind')} | {r.get('platform')} | - | - | - | - | - | {r['error']} |")
            continue
        lines.append(f"| {r['kind']} | {r['platform']} | {r['devices']} | {r['arch']} | {r['steps']} x {r['batch']} "
                     f"| {r['compile_seconds']:.1f} | {r['images_per_second']:.0f} | {r['status']} |")
    ray = results.get("ray", {})
    lines += ["", "Ray: not run (--parts)" if ray.get("skipped") else
              f"Ray: 2 children asking for {ray.get('resources')}: "
              + ("; ".join(f"{c['status']} on {c['platform']} (ids {c['accelerator_ids']})" for c in ray["children"])
                 if "children" in ray else str(ray.get("error"))),
              "", f"Total {results['seconds']:.0f} s. Reproduce: `bash scripts/accelerator_check.sh`."]
    text = "\n".join(lines) + "\n"
    write_atomic(out / "accelerator.md", text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps of small models (the test)")
    parser.add_argument("--parts", default="proxy,paper,ray",
                        help="comma-separated: proxy, paper (the trainings), ray (default: all)")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)  # internal: one part in this process
    args = parser.parse_args(argv)
    if args.part:
        what, platform = args.part.split(":")
        result = ray_children(None if platform == "cpu" else platform, args.quick) if what == "ray" else \
            train_one(what, platform, args.quick)
        print(json.dumps(result))
        return 0
    parts = {p for p in args.parts.split(",") if p}
    unknown = parts - {"proxy", "paper", "ray"}
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}: choose from proxy, paper, ray")
    started = time.perf_counter()
    env = dict(os.environ)
    budget = 600.0
    driver = _python(["-c", _BACKEND, "driver"], env, 120)
    child = _python(["-c", _BACKEND, "child"], env, 120)
    backend = child.get("backend", "cpu")
    accelerator = None if backend == "cpu" else ("tpu" if backend == "tpu" else "gpu")
    training = []
    platforms = ([accelerator] if accelerator else []) + ["cpu"]
    for platform in platforms:
        penv = dict(env, JAX_PLATFORMS="cpu") if platform == "cpu" else env
        for kind in [k for k in ("proxy", "paper") if k in parts]:
            row = _python(["-m", "benchmarks.accelerator_check", "--part", f"{kind}:{platform}",
                           *(["--quick"] if args.quick else [])], penv, budget)
            training.append({"kind": kind, "platform": platform, **row})
            print(json.dumps(training[-1]), flush=True)
    ray = _python(["-m", "benchmarks.accelerator_check", "--part", f"ray:{accelerator or 'cpu'}",
                   *(["--quick"] if args.quick else [])], env, budget) if "ray" in parts else {"skipped": True}
    results = {"accelerator": accelerator, "driver": driver, "child": child, "training": training, "ray": ray,
               "quick": args.quick, "seconds": time.perf_counter() - started}
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path("runs/accelerator_check")
    print(report(results, out))
    failed = [r for r in training if r.get("status") != "ok"]
    if "ray" in parts:
        failed += [c for c in ray.get("children", [{"status": "failed"}]) if c["status"] != "ok"]
    return 1 if failed or driver.get("backend") != "cpu" else 0


if __name__ == "__main__":
    sys.exit(main())
