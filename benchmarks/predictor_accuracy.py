"""Latency-predictor accuracy benchmarks of issue 4, one function per report section.

- `pixel2`: learning curve on the public Pixel 2 measurements of the FBNet space
  (data/fbnet-phones/pixel2.csv): training sizes 10 ... 4000, several seeds, the predictor
  against a linear one-hot model (ridge) and a MACs-linear fit, all on one held-out set per seed
  (the last 1,000 archs of the seed's permutation, never used for fitting or tuning: the
  predictor picks its hyperparameters by CV inside the training rows). Also the scoring
  throughput of the fitted predictor on fresh token batches. No label noise floor here (one
  public measurement per arch); `local` and `transfer` print theirs beside the accuracy.
- `local`, `transfer`: the local device on the MnasNet imagenet setting, and a new device from
  k measurements (see benchmarks/predictor_local.py).

Usage (from the repository root):
    python -m benchmarks.predictor_accuracy --section pixel2 [--seeds 5] [--out DIR]
    python -m benchmarks.predictor_accuracy --section local,transfer [--n-train 300] [--n-test 200]
Writes <out>/pixel2.json and <out>/pixel2.png and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pathlib
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger("benchmarks.predictor_accuracy")

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "reports" / "predictor"
PIXEL2_SIZES = (10, 20, 50, 100, 500, 1000, 4000)
CURVE_METHODS = ("predictor", "onehot_ridge", "macs_linear")
PIXEL2_FLOOR_NOTE = ("no label noise floor: the public data holds one measurement per arch; the "
                     "local and transfer sections measure theirs (a second pass)")
METRIC_KEYS = ("within_5", "within_10", "kendall_tau", "spearman", "rmspe", "rmse")


def _summary(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sd over seeds of every metric, per method."""
    out: dict[str, dict[str, float]] = {}
    for method in runs[0]["methods"]:
        vals = {k: [r["methods"][method][k] for r in runs] for k in METRIC_KEYS}
        out[method] = {f"{k}_mean": float(np.mean(v)) for k, v in vals.items()}
        out[method].update({f"{k}_sd": float(np.std(v)) for k, v in vals.items()})
        if method == "predictor":
            out[method]["coverage_1sd_mean"] = float(np.mean(
                [r["methods"][method]["coverage_1sd"] for r in runs]))
    return out


def measure_throughput(pred: Any, n: int = 10_000, repeats: int = 3, seed: int = 123,
                       table: Any = None) -> dict[str, float]:
    """Archs/s of `pred.predict` on fresh token batches (cold: new featurizer caches); `table`
    is the per-layer table the predictor was fitted with, if any."""
    from mnas_jax.space import sample_tokens
    from predictor.features import make_featurizer

    space = pred.featurizer.space
    fresh = dataclasses.replace(pred, featurizer=make_featurizer(space.name, space.setting, table))
    tokens = sample_tokens(space.choices, seed, n)
    t0 = time.perf_counter()
    fresh.predict(tokens)
    cold = time.perf_counter() - t0
    warm, feats = [], []
    for r in range(repeats):
        batch = sample_tokens(space.choices, seed + 1 + r, n)
        t0 = time.perf_counter()
        fresh.featurizer.from_tokens(batch)
        feats.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fresh.predict(batch)
        warm.append(time.perf_counter() - t0)
    specs = [space.decode(row) for row in tokens[:200]]
    t0 = time.perf_counter()
    fresh.predict(specs)
    spec_s = time.perf_counter() - t0
    return {"batch": n, "cold_archs_per_s": n / cold,
            "warm_archs_per_s": n / float(np.median(warm)),
            "features_archs_per_s": n / float(np.median(feats)),
            "specs_archs_per_s": len(specs) / spec_s, "nthread": pred.config.nthread}


def section_pixel2(out: pathlib.Path, seeds: int, sizes: Sequence[int] = PIXEL2_SIZES,
                   data_path: pathlib.Path | None = None) -> dict[str, Any]:
    from predictor.external import default_data_dir, fit_and_evaluate, load_fbnet_csv
    from predictor.features import make_featurizer
    from predictor.metrics import plot_predicted_vs_measured

    path = data_path or default_data_dir() / "pixel2.csv"
    data = load_fbnet_csv(path)
    feat = make_featurizer(data.space, data.setting)
    runs: dict[int, list[dict[str, Any]]] = {}
    scatter = None
    for n in sizes:
        runs[n] = []
        for seed in range(seeds):
            t0 = time.perf_counter()
            ev = fit_and_evaluate(data, n, seed, featurizer=feat)
            rep = dict(ev.report, fit_seconds=time.perf_counter() - t0)
            runs[n].append(rep)
            log.info("n=%d seed=%d %.1fs predictor +-10%% %.3f tau %.3f | onehot %.3f %.3f", n,
                     seed, rep["fit_seconds"], rep["methods"]["predictor"]["within_10"],
                     rep["methods"]["predictor"]["kendall_tau"],
                     rep["methods"]["onehot_ridge"]["within_10"],
                     rep["methods"]["onehot_ridge"]["kendall_tau"])
            if n == 1000 and seed == 0:
                scatter = ev
    summary = {str(n): _summary(r) for n, r in runs.items()}
    result: dict[str, Any] = {
        "section": "pixel2", "data": str(path.relative_to(ROOT) if path.is_relative_to(ROOT)
                                          else path),
        "n_archs": len(data), "sizes": list(sizes), "seeds": seeds,
        "test_set": "last 1000 archs of each seed's permutation (fewer when train+test > 5000)",
        "summary": summary, "runs": {str(n): r for n, r in runs.items()},
        "noise_floor": None, "noise_floor_note": PIXEL2_FLOOR_NOTE,
    }
    if 1000 in runs:
        wins = [tuple(r["methods"]["predictor"][k] >= r["methods"]["onehot_ridge"][k]
                      for k in ("within_10", "kendall_tau")) for r in runs[1000]]
        s = summary["1000"]
        result["acceptance_1000"] = {
            "predictor_within_10": s["predictor"]["within_10_mean"],
            "onehot_within_10": s["onehot_ridge"]["within_10_mean"],
            "predictor_tau": s["predictor"]["kendall_tau_mean"],
            "onehot_tau": s["onehot_ridge"]["kendall_tau_mean"],
            "seeds_won_within_10": int(sum(w[0] for w in wins)),
            "seeds_won_tau": int(sum(w[1] for w in wins)), "seeds": len(wins),
            "passed": bool(s["predictor"]["within_10_mean"] >= s["onehot_ridge"]["within_10_mean"]
                           and s["predictor"]["kendall_tau_mean"]
                           >= s["onehot_ridge"]["kendall_tau_mean"]),
        }
        if scatter is not None:
            result["throughput"] = measure_throughput(scatter.predictor)
            plot_predicted_vs_measured(
                str(out / "pixel2_scatter.png"),
                {k: (scatter.test_pred[k], scatter.test_ms) for k in reversed(CURVE_METHODS)},
                title="Pixel 2 (FBNet): 1000 train, 1000 held-out, seed 0")
    _plot_curve(out / "pixel2.png", summary, sizes)
    return result


def _plot_curve(path: pathlib.Path, summary: dict[str, Any], sizes: Sequence[int]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "within_10", "share within +-10%"),
                           (axes[1], "kendall_tau", "Kendall tau")):
        for method in CURVE_METHODS:
            m = np.array([summary[str(n)][method][f"{key}_mean"] for n in sizes])
            s = np.array([summary[str(n)][method][f"{key}_sd"] for n in sizes])
            ax.errorbar(sizes, m, yerr=s, marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("training archs")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Pixel 2, FBNet space: held-out accuracy vs training size (mean +- sd over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_pixel2(result: dict[str, Any]) -> None:
    from mnas_jax.cli.output import print_table

    rows = []
    for n in result["sizes"]:
        for method in CURVE_METHODS:
            s = result["summary"][str(n)][method]
            rows.append((n, method, f"{s['within_5_mean']:.1%}",
                         f"{s['within_10_mean']:.1%} +- {s['within_10_sd']:.1%}",
                         f"{s['kendall_tau_mean']:.3f} +- {s['kendall_tau_sd']:.3f}",
                         f"{s['spearman_mean']:.3f}", f"{s['rmspe_mean']:.2f}"))
    print_table(f"Pixel 2 learning curve ({result['seeds']} seeds, held-out 1000 archs each)",
                ("train", "method", "+-5%", "+-10%", "Kendall tau", "Spearman", "RMSPE %"), rows)
    if "acceptance_1000" in result:
        a = result["acceptance_1000"]
        print(f"at 1000: predictor +-10% {a['predictor_within_10']:.1%} vs one-hot "
              f"{a['onehot_within_10']:.1%} (won {a['seeds_won_within_10']}/{a['seeds']} seeds); "
              f"tau {a['predictor_tau']:.3f} vs {a['onehot_tau']:.3f} (won {a['seeds_won_tau']}/"
              f"{a['seeds']}): {'PASS' if a['passed'] else 'FAIL'}")
    print(result.get("noise_floor_note", PIXEL2_FLOOR_NOTE))
    if "throughput" in result:
        t = result["throughput"]
        print(f"scoring {t['batch']} fresh archs: {t['warm_archs_per_s']:,.0f} archs/s warm, "
              f"{t['cold_archs_per_s']:,.0f} cold (features alone {t['features_archs_per_s']:,.0f}"
              f"/s; from ArchSpecs {t['specs_archs_per_s']:,.0f}/s; {t['nthread']} thread)")


def _run_pixel2(args: argparse.Namespace) -> dict[str, Any]:
    return section_pixel2(args.out, args.seeds, args.sizes, args.data)


def _run_local(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.predictor_local import section_local

    return section_local(args.out, args.workdir, args.n_train, args.n_test)


def _run_transfer(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.predictor_local import section_transfer

    return section_transfer(args.out, args.workdir, args.n_train, args.n_test)


def _print_local(result: dict[str, Any]) -> None:
    from benchmarks.predictor_local import print_local

    print_local(result)


def _print_transfer(result: dict[str, Any]) -> None:
    from benchmarks.predictor_local import print_transfer

    print_transfer(result)


# name -> (run from the parsed arguments, print the result)
SECTIONS: dict[str, tuple[Callable[[argparse.Namespace], dict[str, Any]],
                          Callable[[dict[str, Any]], None]]] = {
    "pixel2": (_run_pixel2, print_pixel2),
    "local": (_run_local, _print_local),
    "transfer": (_run_transfer, _print_transfer),
}


def main(argv: Sequence[str] | None = None) -> int:
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)  # XLA:CPU flags and the project's compilation cache, before JAX starts
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", required=True,
                        help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                        default=PIXEL2_SIZES, help="comma-separated training sizes (pixel2)")
    parser.add_argument("--data", type=pathlib.Path, default=None, help="Pixel 2 CSV")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--workdir", type=pathlib.Path, default=ROOT / "runs" / "predictor-bench",
                        help="store, table and cache of the local/transfer sections (resumable)")
    parser.add_argument("--n-train", type=int, default=300, help="training archs (local)")
    parser.add_argument("--n-test", type=int, default=200, help="held-out archs (local, transfer)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    unknown = [s for s in args.section.split(",") if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    for section in args.section.split(","):
        run, show = SECTIONS[section]
        result = run(args)
        (args.out / f"{section}.json").write_text(json.dumps(result, indent=1, sort_keys=True))
        show(result)
        print(f"wrote {args.out / (section + '.json')} and its plots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
