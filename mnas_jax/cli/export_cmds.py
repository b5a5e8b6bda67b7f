"""`mnas export ARCH -o FILE`: an architecture as a .tflite file (random non-zero weights)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from mnas_jax.cli.errors import UserError
from mnas_jax.cli.output import print_json
from mnas_jax.space import SETTINGS, parse_arch


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `export` command (architecture -> .tflite file) to the CLI's subparsers."""
    p = sub.add_parser("export", help="convert an architecture to a .tflite file (batch 1, "
                                      "float32, builtin ops, random weights for timing)")
    p.add_argument("arch", help="reference name, spec string, or JSON file")
    p.add_argument("-o", "--output", required=True, type=Path, help=".tflite file to write")
    p.add_argument("--setting", default="imagenet", choices=sorted(SETTINGS),
                   help="setting for reference names (default imagenet)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="reuse and keep conversions in this directory")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from latency.export import ExportError, Exporter
    from mnas_jax.files import write_atomic
    from latency.oplist import op_counts

    spec = parse_arch(args.arch, args.setting)
    if args.output.is_dir():
        raise UserError(f"-o {str(args.output)!r} is a directory; give a file name like "
                        f"{str(args.output / (spec.arch_id + '.tflite'))!r}")
    parent = args.output.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"output directory {str(parent)!r} does not exist; create it "
                                "first or choose another -o path")
    try:
        data = Exporter(args.cache_dir, memory_bytes=0).export(spec, seed=args.seed)
    except ExportError as e:  # a conversion failure: one line, exit status 1
        raise ExportError(f"cannot export {args.arch!r}: {e}") from None
    write_atomic(args.output, data)
    counts = op_counts(data)
    if args.json:
        print_json({"arch_id": spec.arch_id, "path": str(args.output), "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(), "ops": counts})
    else:
        ops = ", ".join(f"{name} x{n}" for name, n in counts.items())
        print(f"wrote {args.output} ({len(data):,} bytes, arch {spec.arch_id}): {ops}")
    return 0
