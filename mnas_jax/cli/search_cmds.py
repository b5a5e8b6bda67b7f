"""`mnas search --config C [--variant V] --workdir W [--device D] [--executor local|ray]
[--data fmnist|tfds:NAME --data-dir D]`."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from mnas_jax.cli.errors import UserError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fmnist.py"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `search` command (table -> predictor -> search -> report) to the CLI's subparsers."""
    p = sub.add_parser("search", help="table -> predictor -> search with calibration -> report")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="Python config file")
    p.add_argument("--variant", default=None, help="named variant of the config (e.g. smoke)")
    p.add_argument("--workdir", required=True, help="store, tables, checkpoints and report")
    p.add_argument("--device", default=None, help="override the config's device")
    p.add_argument("--executor", choices=("local", "ray"), default=None,
                   help="where children train: in this process (local) or on a Ray cluster")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    p.add_argument("--data", default=None, help="override the config's data (fmnist or tfds:NAME[/CONFIG][:SPLIT])")
    p.add_argument("--data-dir", default=None, help="override the config's data directory (TFDS data dir)")
    p.add_argument("--resume", action="store_true", help="continue the search in --workdir")
    p.add_argument("--predictor", type=Path, default=None,
                   help="use this predictor directory (fitted or transferred for the search's "
                        "device) instead of building a table and fitting one")
    p.add_argument("--json", action="store_true",
                   help="print the report's summary (summary.json) as one JSON line")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (status lines still go to stderr)")
    p.set_defaults(func=_search)


def _search(args: argparse.Namespace) -> int:
    """Also `--predictor DIR` (a predictor instead of table + fit), `--json`, `--quiet`."""
    import functools

    from mnas_jax.cli.output import print_json
    from mnas_jax.search import pipeline
    from mnas_jax.search.config import load_config
    run_search = functools.partial(pipeline.run_search, predictor=args.predictor,
                                   progress=not args.quiet)

    _refuse_multiprocess()
    config = load_config(args.config, args.variant)
    data_dir = args.data_dir
    if data_dir is not None and "://" not in data_dir:
        data_dir = os.path.abspath(data_dir)  # Ray workers may start in another directory
    changes = {k: v for k, v in (("data", args.data), ("data_dir", data_dir)) if v is not None}
    config = dataclasses.replace(config, **changes) if changes else config
    out = run_search(config, args.workdir, device=args.device, executor=args.executor,
                     ray_address=args.address, resume=args.resume)
    if args.json:
        import json

        print_json({"report": str(out / "report.md")} | json.loads(
            (out / "summary.json").read_text()))
    else:
        print(out / "report.md")
    return 0


def _refuse_multiprocess() -> None:
    """The search runs as one process; its children may use many devices (or Ray workers)."""
    import jax

    if jax.distributed.is_initialized() and jax.process_count() > 1:
        raise UserError(f"mnas search runs as one process, not as process {jax.process_index()} of "
                        f"{jax.process_count()}: unset MNAS_COORDINATOR_ADDRESS (or set "
                        "MNAS_DISTRIBUTED=off) and train children on other hosts with --executor ray")
