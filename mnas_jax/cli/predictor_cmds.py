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
    add_validate_parser(ps)


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
    f.add_argument("--setting", default=None, help="imagenet|fmnist (mnasnet, with --device)")
    f.add_argument("--device", default=None, help="fit on measurements of this device")
    f.add_argument("--n", type=int, default=None,
                   help="architectures to sample and measure (default 300; with "
                        "--transfer-from, k measurements on the new device)")
    f.add_argument("--workdir", default=".", help="store, tables and predictors live here")
    f.add_argument("--transfer-from", type=Path, default=None,
                   help="predictor directory of another device to transfer from")
    f.set_defaults(func=_fit)
    return f


def add_validate_parser(ps: argparse._SubParsersAction) -> argparse.ArgumentParser:
    v = ps.add_parser("validate", help="measure fresh archs on the device and report the "
                      "predictor's error beside baselines (table + PNG + JSON)")
    v.add_argument("--space", default="mnasnet")
    v.add_argument("--setting", default="imagenet")
    v.add_argument("--device", default="local")
    v.add_argument("--n", type=int, default=50)
    v.add_argument("--seed", type=int, default=1000)
    v.add_argument("--workdir", default=".")
    v.add_argument("--model", type=Path, default=None, help="predictor directory (default: the "
                   "one 'mnas predictor fit' wrote for this device)")
    v.add_argument("-o", "--output", type=Path, default=None, help="report directory")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_validate)
    return v


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
    if args.data is not None:
        return _fit_external(args)
    if args.device is None:
        raise UserError("pass --data CSV (external measurements) or --device D (measure)")
    if args.space != "mnasnet":
        raise UserError(f"device fitting needs a lookup table: use --space mnasnet, not "
                        f"{args.space!r}")
    return _fit_device(args)


def _fit_device(args: argparse.Namespace) -> int:
    from latency.session import DeviceSession
    from mnas_jax.space import get_space
    from predictor import device_fit as df
    from predictor.io import load_predictor, save_predictor

    setting = get_space(args.space, args.setting).setting
    with DeviceSession.open(args.device, args.workdir) as session:
        fp = session.device.fingerprint()
        if args.transfer_from is not None:
            base = load_predictor(args.transfer_from, space=args.space, setting=setting,
                                  allow_mismatch=True)
            k = args.n or 20
            specs = df.sample_specs(args.space, setting, k, args.seed + 77)
            y = df.measure_relative(session, specs, progress=not args.json)
            tp = df.TransferPredictor.fit(base, specs, y, fp.to_dict())
            out = args.output or df.predictor_dir(args.workdir, args.space, setting,
                                                  fp.device_id).with_name(
                f"{args.space}-{setting}-{fp.device_id}-transfer")
            tp.save(out, args.transfer_from)
            info = {"predictor_dir": str(out), "k": k, "coef": tp.coef, "device": fp.device_id}
            print_json(info) if args.json else print(
                f"transfer predictor from {args.transfer_from} with k={k}: {out}")
            return 0
        table = df.ensure_table(session, args.workdir, args.space, setting,
                                progress=not args.json)
        specs = df.sample_specs(args.space, setting, args.n or 300, args.seed)
        y = df.measure_relative(session, specs, progress=not args.json)
        pred = df.fit_on_device(specs, y, table, fingerprint=fp.to_dict(), seed=args.seed)
    out = args.output or df.predictor_dir(args.workdir, args.space, setting, fp.device_id)
    save_predictor(pred, out)
    info = {"predictor_dir": str(out), "n_train": len(specs), "device": fp.device_id,
            "unit": "relative", "target": str(pred.choice)}
    print_json(info) if args.json else print(f"predictor on {len(specs)} measured archs "
                                             f"({fp.device_id}): {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from latency.session import DeviceSession
    from mnas_jax.space import get_space
    from predictor import device_fit as df
    from predictor.io import load_predictor
    from predictor.metrics import plot_predicted_vs_measured

    setting = get_space(args.space, args.setting).setting
    with DeviceSession.open(args.device, args.workdir) as session:
        fp = session.device.fingerprint()
        table = df.ensure_table(session, args.workdir, args.space, setting, not args.json)
        model = args.model or df.predictor_dir(args.workdir, args.space, setting, fp.device_id)
        if not model.exists():
            raise UserError(f"no predictor at {model}; fit one first: mnas predictor fit "
                            f"--space {args.space} --setting {setting} --device {args.device}")
        pred = load_predictor(model, space=args.space, setting=setting, device_id=fp.device_id,
                              table=table.entries_relative)
        specs = df.sample_specs(args.space, setting, args.n, args.seed, set(pred.train_ids))
        y = df.measure_relative(session, specs, fresh=True, progress=not args.json)
    rep = df.evaluate(pred, specs, y)
    out = args.output or Path(args.workdir) / "reports" / f"validate-{fp.device_id}-{setting}"
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_NAME).write_text(json.dumps(rep, indent=1) + "\n")
    series = {k: (np.array(rep["predictions"][k]), np.array(rep["measured"]))
              for k in ("predictor", "table_scale", "macs_linear") if k in rep["predictions"]}
    plot_predicted_vs_measured(str(out / PLOT_NAME), series, unit="x reference",
                               title=f"{args.n} fresh archs on {fp.device_id} ({setting})")
    if args.json:
        print_json({k: v for k, v in rep.items() if k not in ("predictions",)})
        return 0
    print_metrics_table(f"{rep['n_test']} fresh archs measured now on {fp.device_id}; "
                        f"predictor trained on {rep['n_train']}", rep["methods"])
    print(f"report: {out / REPORT_NAME}  plot: {out / PLOT_NAME}")
    return 0


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
