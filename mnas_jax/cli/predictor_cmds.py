"""`mnas predictor fit|validate|predict`: parse, call predictor.device (or predictor.external),
print.

`fit --data CSV` fits on external measurements (the Pixel 2 FBNet data); `fit --device D`
samples and measures what the store lacks on the device (building its lookup table first);
`fit --device D --transfer-from DIR` measures k archs on device D and transfers device A's
predictor in DIR (predictor.transfer). Every kind is loaded with `predictor.io` by `predict`,
`validate` and `mnas search --predictor`, and used through one interface (predictor.kinds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from mnas_jax.cli.errors import UserError
from mnas_jax.cli.output import print_json, print_table
from mnas_jax.cli.rounds import add_rounds_option, checked_rounds
from mnas_jax.files import write_atomic

METRIC_COLUMNS = (("within_5", "+-5%", "{:.1%}"), ("within_10", "+-10%", "{:.1%}"),
                  ("kendall_tau", "tau", "{:.3f}"), ("spearman", "rho", "{:.3f}"),
                  ("rmse", "RMSE", "{:.3g}"), ("rmspe", "RMSPE %", "{:.2f}"),
                  ("bias_pct", "bias %", "{:+.2f}"))
FLOOR_ROW = "noise floor"


def register(sub: argparse._SubParsersAction) -> None:
    """Add `mnas predictor` (fit, validate, predict, transfer) to the CLI."""
    p = sub.add_parser("predictor", help="fit, inspect and use latency predictors")
    ps = p.add_subparsers(dest="predictor_command", metavar="ACTION")
    ps.required = True
    add_fit_parser(ps)
    add_predict_parser(ps)
    add_validate_parser(ps)


SPACE_HELP = ("mnasnet (or a slice of it, e.g. mnasnet@op=2,kernel=0,se=0,skip=1,filters=1: "
              "see 'mnas space describe') or, with --data, fbnet")


def add_fit_parser(ps: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `predictor fit` subcommand and its options."""
    f = ps.add_parser("fit", help="fit a predictor and report its error beside baselines")
    f.add_argument("--data", type=Path, help="external measurements CSV (e.g. "
                   "data/fbnet-phones/pixel2.csv)")
    f.add_argument("--space", required=True, help=SPACE_HELP)
    f.add_argument("--train-size", type=int, default=1000,
                   help="training archs of --data (default 1000)")
    f.add_argument("--test-size", type=int, default=None,
                   help="held-out archs of --data (default: min(1000, the rest))")
    f.add_argument("--seed", type=int, default=0, help="seed of the samples, split and boosters")
    f.add_argument("-o", "--output", type=Path, default=None,
                   help="predictor directory (default: predictors/<device>-<space> with --data, "
                        "WORKDIR/predictors/<space>-<setting>-<device id> with --device)")
    f.add_argument("--json", action="store_true", help="print the result as one JSON line")
    f.add_argument("--quiet", action="store_true", help="no progress bars (they go to stderr)")
    f.add_argument("--setting", default=None, help="imagenet (default) or fmnist (with --device)")
    f.add_argument("--device", default=None, help="fit on measurements of this device "
                   "(local[:opts], adb:SERIAL[,opts], http://HOST:PORT)")
    f.add_argument("--n", type=int, default=None,
                   help="architectures to sample and measure (default 300; with "
                        "--transfer-from, k measurements on the new device, default 20)")
    f.add_argument("--workdir", default=".", help="store, tables and predictors live here")
    f.add_argument("--transfer-from", type=Path, default=None,
                   help="predictor directory of another device to transfer from (with --device)")
    add_rounds_option(f)
    f.set_defaults(func=_fit)
    return f


def add_validate_parser(ps: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `predictor validate` subcommand and its options."""
    v = ps.add_parser("validate", help="measure fresh archs on the device and report the "
                      "predictor's error beside baselines (table + PNG + JSON)")
    v.add_argument("--space", default=None,
                   help="space of the default predictor (default mnasnet; with --model: its own)")
    v.add_argument("--setting", default=None,
                   help="setting of the default predictor (default imagenet; with --model: its "
                        "own)")
    v.add_argument("--device", default="local", help="device to measure on (default local)")
    v.add_argument("--n", type=int, default=50, help="fresh architectures to measure (default 50)")
    v.add_argument("--seed", type=int, default=1000, help="seed of the fresh samples")
    v.add_argument("--floor-n", type=int, default=None,
                   help="archs (the first of the --n) measured a second time for the label "
                        "noise floor printed beside the accuracy (default: all --n, which "
                        "doubles the measuring time: 4 interleaved rounds, ~3 s per MnasNet-224 "
                        "arch on a quiet core, ~14 s on a shared one; 0: no floor)")
    v.add_argument("--workdir", default=".", help="store, tables and predictors live here")
    v.add_argument("--model", type=Path, default=None, help="predictor directory (default: the "
                   "one 'mnas predictor fit' wrote for this device)")
    v.add_argument("-o", "--output", type=Path, default=None,
                   help="report directory (default WORKDIR/reports/validate-<device>-<setting>)")
    v.add_argument("--json", action="store_true", help="print the report as one JSON line")
    v.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr)")
    add_rounds_option(v)
    v.set_defaults(func=_validate)
    return v


def add_predict_parser(ps: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `predictor predict` subcommand and its options."""
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
    from mnas_jax.space import get_space

    if get_space(args.space, args.setting).reference_name is None:
        raise UserError(f"device fitting needs a lookup table and a reference model on the "
                        f"device: use --space mnasnet (or a slice mnasnet@...), not {args.space!r}")
    if args.n is not None and args.n < (2 if args.transfer_from else 3):
        raise UserError(f"--n {args.n}: measure at least {2 if args.transfer_from else 3} "
                        "architectures")
    if args.transfer_from is not None:
        return _fit_transfer(args)
    return _fit_device(args)


def _fit_device(args: argparse.Namespace) -> int:
    from latency.cached import ensure_table
    from latency.session import DeviceSession
    from latency.workdir import Workdir
    from mnas_jax.space import get_space, sample_specs
    from predictor.device import fit_device

    space = get_space(args.space, args.setting)
    workdir = Workdir.of(args.workdir)
    specs = sample_specs(space, args.n or 300, args.seed)
    with DeviceSession.open(args.device, workdir, rounds=checked_rounds(args)) as session:
        fp = session.device.fingerprint()
        table = ensure_table(session, workdir, space, progress=not args.quiet)
        out = args.output or workdir.device_predictor(space.name, space.setting, fp.device_id)
        pred = fit_device(session, workdir, space, specs, out, table=table, seed=args.seed,
                          progress=not args.quiet)
    info = {"predictor_dir": str(out), "n_train": len(specs), "device": fp.device_id,
            "space": space.name, "setting": space.setting, "unit": "relative",
            "target": pred.choice.target}
    print_json(info) if args.json else print(f"predictor on {len(specs)} measured archs "
                                             f"({fp.device_id}): {out}")
    return 0


def _fit_transfer(args: argparse.Namespace) -> int:
    from latency.session import DeviceSession
    from latency.workdir import Workdir
    from mnas_jax.space import get_space
    from predictor.device import transfer_device, transfer_specs
    from predictor.io import read_predictor_dir

    space = get_space(args.space, args.setting)
    workdir = Workdir.of(args.workdir)
    base = read_predictor_dir(args.transfer_from, space=space.name, setting=space.setting)
    k = args.n or 20
    specs = transfer_specs(space, k, args.seed)
    with DeviceSession.open(args.device, workdir, rounds=checked_rounds(args)) as session:
        fp = session.device.fingerprint()
        out = args.output or workdir.device_predictor(space.name, space.setting, fp.device_id)
        tp = transfer_device(session, base, args.transfer_from, specs, out,
                             progress=not args.quiet)
    info = {"predictor_dir": str(out), "k": k, "coef": tp.coef, "device": fp.device_id,
            "base": str(args.transfer_from), "base_device": base.predictor.device_id,
            "space": space.name, "setting": space.setting, "unit": "relative"}
    print_json(info) if args.json else print(
        f"transfer predictor from {args.transfer_from} with k={k} archs measured on "
        f"{fp.device_id}: {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from latency.session import DeviceSession
    from latency.workdir import Workdir
    from mnas_jax.space import get_space
    from predictor.device import validate_device
    from predictor.io import read_metadata

    if args.n < 1:
        raise UserError(f"--n {args.n}: validate on at least 1 fresh architecture")
    if args.floor_n is not None and args.floor_n < 0:
        raise UserError(f"--floor-n {args.floor_n}: use 0 (no noise floor) or more")
    if args.model is not None:  # the predictor's own space and setting unless given
        meta = read_metadata(args.model)
        space = get_space(args.space or meta["space"], args.setting or meta["setting"])
    else:
        space = get_space(args.space or "mnasnet", args.setting or "imagenet")
    setting = space.setting
    workdir = Workdir.of(args.workdir)
    with DeviceSession.open(args.device, workdir, rounds=checked_rounds(args)) as session:
        fp = session.device.fingerprint()
        model = args.model or workdir.device_predictor(space.name, setting, fp.device_id)
        if not model.exists():
            raise UserError(f"no predictor at {model}; fit one first: mnas predictor fit "
                            f"--space {space.name} --setting {setting} --device {args.device}")
        out = args.output or workdir.validate_report(fp.device_id, setting)
        rep = validate_device(session, model, space, args.n, args.seed, out,
                              floor_n=args.floor_n, progress=not args.quiet)
    if args.json:
        print_json({k: v for k, v in rep.items() if k not in ("predictions",)})
        return 0
    floor = rep.get("noise_floor")
    methods = dict(rep["methods"])
    if floor is not None:
        methods[FLOOR_ROW] = floor
    print_metrics_table(f"{rep['n_test']} fresh archs measured now on {fp.device_id}; "
                        f"predictor trained on {rep['n_train']}", methods)
    if floor is not None:
        print(f"{FLOOR_ROW}: the same {floor['n']} archs measured twice, pass 2 scored against "
              "pass 1 (what the labels allow: a predictor near it is limited by the "
              "measurements)")
    print(f"report: {rep['report']}  plot: {rep['plot']}")
    return 0


def _fit_external(args: argparse.Namespace) -> int:
    from latency.workdir import Workdir
    from predictor.device import PLOT_NAME, REPORT_NAME
    from predictor.external import fit_and_evaluate, load_fbnet_csv
    from predictor.io import save_predictor
    from predictor.metrics import plot_predicted_vs_measured

    data = load_fbnet_csv(args.data, args.space)
    if not 3 <= args.train_size < len(data):
        raise UserError(f"--train-size {args.train_size} must be in [3, {len(data) - 1}] "
                        f"for the {len(data)} archs of {args.data}")
    ev = fit_and_evaluate(data, args.train_size, args.seed, test_size=args.test_size)
    out = args.output or Workdir(Path(".")).external_predictor(data.device, data.space)
    report = dict(ev.report, predictor_dir=str(out), data=str(args.data))
    series = {k: (ev.test_pred[k], ev.test_ms) for k in ("predictor", "onehot_ridge",
                                                         "macs_linear") if k in ev.test_pred}

    def report_and_plot(tmp: Path) -> None:  # inside the directory's swap, beside the predictor
        write_atomic(tmp / REPORT_NAME, json.dumps(report, indent=1, sort_keys=True) + "\n")
        plot_predicted_vs_measured(str(tmp / PLOT_NAME), series, unit="ms",
                                   title=f"{data.device} ({data.space}): {report['train_size']} "
                                         f"train, {report['test_size']} test, seed {args.seed}")

    save_predictor(ev.predictor, out, extra=report_and_plot)
    if args.json:
        print_json(report)
        return 0
    print_metrics_table(f"{data.device} {data.space}: {report['train_size']} train / "
                        f"{report['test_size']} held-out archs (seed {args.seed})",
                        report["methods"])
    print(f"predictor: {out}  report: {out / REPORT_NAME}  plot: {out / PLOT_NAME}")
    return 0


def print_metrics_table(title: str, methods: dict[str, dict[str, Any]]) -> None:
    """Print one row of error metrics per method (predictor and baselines)."""
    rows = [[name] + [fmt.format(m[key]) for key, _, fmt in METRIC_COLUMNS]
            for name, m in methods.items()]
    print_table(title, ["method"] + [label for _, label, _ in METRIC_COLUMNS], rows)


# -- predict --------------------------------------------------------------------------------------
def _arch_inputs(texts: Sequence[str], space_name: str, setting: str) -> list[Any]:
    """ArchSpecs as the predictor's space reads them (reference names, spec strings, JSON
    files, the space's own text form), in the order given."""
    from mnas_jax.space import get_space

    space = get_space(space_name, setting)
    return [space.parse(text) for text in texts]


def _predict(args: argparse.Namespace) -> int:
    from predictor.device import predict_rows
    from predictor.io import read_predictor_dir

    loaded = read_predictor_dir(args.model)  # predictor and table from one version
    pred = loaded.predictor
    rows = predict_rows(loaded, _arch_inputs(args.arch, pred.space, pred.setting))
    if args.json:
        for r in rows:
            print_json(r)
        return 0
    key = "ms" if pred.unit == "ms" else "relative"
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    print_table(f"predicted latency ({pred.space}/{pred.setting}, {args.model})",
                ("arch_id", f"predicted ({key})", "+-1 sd", "predicted ms", "table sum ms"),
                [(r["arch_id"], f"{r['predicted_' + key]:.4g}", f"{r['uncertainty_' + key]:.2g}",
                  fmt(r["predicted_ms"], ".4g"), fmt(r["lut_ms"], ".4g")) for r in rows])
    return 0
