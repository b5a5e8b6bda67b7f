"""Per-op times from benchmark_model's op profiling, grouped into the architecture's layers.

`benchmark_model --enable_op_profiling=true` prints, after the timing lines, a section
"Operator-wise Profiling Info for Regular Benchmark Runs:" whose "Run Order" table has one row
per executed node: node type, [start,] first, avg ms, %, cdf%, mem KB, times called, and
"[output tensor names]:node index" (tab-separated columns; builds differ in the [start] column).
A delegate (XNNPACK) runs as one node, so per-op times need the delegate off.

To set them beside a lookup table, the full model's ops are matched to the ops of each layer
exported alone (the table's one-layer models): the op sequences agree except where conversion
fuses across layers (the global pool's MUL folds into the classifier), so the match is a
sequence alignment and an unmatched op is reported as such.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import NamedTuple

_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs"
_RUN_ORDER = "Run Order"
_NODE = re.compile(r":(\d+)\s*$")
_COLUMNS = {"[node type]": "op", "[first]": "first_ms", "[avg ms]": "avg_ms", "[Name]": "name"}


class OpTime(NamedTuple):
    """One node of the profile (milliseconds)."""

    node: int
    op: str
    first_ms: float
    avg_ms: float
    name: str


def _cells(line: str) -> list[str]:
    """Tab-separated cells after any log prefix ('INFO: ', logcat columns)."""
    start = line.find("\t")
    return [] if start < 0 else [c.strip() for c in line[start:].split("\t")[1:]]


def parse_op_profile(output: str) -> list[OpTime]:
    """The Run Order rows of the regular runs' op profile; ValueError if there is none."""
    lines = output.splitlines()
    at = next((i for i, ln in enumerate(lines) if _SECTION in ln), None)
    if at is None:
        raise ValueError("benchmark_model output has no op profile (run it with "
                         "--enable_op_profiling=true)")
    order_at = next((i for i in range(at, len(lines)) if _RUN_ORDER in lines[i]), len(lines))
    header_at = next((i for i in range(order_at, len(lines)) if "[node type]" in lines[i]), None)
    if header_at is None:
        raise ValueError("benchmark_model's op profile has no Run Order table")
    columns = _cells(lines[header_at])
    index = {_COLUMNS[c]: i for i, c in enumerate(columns) if c in _COLUMNS}
    if len(index) != len(_COLUMNS):
        raise ValueError(f"unknown op profile columns {columns}")
    rows = []
    for line in lines[header_at + 1:]:
        cells = _cells(line)
        if len(cells) < len(columns):
            break
        name = cells[index["name"]]
        node = _NODE.search(name)
        rows.append(OpTime(int(node.group(1)) if node else len(rows), cells[index["op"]],
                           float(cells[index["first_ms"]]), float(cells[index["avg_ms"]]), name))
    return sorted(rows, key=lambda r: r.node)


def align_ops(layer_ops: Sequence[Sequence[str]], model_ops: Sequence[str]) -> list[int | None]:
    """For each op of the full model, the index of the layer it belongs to (None: an op no
    one-layer model has, e.g. one fused across layers)."""
    flat = [op for ops in layer_ops for op in ops]
    owner = [i for i, ops in enumerate(layer_ops) for _ in ops]
    out: list[int | None] = [None] * len(model_ops)
    matcher = difflib.SequenceMatcher(None, list(model_ops), flat, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            out[block.a + k] = owner[block.b + k]
    return out


def layer_times(rows: Sequence[OpTime], model_ops: Sequence[str],
                layer_ops: Sequence[Sequence[str]]) -> tuple[list[float], float]:
    """(profiled ms per layer, ms of ops no layer owns) from the profile of the full model."""
    profiled = [r.op for r in rows]
    if profiled != list(model_ops):
        delegated = sorted({op for op in profiled if "Delegate" in op})
        why = (f"a delegate ran the model ({', '.join(delegated)}), so there are no per-op "
               "times: profile on the device with the delegate off (e.g. adb:SERIAL,xnnpack=0)"
               if delegated else "its nodes are not the model's ops")
        raise ValueError(f"benchmark_model profiled {len(profiled)} nodes for a model of "
                         f"{len(model_ops)} ops: {why}")
    per_layer = [0.0] * len(layer_ops)
    unowned = 0.0
    for row, owner in zip(rows, align_ops(layer_ops, model_ops)):
        if owner is None:
            unowned += row.avg_ms
        else:
            per_layer[owner] += row.avg_ms
    return per_layer, unowned
