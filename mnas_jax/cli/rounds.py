"""The `--rounds` option of the commands that measure architectures on a device."""

from __future__ import annotations

import argparse

from latency.session import ARCH_ROUNDS
from mnas_jax.cli.errors import UserError


def add_rounds_option(parser: argparse._ActionsContainer, default: str | None = None) -> None:
    """`--rounds N`: interleaved rounds per measurement of a set of architectures (`default`: the
    help's words for a default other than the session's)."""
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds (reference, arch, reference, ...) per measurement "
                             "of architectures, combined by their median (default "
                             f"{default or ARCH_ROUNDS}; {ARCH_ROUNDS} holds the label noise floor of "
                             "benchmarks/reports/latency_noise_floor.md; fewer is faster and noisier)")


def checked_rounds(args: argparse.Namespace, default: int = ARCH_ROUNDS) -> int:
    """`--rounds` (`default` when not given), or a one-line error when it is below 1."""
    if args.rounds is None:
        return default
    if args.rounds < 1:
        raise UserError(f"--rounds {args.rounds}: measure at least one round (use >= 1)")
    return args.rounds
