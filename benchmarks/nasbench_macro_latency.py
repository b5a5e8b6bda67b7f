"""NAS-Bench-Macro's latency on a LiteRT device: the `<device>_ms` column of the shipped table.

Chain (every measurement goes to the SQLite store of --workdir, so a rerun measures nothing twice):
the space's lookup table (2 passes) -> the project's predictor fitted on --n-fit measured
architectures (interleaved with the cifar10 MobileNetV2 reference) -> validated on --n-validate
FRESH architectures, each measured twice (the second pass gives the label noise floor: how well
one measurement predicts another of the same architecture) -> every one of the 6,561 networks
predicted (relative to the reference, times the reference's median ms on the device) -> the
derivative `data/nas-bench-macro/nas-bench-macro_cifar10_local.csv` (+ its sidecar .json) and the
report `benchmarks/reports/nasbench_macro_latency.{md,json,png}`.

    python -m benchmarks.nasbench_macro_latency --device local:core=0 --workdir work-nbm

A run beside a training job must pin each to its own core (core=0 here, the training on 1).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "nas-bench-macro"
SOURCE = DATA / "nas-bench-macro_cifar10.json"
OUT_CSV = DATA / "nas-bench-macro_cifar10_local.csv"
REPORTS = Path(__file__).parent / "reports"
VAL_ROUNDS = 4


def diverse_specs(space: object, n: int, seed: int) -> list:
    """`n` distinct networks whose choices are drawn with per-network probabilities
    (Dirichlet(1, 1, 1)): uniform sampling almost never yields the many-identity or all-e6
    networks at the ends of the latency range, where trees cannot extrapolate (a predictor
    fitted on uniform samples put 00000000 at 3x its measured latency, 22222222 20% low)."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    while len(out) < n:
        p = rng.dirichlet(np.ones(space.choices[0]))  # type: ignore[attr-defined]
        spec = space.decode(rng.choice(len(p), size=len(space.choices), p=p))  # type: ignore[attr-defined]
        out.setdefault(spec.arch_id, spec)
    return list(out.values())


def main(argv: list[str] | None = None) -> int:
    """Measure, fit, validate, predict, write the table and the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="local:core=0", help="device spec (default: local CPU, core 0)")
    parser.add_argument("--workdir", type=Path, default=Path("work-nbm"), help="store, table, predictor")
    parser.add_argument("--n-fit", type=int, default=300, help="architectures measured to fit the predictor")
    parser.add_argument("--n-validate", type=int, default=50, help="fresh architectures measured to validate")
    parser.add_argument("--column", default="local_ms", help="name of the latency column written")
    parser.add_argument("--output", type=Path, default=OUT_CSV, help="the derivative table to write")
    args = parser.parse_args(argv)
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)
    from latency.cached import ensure_table, measure_relative, reference_ms
    from latency.session import DeviceSession
    from latency.workdir import Workdir
    from mnas_jax.files import write_atomic
    from mnas_jax.space import get_space, sample_specs
    from mnas_jax.space.nasbench_macro import code_of
    from predictor.io import save_predictor
    from predictor.metrics import mean_abs_pct, noise_floor, plot_predicted_vs_measured
    from predictor.relative_fit import evaluate_on_fresh, fit_on_device

    space = get_space("nasbench-macro", "cifar10")
    source = json.loads(SOURCE.read_text())
    started = time.time()
    with DeviceSession.open(args.device, args.workdir) as session:
        fp = session.device.fingerprint()
        table = ensure_table(session, args.workdir, space, progress=True, passes=2)
        fit_specs = diverse_specs(space, args.n_fit, 0)
        y_fit = measure_relative(session, fit_specs)
        pred = fit_on_device(fit_specs, y_fit, table, fingerprint=fp.to_dict(), space=space, seed=0,
                             table_path=Workdir.of(args.workdir).table(space.name, space.setting, fp.device_id))
        pdir = Workdir.of(args.workdir).predictors / "nasbench-macro-local"
        save_predictor(pred, pdir, table=table)
        val_specs = sample_specs(space, args.n_validate, 1, pred.train_ids)
        # validation labels as the search's device checks take them: the median of 4 interleaved
        # passes; measured twice, the two give the label noise floor
        first, second = (np.array([c.relative for c in session.measure_archs(val_specs, rounds=VAL_ROUNDS,
                                                                             progress=True).candidates])
                         for _ in range(2))
        seen = set(pred.train_ids) | {s.arch_id for s in val_specs}
        edge_specs = [s for s in diverse_specs(space, 3 * args.n_validate, 2) if s.arch_id not in seen][:args.n_validate]
        edge = measure_relative(session, edge_specs)
        ref_ms = reference_ms(session, "cifar10", last=200)
    rep = evaluate_on_fresh(pred, val_specs, first)
    edge_rep = evaluate_on_fresh(pred, edge_specs, edge)["methods"]["predictor"]
    edge_rep["mean_abs_pct"] = mean_abs_pct(pred.predict(edge_specs)[0], edge)
    floor = noise_floor(first, second)  # one pass predicting the other
    floor["mean_abs_pct"] = mean_abs_pct(second, first)
    for name, m in rep["methods"].items():
        m["mean_abs_pct"] = mean_abs_pct(rep["predictions"][name], first)
    codes = sorted(source)
    all_specs = [space.decode([int(c) for c in code]) for code in codes]
    rel, _ = pred.predict(all_specs)
    ms = np.asarray(rel, float) * ref_ms
    measured_ms = {s.arch_id: float(v) * ref_ms for s, v in zip(val_specs, first)}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["tokens", "name", "acc_seed0", "acc_seed1", "acc_seed2", "mean_acc", "params", "flops",
                args.column])
    for code, spec, v in zip(codes, all_specs, ms):
        e = source[code]
        w.writerow([" ".join(code), code, *[f"{a / 100:.6f}" for a in e["test_acc"]], f"{e['mean_acc'] / 100:.6f}",
                    e["params"], e["flops"], f"{v:.5f}"])
    write_atomic(args.output, buf.getvalue())
    methods = rep["methods"]
    how = (f"predicted by the project's XGBoost latency predictor (lookup table of {len(table.entries_ms)} layers, "
           f"2 passes; fitted on {args.n_fit} architectures measured on device {fp.device_id}: "
           f"{fp.to_dict().get('cpu', '')} {fp.to_dict().get('runtime', '')}, single thread) as a multiple of "
           f"the cifar10 MobileNetV2 measured beside every candidate, times its median {ref_ms:.4f} ms; "
           f"validated on {args.n_validate} fresh uniform architectures: +-5% {methods['predictor']['within_5']:.3f}, "
           f"+-10% {methods['predictor']['within_10']:.3f}, Kendall tau {methods['predictor']['kendall_tau']:.3f} "
           f"(noise floor, pass vs pass: +-5% {floor['within_5']:.3f}, +-10% {floor['within_10']:.3f}, tau "
           f"{floor['kendall_tau']:.3f}); {time.strftime('%Y-%m-%d')}; benchmarks/nasbench_macro_latency.py")
    sidecar = {"choices": list(space.choices), "decision_names": list(space.decision_names),
               "space": space.name, "setting": space.setting,
               "accuracy_columns": ["acc_seed0", "acc_seed1", "acc_seed2"],
               "latency_columns": {args.column: how},
               "source": "NAS-Bench-Macro (Su et al., Prioritized Architecture Sampling with Monte-Carlo "
                         "Tree Search, CVPR 2021), github.com/xiusu/NAS-Bench-Macro, Apache-2.0: test_acc "
                         "(CIFAR-10, 3 seeds, %) divided by 100, params and flops as published"}
    write_atomic(args.output.with_suffix(".json"), json.dumps(sidecar, indent=1) + "\n")
    out = {"device": fp.to_dict(), "reference_ms": ref_ms, "n_fit": args.n_fit, "n_validate": args.n_validate,
           "table_layers": len(table.entries_ms), "validation": methods, "noise_floor": floor,
           "validation_diverse": edge_rep,
           "measured_ms_of_validation": measured_ms, "seconds": time.time() - started,
           "column": args.column, "output": str(args.output.relative_to(ROOT)) if args.output.is_relative_to(ROOT)
           else str(args.output)}
    REPORTS.mkdir(parents=True, exist_ok=True)
    write_atomic(REPORTS / "nasbench_macro_latency.json", json.dumps(out, indent=1) + "\n")
    series = {k: (np.array(rep["predictions"][k]), np.array(rep["measured"]))
              for k in ("predictor", "table_scale", "macs_linear") if k in rep["predictions"]}
    series["second pass (noise floor)"] = (np.asarray(second), np.asarray(first))
    plot_predicted_vs_measured(str(REPORTS / "nasbench_macro_latency.png"), series, unit="x mobilenetv2 (cifar10)",
                               title=f"NAS-Bench-Macro: {args.n_validate} fresh archs on {fp.device_id}")
    lines = ["# NAS-Bench-Macro latency on this machine's LiteRT device", "",
             f"Device {fp.device_id} ({args.device}), reference MobileNetV2 (cifar10 setting) median "
             f"{ref_ms:.4f} ms. Lookup table {len(table.entries_ms)} layers (2 passes); predictor fitted on "
             f"{args.n_fit} measured architectures (choices drawn with per-network Dirichlet(1,1,1) probabilities, "
             f"so that both ends of the latency range are in it); validated on {args.n_validate} fresh uniformly "
             f"sampled ones, each measured twice, each time the median of {VAL_ROUNDS} interleaved passes with the reference (what the "
             "search's device checks take); the second measurement against the first is the label noise floor.", "", "| method | +-5% | +-10% | Kendall tau | mean abs % |", "|---|---|---|---|---|"]
    for name, m in list(methods.items()) + [("predictor, on diverse fresh archs (ends of the range)", edge_rep),
                                            ("noise floor (measurement vs measurement)", floor)]:
        lines.append(f"| {name} | {m['within_5']:.3f} | {m['within_10']:.3f} | {m['kendall_tau']:.3f} | "
                     f"{m['mean_abs_pct']:.2f} |")
    lines += ["", f"Wrote `{out['output']}`: column `{args.column}` for all {len(codes)} networks (predicted, "
              "also for the measured ones, so that the column is one method throughout). Latency range "
              f"{ms.min():.3f}-{ms.max():.3f} ms, median {np.median(ms):.3f} ms.", "",
              f"Plot: nasbench_macro_latency.png. {out['seconds']:.0f} s. Reproduce: "
              "`python -m benchmarks.nasbench_macro_latency --device local:core=0 --workdir work-nbm`."]
    write_atomic(REPORTS / "nasbench_macro_latency.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"{code_of(space.encode(all_specs[0]))}: {ms[0]:.4f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
