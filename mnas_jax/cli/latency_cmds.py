"""`mnas latency measure|build-lut|profile`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mnas_jax.cli.errors import UserError
from mnas_jax.cli.output import print_json, print_table
from mnas_jax.cli.rounds import add_rounds_option, checked_rounds
from mnas_jax.space import parse_arch

DEVICE_HELP = "local[:opts], adb:SERIAL[,opts], http://HOST:PORT (default local)"
SPACE_HELP = ("mnasnet, or a slice of it that fixes decisions, e.g. "
              "mnasnet@op=2,kernel=0,se=0,skip=1,filters=1 (see 'mnas space describe')")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `mnas latency` (measure, build-lut, profile, export-csv, ...) to the CLI."""
    p = sub.add_parser("latency", help="measure latency on a device; build lookup tables")
    ls = p.add_subparsers(dest="latency_command", metavar="ACTION")
    ls.required = True
    m = ls.add_parser("measure", help="measure architectures (drift-controlled) and store them")
    m.add_argument("archs", nargs="+", metavar="ARCH", help="reference name, spec string or JSON")
    m.add_argument("--device", default="local", help=DEVICE_HELP)
    m.add_argument("--setting", default="imagenet", help="setting for reference names")
    m.add_argument("--workdir", default=".", help="where the store (mnas.sqlite) lives")
    m.add_argument("--json", action="store_true", help="one JSON object per architecture")
    m.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr)")
    add_rounds_option(m)
    m.set_defaults(func=_measure)
    b = ls.add_parser("build-lut", help="measure every layer of a space setting (resumable)")
    b.add_argument("--space", default="mnasnet", help=SPACE_HELP)
    b.add_argument("--setting", default=None, help="imagenet (default) or fmnist")
    b.add_argument("--device", default="local", help=DEVICE_HELP)
    b.add_argument("--workdir", default=".", help="store, conversion cache and tables/ live here")
    b.add_argument("--passes", type=int, default=None,
                   help="measurements per layer, the entry is their geometric mean (default: 2)")
    b.add_argument("-o", "--output", default=None, help="table file (default: WORKDIR/tables/)")
    b.add_argument("--json", action="store_true", help="print the result as one JSON line")
    b.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr)")
    b.set_defaults(func=_build_lut)
    f = ls.add_parser("profile", help="per-op times of an architecture from benchmark_model's "
                      "op profiling (ADB devices), beside the table's entries for its layers")
    f.add_argument("arch", metavar="ARCH", help="reference name, spec string or JSON")
    f.add_argument("--device", required=True, help="adb:SERIAL[,opts] (xnnpack=0 for per-op "
                   "times: a delegate runs as one node)")
    f.add_argument("--setting", default="imagenet", help="setting for reference names")
    f.add_argument("--workdir", default=".", help="where the conversion cache and tables/ live")
    f.add_argument("--table", type=Path, default=None,
                   help="table file (default: the device's table in WORKDIR/tables/ that holds "
                        "every layer of ARCH)")
    f.add_argument("--json", action="store_true", help="one JSON object per layer, then totals")
    f.set_defaults(func=_profile)


def _measure(args: argparse.Namespace) -> int:
    from latency.session import DeviceSession

    specs = [parse_arch(a, args.setting) for a in args.archs]
    with DeviceSession.open(args.device, args.workdir, rounds=checked_rounds(args)) as session:
        result = session.measure_archs(specs, progress=not args.quiet)
        fp = session.device.fingerprint()
    by_key = result.by_key()
    rows = []
    for name, spec in zip(args.archs, specs):
        c = by_key[spec.arch_id]
        rows.append({"arch": name, "arch_id": spec.arch_id, "median_ms": c.measurement.median_ms,
                     "relative": c.relative, "reference_ms": c.reference_ms,
                     "min_ms": c.measurement.min_ms, "iqr_ms": c.measurement.iqr_ms,
                     "cv": c.measurement.cv, "runs": c.measurement.runs,
                     "device": fp.device_id, "fingerprint": fp.to_dict()})
    if args.json:
        for r in rows:
            print_json(r)
        return 0
    print_table(f"latency on {args.device} ({fp.device_id}); reference mobilenetv2 drifted "
                f"x{result.reference_spread:.3f} during the run",
                ("arch", "arch_id", "median ms", "x reference", "min ms", "cv", "runs"),
                [(r["arch"][:40], r["arch_id"], f"{r['median_ms']:.4f}", f"{r['relative']:.4f}",
                  f"{r['min_ms']:.4f}", f"{r['cv']:.3f}", r["runs"]) for r in rows])
    return 0


def lut_space(space_name: str, setting: str | None):
    """The space (or slice) a lookup table can be built for; UserError otherwise."""
    from mnas_jax.space import get_space

    space = get_space(space_name, setting)
    if space.reference_name is None:
        raise UserError(f"lookup tables are built for spaces with a reference model on the device; "
                        f"{space_name!r} has external measurements only (use 'mnas predictor fit "
                        "--data')")
    return space


def _build_lut(args: argparse.Namespace) -> int:
    from latency.cached import build_space_table
    from latency.lut_build import TABLE_PASSES
    from latency.session import DeviceSession
    from latency.workdir import Workdir

    space = lut_space(args.space, args.setting)
    passes = TABLE_PASSES if args.passes is None else args.passes
    if passes < 1:
        raise UserError(f"--passes {passes}: measure every layer at least once (use >= 1)")
    started = time.time()
    with DeviceSession.open(args.device, args.workdir) as session:
        table = build_space_table(session, space, passes=passes, progress=not args.quiet)
    out = Path(args.output) if args.output else Workdir.of(args.workdir).table(
        space.name, space.setting, table.device_id)
    table.save(out)
    seconds = time.time() - started
    if args.json:
        print_json({"table": str(out), "space": space.name, "setting": space.setting,
                    "layers": len(table.entries_ms), "passes": passes,
                    "device": table.device_id, "reference_ms": table.reference_ms,
                    "seconds": round(seconds, 1)})
    else:
        print(f"table {space.name}/{space.setting}: {len(table.entries_ms)} layers on device "
              f"{table.device_id} in {seconds:.0f} s -> {out}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    from latency.devices import open_device
    from latency.export import Exporter
    from latency.oplist import ops_of
    from latency.profile import layer_times, parse_op_profile
    from latency.protocol import MeasureProtocol
    from latency.workdir import Workdir

    workdir = Workdir.of(args.workdir)
    device = open_device(args.device)
    if not hasattr(device, "profile"):
        raise UserError(f"--device {args.device}: op profiling runs TFLite's benchmark_model, "
                        "so it needs an ADB device (adb:SERIAL,xnnpack=0)")
    spec = parse_arch(args.arch, args.setting)
    layers = spec.layers()
    exporter = Exporter(workdir.tflite_cache)
    model = exporter.export(spec)
    layer_ops = [ops_of(exporter.export_layer(layer)) for layer in layers]
    fp = device.fingerprint()
    output = device.profile(model, MeasureProtocol())
    per_layer, unowned = layer_times(parse_op_profile(output), ops_of(model), layer_ops)
    table = _profile_table(args, fp.device_id, spec)
    rows = []
    for i, (layer, ms) in enumerate(zip(layers, per_layer)):
        entry = None if table is None else table.layer_ms(layer)
        rows.append({"index": i, "key": layer.key, "op": layer.op.value,
                     "ops": len(layer_ops[i]), "profiled_ms": ms, "table_ms": entry,
                     "ratio": None if not entry else ms / entry})
    totals = {"arch_id": spec.arch_id, "device": fp.device_id, "profiled_ms": sum(per_layer),
              "unassigned_ms": unowned,
              "table_ms": None if table is None else table.sum_ms(spec),
              "table": None if table is None else f"{table.space}/{table.setting}"}
    if args.json:
        for r in rows:
            print_json(r)
        print_json(totals)
        return 0
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    print_table(f"{args.arch} ({spec.arch_id}) on {fp.device_id}: op profile vs lookup table",
                ("#", "op", "ops", "profiled ms", "table ms", "profiled / table"),
                [(r["index"], r["op"], r["ops"], fmt(r["profiled_ms"]), fmt(r["table_ms"]),
                  fmt(r["ratio"])) for r in rows])
    print(f"sum of per-op times {totals['profiled_ms']:.4f} ms (+{unowned:.4f} ms in ops no "
          f"layer owns); table sum {fmt(totals['table_ms'])} ms")
    if table is None:
        print(f"no table of device {fp.device_id} in {workdir.tables} holds these "
              "layers: build one with 'mnas latency build-lut' (or pass --table)")
    return 0


def _profile_table(args: argparse.Namespace, device_id: str, spec):
    """--table, else the device's table in WORKDIR/tables/ that holds every layer of `spec`."""
    from latency.lut import LatencyTable, MissingLayerError
    from latency.workdir import Workdir

    if args.table is not None:
        return LatencyTable.load(args.table, device_id=device_id)
    for path in Workdir.of(args.workdir).device_tables(device_id):
        table = LatencyTable.load(path, device_id=device_id)
        try:
            table.sum_ms(spec)
        except MissingLayerError:
            continue
        return table
    return None
