"""`mnas predictor fit|predict`: thin wrappers over predictor.*.

`fit --data CSV` fits on external measurements (the Pixel 2 FBNet data); device-based fitting
(`--device`, sampling and measuring what the store lacks) plugs into `_fit` as another source.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnas_jax.cli.errors import UserError
from mnas_jax.cli.output import print_json, print_table

log = logging.getLogger(__name__)

METRIC_COLUMNS = (("within_5", "+-5%", "{:.1%}"), ("within_10", "+-10%", "{:.1%}"),
                  ("kendall_tau", "tau", "{:.3f}"), ("spearman", "rho", "{:.3f}"),
                  ("rmse", "RMSE", "{:.3g}"), ("rmspe", "RMSPE %", "{:.2f}"),
                  ("bias_pct", "bias %", "{:+.2f}"))
REPORT_NAME = "report.json"
PLOT_NAME = "predicted_vs_measured.png"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predictor", help="fit, inspect and use latency predictors")
    ps = p.add_subparsers(dest="predictor_command", metavar="ACTION")
    ps.required = True
    add_fit_parser(ps)
    add_predict_parser(ps)


def add_fit_parser(ps: argparse._SubParsersAction) -> argparse.ArgumentParser:
    f = ps.add_parser("fit", help="fit a predictor and report its error beside baselines")
    f.add_argument("--data", type=Path, help="external measurements CSV (e.g. "
                   "data/fbnet-phones/pixel2.csv)")
    f.add_argument("--space", required=True, help="search space of the architectures (fbnet)")
    f.add_argument("--train-size", type=int, default=1000, help="training archs (default 1000)")
    f.add_argument("--test-size", type=int, default=None,
                   help="held-out archs (default: min(1000, the rest))")
    f.add_argument("--seed", type=int, default=0, help="seed of the split and the boosters")
    f.add_argument("-o", "--output", type=Path, default=None,
                   help="predictor directory (default predictors/<device>-<space>)")
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    f.set_defaults(func=_fit)
    return f


def add_predict_parser(ps: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = ps.add_parser("predict", help="predicted latency of architectures")
    p.add_argument("arch", nargs="+", metavar="ARCH",
                   help="reference name, spec string, JSON file, or (fbnet) the 22 op names "
                        "in one quoted argument")
    p.add_argument("--model", required=True, type=Path, help="predictor directory")
    p.add_argument("--json", action="store_true", help="one JSON object per architecture")
    p.set_defaults(func=_predict)
    return p


# -- fit ------------------------------------------------------------------------------------------
def _fit(args: argparse.Namespace) -> int:
    if args.data is None:
        raise UserError("pass --data CSV (external measurements); fitting from a device "
                        "is not available in this build")
    return _fit_external(args)


def _fit_external(args: argparse.Namespace) -> int:
    from predictor.external import fit_and_evaluate, load_fbnet_csv
    from predictor.io import save_predictor
    from predictor.metrics import plot_predicted_vs_measured

    data = load_fbnet_csv(args.data, args.space)
    if not 3 <= args.train_size < len(data):
        raise UserError(f"--train-size {args.train_size} must be in [3, {len(data) - 1}] "
                        f"for the {len(data)} archs of {args.data}")
    ev = fit_and_evaluate(data, args.train_size, args.seed, test_size=args.test_size)
    out = args.output or Path("predictors") / f"{data.device}-{data.space}"
    save_predictor(ev.predictor, out)
    report = dict(ev.report, predictor_dir=str(out), data=str(args.data))
    (out / REPORT_NAME).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    series = {k: (ev.test_pred[k], ev.test_ms) for k in ("predictor", "onehot_ridge",
                                                         "macs_linear") if k in ev.test_pred}
    plot_predicted_vs_measured(str(out / PLOT_NAME), series, unit="ms",
                               title=f"{data.device} ({data.space}): {report['train_size']} "
                                     f"train, {report['test_size']} test, seed {args.seed}")
    if args.json:
        print_json(report)
        return 0
    print_metrics_table(f"{data.device} {data.space}: {report['train_size']} train / "
                        f"{report['test_size']} held-out archs (seed {args.seed})",
                        report["methods"])
    print(f"predictor: {out}  report: {out / REPORT_NAME}  plot: {out / PLOT_NAME}")
    return 0


def print_metrics_table(title: str, methods: dict[str, dict[str, Any]]) -> None:
    rows = [[name] + [fmt.format(m[key]) for key, _, fmt in METRIC_COLUMNS]
            for name, m in methods.items()]
    print_table(title, ["method"] + [label for _, label, _ in METRIC_COLUMNS], rows)


# -- predict --------------------------------------------------------------------------------------
def _arch_inputs(texts: Sequence[str], space_name: str, setting: str) -> list[Any]:
    """ArchSpecs or (FBNet) op-name token rows, in the order given."""
    from mnas_jax.space import get_space, parse_arch

    space = get_space(space_name, setting)
    out: list[Any] = []
    for text in texts:
        if space_name == "fbnet" and len(text.split()) == len(space.choices):
            out.append(space.decode(space.parse_ops(text)))
        else:
            out.append(parse_arch(text, setting if space_name == "mnasnet" else "imagenet"))
    return out


def _predict(args: argparse.Namespace) -> int:
    from predictor.io import load_predictor

    pred = load_predictor(args.model)
    specs = _arch_inputs(args.arch, pred.space, pred.setting)
    value, unc = pred.predict(specs)
    rows = []
    for spec, v, u in zip(specs, np.atleast_1d(value), np.atleast_1d(unc)):
        ms = pred.unit == "ms"
        rows.append({"arch_id": spec.arch_id, "unit": pred.unit,
                     "predicted_ms": float(v) if ms else None,
                     "predicted_relative": None if ms else float(v),
                     "uncertainty_ms": float(u) if ms else None,
                     "uncertainty_relative": None if ms else float(u),
                     "lut_ms": None})
    if args.json:
        for r in rows:
            print_json(r)
        return 0
    key = "ms" if pred.unit == "ms" else "relative"
    print_table(f"predicted latency ({pred.space}/{pred.setting}, {args.model})",
                ("arch_id", f"predicted ({key})", "+-1 sd"),
                [(r["arch_id"], f"{r['predicted_' + key]:.4g}",
                  f"{r['uncertainty_' + key]:.2g}") for r in rows])
    return 0
