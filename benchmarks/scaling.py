"""Data parallelism on this machine: 1 process x 2 devices vs 2 processes x 1 device.

Both run the same `mnas train` command with the same global batch, so they train on the same
images and must reach the same losses; the 2-process job talks through JAX's CPU collectives
(gloo) on 127.0.0.1, as hosts of a pod would over the network. Reported: global images/s of
the training steps (process 0's count), compile seconds, wall seconds and the loss curve, with
the machine's load average (the cores may be shared with other jobs).

The GPU part of the issue (the `tiny` imagenet search and a `paper`-preset child on a GPU) needs
a GPU host; when none is at hand the report says so.

    python benchmarks/scaling.py [--steps 30] [--batch-size 64] [--arch mnasnet-small]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "benchmarks" / "reports"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(n_processes: int, devices_each: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One configuration: n processes of `mnas train`, started together; process 0's JSON."""
    cmd = [sys.executable, "-m", "mnas_jax.cli.main", "train", args.arch, "--setting", "fmnist",
           "--preset", "smoke", "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--json", "--quiet"]
    address = f"127.0.0.1:{_free_port()}"
    procs = []
    for i in range(n_processes):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNAS_") or k == "MNAS_FMNIST_DIR"}
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_each}",
                   PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
        if n_processes > 1:
            env.update(MNAS_COORDINATOR_ADDRESS=address, MNAS_NUM_PROCESSES=str(n_processes), MNAS_PROCESS_ID=str(i))
        procs.append(subprocess.Popen([*cmd, "--workdir", str(workdir / f"p{i}")], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    started = time.monotonic()
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=args.timeout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    wall = time.monotonic() - started
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"{n_processes}x{devices_each} failed (exit {p.returncode}): {err[-2000:]}")
    result = json.loads(outs[0][0])
    return {"processes": n_processes, "devices_per_process": devices_each, "num_devices": result["num_devices"],
            "images_per_second": result["images_per_second"], "compile_seconds": result["compile_seconds"],
            "train_seconds": result["train_seconds"], "wall_seconds": wall, "final_loss": result["final_loss"],
            "loss_curve": result["loss_curve"], "val_accuracy": result["val_accuracy"]}


def _markdown(report: dict[str, Any]) -> str:
    rows = report["runs"]
    lines = [
        "# Scaling on this machine: 1 process x 2 devices vs 2 processes x 1 device", "",
        f"`mnas train {report['arch']} --setting fmnist --preset smoke --steps {report['steps']} "
        f"--batch-size {report['batch_size']}` (global batch), {report['machine']}; load average "
        f"{report['load_before'][0]:.2f} before, {report['load_after'][0]:.2f} after "
        "(other jobs may share the cores). Reproduce: `python benchmarks/scaling.py`.", "",
        "| layout | devices | images/s (steps) | compile s | wall s | final loss |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        layout = (f"{r['processes']} process{'es' if r['processes'] > 1 else ''} x "
                  f"{r['devices_per_process']} device{'s' if r['devices_per_process'] > 1 else ''}")
        lines.append(f"| {layout} | {r['num_devices']} | "
                     f"{r['images_per_second']:.1f} | {r['compile_seconds']:.1f} | {r['wall_seconds']:.1f} | "
                     f"{r['final_loss']:.6f} |")
    lines += ["", f"Largest loss difference over the curve: {report['max_loss_difference']:.2e} "
              "(the same images in the same steps on the same 2-device mesh).", "",
              "Both layouts share the same 2 CPU cores. The 2-process job compiles every program in "
              "each process (twice the compile work on the same cores) and exchanges gradients "
              "through gloo over loopback, the cost a pod pays over its network; with one process "
              "the 2 devices share memory. On real hosts each process has its own cores, so only "
              "the collectives' cost remains.", "",
              f"GPU: {report['gpu']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)  # XLA:CPU flags and the project's compilation cache, before JAX starts
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="mnasnet-small")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--out", type=Path, default=REPORTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [_run(1, 2, args, Path(tmp) / "1x2"), _run(2, 1, args, Path(tmp) / "2x1")]
    curves = [[loss for _, loss in r["loss_curve"]] for r in runs]
    report = {
        "arch": args.arch, "steps": args.steps, "batch_size": args.batch_size,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_before": load_before, "load_after": os.getloadavg(), "runs": runs,
        "max_loss_difference": max(abs(a - b) for a, b in zip(*curves)),
        "gpu": "not run: no GPU host was at hand in this session (the `tiny` imagenet search and a "
               "`paper`-preset child on a GPU are still to be measured).",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "scaling.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
