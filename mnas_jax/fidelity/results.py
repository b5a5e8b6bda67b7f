"""The results file: one JSON line per finished run, appended and fsynced as the run ends.

A row: arch_id, name, budget, seed, wall_seconds, images, input_size, then the training's own
result (`TrainResult.to_dict()`). Appending is the only write: a kill loses at most the run in
flight (and a line it was writing, which the next append cuts off). A run is identified by
(arch_id, budget, seed); the first row of a run wins.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from mnas_jax.fidelity.candidates import Selection

log = logging.getLogger(__name__)

RunKey = tuple[str, str, int]  # (arch_id, budget, seed)
ROW_KEYS = ("arch_id", "name", "budget", "seed", "wall_seconds", "images", "input_size")


def run_key(row: dict[str, Any]) -> RunKey:
    """(arch_id, budget, seed) of a row."""
    return (str(row["arch_id"]), str(row["budget"]), int(row["seed"]))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every complete row in file order ([] when the file does not exist). A last line cut by a
    kill is skipped; a bad line elsewhere raises ValueError naming it (the file was edited)."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            run_key(row)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if i == len(lines) - 1:  # no newline after it: a write cut short
                log.warning("%s: skipping a last line cut short (a run killed while appending)", path)
                continue
            raise ValueError(f"{path} line {i + 1} is not a result row: {line[:80]!r}") from None
        rows.append(row)
    return rows


def done_runs(rows: list[dict[str, Any]]) -> dict[RunKey, dict[str, Any]]:
    """Rows by run key; the first row of a run wins."""
    out: dict[RunKey, dict[str, Any]] = {}
    for row in rows:
        out.setdefault(run_key(row), row)
    return out


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row and fsync it, under an exclusive lock; a line left cut short by a kill is
    cut off first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(row) + "\n"
    with path.open("a+b") as f:  # appends go to the end whatever the position
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # two trainers (e.g. one per core) share a file
        f.seek(0)
        data = f.read()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: cutting off %d bytes of a line a killed run left", path, len(data) - keep)
            f.truncate(keep)
        f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def check_rows(rows: list[dict[str, Any]], selection: Selection, path: str | Path) -> None:
    """ValueError in one line when ``rows`` belong to another selection or setting: a row names
    a candidate's arch id with another name (or a candidate's name with another arch id), or no
    row is of any candidate. Rows of architectures outside the selection are otherwise fine (an
    earlier selection's dropped candidates): the report ignores them."""
    if not rows:
        return
    by_id, by_name = selection.by_id(), selection.by_name()
    what = (f"{selection.space or '?'}/{selection.setting or '?'} selection "
            f"{selection.selection_id}")
    for row in rows:
        mine = by_id.get(row["arch_id"])
        if mine is not None and row.get("name") != mine.name:
            raise ValueError(f"{path} belongs to another selection: its row {row.get('name')!r} "
                             f"({row['arch_id']}) is {mine.name!r} in the {what}; use the archs.json "
                             "it was trained with, or another results file")
        same_name = by_name.get(row.get("name", ""))
        if same_name is not None and row["arch_id"] != same_name.arch_id:
            raise ValueError(f"{path} belongs to another selection or setting: its {row['name']!r} is "
                             f"{row['arch_id']}, the {what}'s is {same_name.arch_id}; use the "
                             "archs.json it was trained with, or another results file")
    if not any(r["arch_id"] in by_id for r in rows):
        raise ValueError(f"{path} belongs to another selection or setting: none of its "
                         f"{len(rows)} rows is of a candidate of the {what}; use the archs.json it "
                         "was trained with, or another results file")
