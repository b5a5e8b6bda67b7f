"""Entry point of the `mnas` command. Each command group lives in its own module with a
`register(subparsers)` function; this file only wires them and turns user mistakes into one line
on stderr with exit status 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from mnas_jax.cli.distributed import maybe_join_job
from mnas_jax.cli.errors import UserError

# Command modules, in help order. Imported lazily so `mnas --help` stays fast.
COMMAND_MODULES = (
    "space_cmds",
    "model_cmds",
    "export_cmds",
    "latency_cmds",
    "device_cmds",
    "predictor_cmds",
    "train_cmds",
    "search_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnas", description="Latency-model-first platform-aware neural architecture search."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mnas_jax.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"mnas_jax.cli.{name}":
                continue  # command group not present in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from mnas_jax.train.xla_cpu import configure_xla_cpu

    configure_xla_cpu()  # XLA reads its flags once, at the first JAX computation
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        maybe_join_job()  # before any JAX call: jax refuses to join once its backend started
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, ConnectionError) as e:
        print(f"mnas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mnas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
