"""Is our Flax -> TFLite export as fast as Keras' own MobileNetV2?

Converts the Flax MobileNetV2 (imagenet setting, random non-zero weights) with `latency.export`
and `tf.keras.applications.MobileNetV2(weights=None)` through the same converter call
(`latency.export.convert_tf_function`), loads both in the LiteRT interpreter (XNNPACK, 1 thread)
and times them interleaved in one process pinned to one core: each round times a block of
invokes of one model then of the other, alternating which goes first (ABBA...), so machine drift
hits both alike. Prints the ratio flax/keras of the medians and both op lists, and appends the
run to benchmarks/reports/export_vs_keras.json (+ a markdown summary of all runs).

    python benchmarks/export_vs_keras.py [--rounds 40] [--runs 10] [--core 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPORTS = Path(__file__).resolve().parent / "reports"
STEM = "export_vs_keras"
TARGET_RATIO = 1.03


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40, help="interleaved rounds (default 40)")
    p.add_argument("--runs", type=int, default=10, help="invokes per model per round (default 10)")
    p.add_argument("--warmup", type=int, default=20, help="untimed invokes per model first")
    p.add_argument("--core", type=int, default=None,
                   help="CPU core to pin to (default: the highest allowed core)")
    p.add_argument("--reports", type=Path, default=REPORTS, help="report directory")
    return p.parse_args(argv)


def keras_mobilenetv2_bytes(tf, convert) -> bytes:
    model = tf.keras.applications.MobileNetV2(weights=None)

    @tf.function(input_signature=[tf.TensorSpec((1, 224, 224, 3), tf.float32, name="input")],
                 autograph=False)
    def forward(x):
        return model(x, training=False)

    return convert(tf, forward)


def interpreter(model_bytes: bytes, x: np.ndarray):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes, num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    return it


def time_block(it, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        it.invoke()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    q25, q50, q75 = np.percentile(a, [25, 50, 75])
    return {"median_ms": float(q50), "min_ms": float(a.min()), "iqr_ms": float(q75 - q25),
            "cv": float(a.std() / a.mean()), "runs": int(a.size)}


def measure(its: dict[str, object], rounds: int, runs: int, warmup: int) -> dict[str, object]:
    for it in its.values():
        time_block(it, warmup)
    names = list(its)
    times = {n: [] for n in names}
    round_ratios = []
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        medians = {}
        for n in order:
            block = time_block(its[n], runs)
            times[n] += block
            medians[n] = float(np.median(block))
        round_ratios.append(medians["flax"] / medians["keras"])
    per = {n: stats(t) for n, t in times.items()}
    return {"per_model": per,
            "ratio_median": per["flax"]["median_ms"] / per["keras"]["median_ms"],
            "ratio_min": per["flax"]["min_ms"] / per["keras"]["min_ms"],
            "ratio_of_round_medians": float(np.median(round_ratios)),
            "round_ratio_p10_p90": [float(v) for v in np.percentile(round_ratios, [10, 90])]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def write_reports(run: dict, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{STEM}.json", directory / f"{STEM}.md"
    runs = json.loads(json_path.read_text())["runs"] if json_path.is_file() else []
    runs.append(run)
    json_path.write_text(json.dumps({"target_ratio": TARGET_RATIO, "runs": runs}, indent=1) + "\n")
    lines = [
        "# Flax MobileNetV2 export vs Keras MobileNetV2 (LiteRT, XNNPACK, 1 thread)", "",
        "Same converter call, same interpreter, one process pinned to one core, interleaved "
        "blocks (ABBA). Ratio = flax median / keras median; target <= "
        f"{TARGET_RATIO}.", "",
        "| when (UTC) | core | load avg before/after | flax median ms | keras median ms | "
        "ratio (medians) | ratio (mins) | median of per-round ratios | rounds x runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        f, k = r["result"]["per_model"]["flax"], r["result"]["per_model"]["keras"]
        lines.append(
            f"| {r['when'][:19]} | {r['core']} | {r['loadavg_before'][0]:.2f} / "
            f"{r['loadavg_after'][0]:.2f} | {f['median_ms']:.3f} | {k['median_ms']:.3f} | "
            f"{r['result']['ratio_median']:.3f} | {r['result']['ratio_min']:.3f} | "
            f"{r['result']['ratio_of_round_medians']:.3f} | {r['rounds']} x {r['runs']} |")
    last = runs[-1]
    lines += ["", f"Conditions of the last run: {last['cpu_model']}, "
              + ", ".join(f"{n} {v}" for n, v in last["versions"].items())
              + f"; other processes shared the machine (load averages above).", "",
              "## Op lists (last run)", "", "| op | flax | keras |", "|---|---|---|"]
    ops = sorted(set(last["ops"]["flax"]) | set(last["ops"]["keras"]))
    lines += [f"| {op} | {last['ops']['flax'].get(op, 0)} | {last['ops']['keras'].get(op, 0)} |"
              for op in ops]
    lines += ["", f"Model sizes: flax {last['bytes']['flax']:,} B, "
              f"keras {last['bytes']['keras']:,} B."]
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)  # XLA:CPU flags and the project's compilation cache, before JAX starts
    args = parse_args(argv)
    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # before TensorFlow starts its threads: they inherit it
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    from latency.export import Exporter, convert_tf_function, import_tensorflow
    from latency.oplist import op_counts
    from mnas_jax.space import reference

    load_before = os.getloadavg()
    tf, _ = import_tensorflow()
    t0 = time.perf_counter()
    flax_bytes = Exporter().export(reference("mobilenetv2", "imagenet"), seed=0)
    t1 = time.perf_counter()
    keras_bytes = keras_mobilenetv2_bytes(tf, convert_tf_function)
    t2 = time.perf_counter()

    x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    its = {"flax": interpreter(flax_bytes, x), "keras": interpreter(keras_bytes, x)}
    result = measure(its, args.rounds, args.runs, args.warmup)
    run = {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "core": core, "rounds": args.rounds, "runs": args.runs, "warmup": args.warmup,
        "threads": 1, "delegate": "xnnpack (interpreter default)",
        "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
        "cpu_model": cpu_model(),
        "versions": {n: metadata.version(n) for n in ("jax", "flax", "tensorflow-cpu", "keras",
                                                      "ai-edge-litert")},
        "convert_s": {"flax": t1 - t0, "keras": t2 - t1},
        "bytes": {"flax": len(flax_bytes), "keras": len(keras_bytes)},
        "ops": {"flax": op_counts(flax_bytes), "keras": op_counts(keras_bytes)},
        "result": result,
    }
    json_path, md_path = write_reports(run, args.reports)

    for name in ("flax", "keras"):
        s = result["per_model"][name]
        print(f"{name:6s} median {s['median_ms']:.3f} ms  min {s['min_ms']:.3f}  "
              f"IQR {s['iqr_ms']:.3f}  CV {s['cv']:.3f}  runs {s['runs']}")
    print(f"ratio flax/keras: medians {result['ratio_median']:.3f}  mins {result['ratio_min']:.3f}"
          f"  median of per-round ratios {result['ratio_of_round_medians']:.3f}"
          f"  (target <= {TARGET_RATIO})")
    for name in ("flax", "keras"):
        print(f"{name} ops: " + ", ".join(f"{op} x{n}" for op, n in run["ops"][name].items()))
    print(f"core {core}, load average {load_before[0]:.2f} -> {run['loadavg_after'][0]:.2f}; "
          f"reports: {json_path}, {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
