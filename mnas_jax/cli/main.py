"""Entry point of the `mnas` command. Each command group lives in its own module with a
`register(subparsers)` function; this file only wires them and turns user mistakes (exit status
2) and device, server, timeout and conversion failures (exit status 1) into one line on stderr
(see mnas_jax.cli.errors; `--debug` shows the traceback)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from mnas_jax.cli.distributed import maybe_join_job
from mnas_jax.cli.errors import UserError
from mnas_jax.cli.errors import exit_status, one_line

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
    "proxy_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the `mnas` argument parser with every command module's subcommands."""
    parser = argparse.ArgumentParser(
        prog="mnas", description="Latency-model-first platform-aware neural architecture search.",
        epilog="Results go to stdout (--json: one JSON object per line), progress and status to "
               "stderr. Exit status 2: a bad value or missing file; 1: the device, the device "
               "server or the converter failed.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                        help="print the version of mnas-jax and exit")
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


def package_version() -> str:
    """The installed distribution's version ('unknown' for a source tree never installed)."""
    from importlib import metadata

    try:
        return metadata.version("mnas-jax")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `mnas` CLI on `argv`; returns the exit status (2: bad input, 1: device failure)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from mnas_jax.train.runtime import prepare_process

    # XLA reads its flags once, at the first JAX computation; the compilation cache is the
    # project's one directory (MNAS_JAX_CACHE_DIR); no probe here: it would start JAX's backend
    # before a search driver can keep it off the accelerators
    prepare_process(probe=False)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s",
                        force=True)  # importing jax (prepare_process) adds a root handler
    try:
        maybe_join_job()  # before any JAX call: jax refuses to join once its backend started
        return int(args.func(args) or 0)
    except Exception as e:  # one line for mistakes and failures; a bug keeps its traceback
        status = exit_status(e)
        if status is None or (args.debug and not isinstance(e, UserError)):
            raise  # (a UserError is the CLI's own check: its traceback shows nothing more)
        print(f"mnas: error: {one_line(e)}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print("mnas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
