"""Proxy fidelity: now the tool `mnas proxy select | train | report` (mnas_jax/cli/proxy_cmds.py,
library in mnas_jax/fidelity/). This module forwards to it, so that the commands of the first
campaign keep working (`--runs DIR` is `--workdir DIR`, default runs/proxy-fidelity):

    python -m benchmarks.proxy_fidelity select               # = mnas proxy select
    python -m benchmarks.proxy_fidelity train --budget reference --names space-08,space-09
    python -m benchmarks.proxy_fidelity report               # -> benchmarks/reports/proxy_fidelity.*

`budgets()` gives the budgets' training configs by name (benchmarks/child_cost.py times them).
"""

from __future__ import annotations

import sys
from typing import Any


def budgets() -> dict[str, Any]:
    """Budget name -> TrainConfig (the tool's budget table)."""
    from mnas_jax.fidelity.budgets import budget_table

    return {name: b.config for name, b in budget_table().items()}


def main(argv: list[str] | None = None) -> int:
    """Run `mnas proxy` with these arguments (``--runs`` renamed ``--workdir``)."""
    from mnas_jax.cli.main import main as mnas

    args = list(sys.argv[1:] if argv is None else argv)
    args = ["--workdir" if a == "--runs" else a.replace("--runs=", "--workdir=", 1) for a in args]
    return mnas(["proxy", *args])


if __name__ == "__main__":
    sys.exit(main())
