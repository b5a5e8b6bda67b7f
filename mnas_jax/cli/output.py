"""Printing results: JSON lines for machines, rich tables for people."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence


def print_json(obj: Any) -> None:
    """Write `obj` to stdout as one JSON line with sorted keys."""
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print rows as a rich table titled `title` to stdout (160 columns wide when piped)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
