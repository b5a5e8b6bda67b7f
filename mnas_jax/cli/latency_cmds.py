"""`mnas latency measure|build-lut`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mnas_jax.cli.errors import UserError
from mnas_jax.cli.output import print_json, print_table
from mnas_jax.space import SPACES, parse_arch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="measure latency on a device; build lookup tables")
    ls = p.add_subparsers(dest="latency_command", metavar="ACTION")
    ls.required = True
    m = ls.add_parser("measure", help="measure architectures (drift-controlled) and store them")
    m.add_argument("archs", nargs="+", metavar="ARCH", help="reference name, spec string or JSON")
    m.add_argument("--device", default="local", help="local[:opts], adb:SERIAL, http://HOST:PORT")
    m.add_argument("--setting", default="imagenet", help="setting for reference names")
    m.add_argument("--workdir", default=".", help="where the store (mnas.sqlite) lives")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_measure)
    b = ls.add_parser("build-lut", help="measure every layer of a space setting (resumable)")
    b.add_argument("--space", default="mnasnet", choices=SPACES)
    b.add_argument("--setting", default=None)
    b.add_argument("--device", default="local")
    b.add_argument("--workdir", default=".")
    b.add_argument("--passes", type=int, default=None,
                   help="measurements per layer, the entry is the lowest (default: 2)")
    b.add_argument("-o", "--output", default=None, help="table file (default: WORKDIR/tables/)")
    b.set_defaults(func=_build_lut)


def table_path(workdir: str | Path, space: str, setting: str, device_id: str) -> Path:
    return Path(workdir) / "tables" / f"{space}-{setting}-{device_id}.json"


def _measure(args: argparse.Namespace) -> int:
    from latency.session import DeviceSession

    specs = [parse_arch(a, args.setting) for a in args.archs]
    with DeviceSession.open(args.device, args.workdir) as session:
        result = session.measure_archs(specs, progress=not args.json)
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


def _build_lut(args: argparse.Namespace) -> int:
    from latency.lut_build import TABLE_PASSES, build_table
    from latency.lut_space import space_layers
    from latency.session import DeviceSession
    from mnas_jax.space import get_space

    space = get_space(args.space, args.setting)
    if args.space != "mnasnet":
        raise UserError(f"lookup tables are built for the mnasnet space; {args.space!r} has "
                        "external measurements only (use 'mnas predictor fit --data')")
    passes = TABLE_PASSES if args.passes is None else args.passes
    if passes < 1:
        raise UserError(f"--passes {passes}: measure every layer at least once (use >= 1)")
    layers = space_layers(args.space, space.setting)
    started = time.time()
    with DeviceSession.open(args.device, args.workdir) as session:
        ref = session.reference_bytes(space.setting)
        table = build_table(layers, space=args.space, setting=space.setting,
                            device=session.device, store=session.store,
                            export_layer=session.exporter.layers, prefetch=True,
                            reference_bytes=ref, source=session.source, passes=passes)
    out = Path(args.output) if args.output else table_path(args.workdir, args.space,
                                                           space.setting, table.device_id)
    table.save(out)
    print(f"table {args.space}/{space.setting}: {len(table.entries_ms)} layers on device "
          f"{table.device_id} in {time.time() - started:.0f} s -> {out}")
    return 0
