"""`mnas search --config C [--variant V] --workdir W [--device D] [--executor local|ray]`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fmnist.py"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="table -> predictor -> search with calibration -> report")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="Python config file")
    p.add_argument("--variant", default=None, help="named variant of the config (e.g. smoke)")
    p.add_argument("--workdir", required=True, help="store, tables, checkpoints and report")
    p.add_argument("--device", default=None, help="override the config's device")
    p.add_argument("--executor", choices=("local", "ray"), default=None)
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    p.add_argument("--resume", action="store_true", help="continue the search in --workdir")
    p.set_defaults(func=_search)


def _search(args: argparse.Namespace) -> int:
    from mnas_jax.search.config import load_config
    from mnas_jax.search.pipeline import run_search

    config = load_config(args.config, args.variant)
    out = run_search(config, args.workdir, device=args.device, executor=args.executor,
                     ray_address=args.address, resume=args.resume)
    print(out / "report.md")
    return 0
