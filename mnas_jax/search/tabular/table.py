"""A tabular benchmark file: every architecture of a space with its trained accuracies and its
latencies, so that a search reads ACC(m) and LAT(m) instead of training and measuring.

The format (CSV, one row per architecture, header first; columns in any order):

- ``tokens``: the architecture as space-separated choice indices, one per decision
  (``1 2 0 1 2 2 0 1``); every row has the same number of tokens, no two rows the same tokens.
- ``name`` (optional): a label, e.g. the benchmark's own code (``12012201``); targets can be
  given relative to a named row. Without it a row's name is its tokens joined by ``-``.
- accuracy columns, one per training seed (default: every column whose name starts with
  ``acc_``; ``--accuracy`` gives a prefix or a comma-separated list). Fractions in [0, 1], or
  percentages when the largest value is above 1.5 (then divided by 100).
- latency columns ``<device>_ms``, milliseconds > 0.
- any other column is ignored.

The decisions and their number of choices are read from a sidecar ``FILE.json`` when there is
one (``{"choices": [...], "decision_names": [...], "space": ..., "setting": ...}``), else given
beside the file (``choices=``), else each decision's largest token + 1. A file that breaks the
format stops with a ValueError naming the row (its line in the file) and the column.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ACCURACY_PREFIX = "acc_"
LATENCY_SUFFIX = "_ms"


@dataclasses.dataclass(frozen=True, eq=False)
class TabularBenchmark:
    """The rows of a benchmark file as arrays; row i is the architecture ``tokens[i]``."""

    path: str
    sha256: str
    tokens: np.ndarray  # (N, D) int64
    names: tuple[str, ...]
    accuracy: np.ndarray  # (N, S) float64 fractions, one column per training seed
    accuracy_columns: tuple[str, ...]
    latencies: dict[str, np.ndarray]  # column -> (N,) ms
    choices: tuple[int, ...]
    decision_names: tuple[str, ...]
    space: str | None = None  # a registered space whose tokens these are, if the sidecar says so
    setting: str | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {tuple(int(t) for t in row): i
                                            for i, row in enumerate(self.tokens)})
        object.__setattr__(self, "_by_name", {n: i for i, n in enumerate(self.names)})

    def __len__(self) -> int:
        return len(self.names)

    @property
    def mean_accuracy(self) -> np.ndarray:
        """Each architecture's accuracy averaged over its training seeds, (N,)."""
        return self.accuracy.mean(axis=1)

    def row_of(self, tokens: Sequence[int]) -> int | None:
        """The row of a token sequence, None when the file has no such architecture."""
        return self._index.get(tuple(int(t) for t in tokens))  # type: ignore[attr-defined]

    def row_named(self, name: str) -> int:
        """The row called ``name``; ValueError naming a few names when there is none."""
        try:
            return self._by_name[name]  # type: ignore[attr-defined]
        except KeyError:
            raise ValueError(f"{self.path} has no row named {name!r} (names look like "
                             f"{', '.join(repr(n) for n in self.names[:3])})") from None

    def latency(self, column: str | None) -> np.ndarray:
        """The (N,) latencies of a column; None picks the only one, or asks which."""
        if column is None:
            if len(self.latencies) == 1:
                return next(iter(self.latencies.values()))
            raise ValueError(f"{self.path} has latency columns {sorted(self.latencies)}; "
                             "choose one with --latency")
        if column not in self.latencies:
            raise ValueError(f"{self.path} has no latency column {column!r}; it has "
                             f"{sorted(self.latencies) or 'none'} (columns named <device>_ms)")
        return self.latencies[column]

    def latency_column(self, column: str | None) -> str:
        """The name of the column `latency(column)` reads."""
        self.latency(column)
        return column if column is not None else next(iter(self.latencies))


def sidecar_of(path: str | Path) -> Path:
    """Where a benchmark file's sidecar (decisions, space, provenance) lives: FILE.json."""
    return Path(path).with_suffix(".json")


def load_table(path: str | Path, *, accuracy: str | Sequence[str] | None = None,
               choices: Sequence[int] | None = None) -> TabularBenchmark:
    """Read and check a benchmark file (the module docstring gives the format)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {str(path)!r} does not exist")
    raw = path.read_bytes()
    meta = _sidecar(path)
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    if not rows or not rows[0]:
        raise ValueError(f"{path} is empty: expected a CSV header with a 'tokens' column")
    header = [h.strip() for h in rows[0]]
    body = [(i + 2, r) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    if "tokens" not in header:
        raise ValueError(f"{path} has no 'tokens' column; its header is {header}")
    if not body:
        raise ValueError(f"{path} has a header but no rows")
    acc_cols = _accuracy_columns(path, header, accuracy if accuracy is not None
                                 else meta.get("accuracy_columns"))
    lat_cols = [h for h in header if h.endswith(LATENCY_SUFFIX) and len(h) > len(LATENCY_SUFFIX)]
    col = {h: j for j, h in enumerate(header)}
    for line, r in body:
        if len(r) != len(header):
            raise ValueError(f"{path} line {line}: {len(r)} fields, the header has {len(header)}")
    tokens = _tokens(path, [(line, r[col["tokens"]]) for line, r in body])
    names = tuple(r[col["name"]].strip() for _, r in body) if "name" in col else tuple(
        "-".join(str(int(t)) for t in row) for row in tokens)
    _unique(path, [line for line, _ in body], [tuple(t) for t in tokens], "tokens")
    _unique(path, [line for line, _ in body], list(names), "name")
    acc = np.stack([_numbers(path, body, col[c], c) for c in acc_cols], axis=1)
    acc = _as_fractions(path, acc, acc_cols, [line for line, _ in body])
    latencies = {c: _numbers(path, body, col[c], c) for c in lat_cols}
    for c, v in latencies.items():
        bad = np.flatnonzero(~(v > 0))
        if bad.size:
            raise ValueError(f"{path} line {body[bad[0]][0]} column {c}: latency {v[bad[0]]!r} "
                             "must be > 0 ms")
    found = tuple(int(m) + 1 for m in tokens.max(axis=0))
    given = choices if choices is not None else meta.get("choices")
    choices_ = _choices(path, given, found, tokens.shape[1])
    names_meta = meta.get("decision_names")
    decision_names = (tuple(names_meta) if names_meta and len(names_meta) == len(choices_)
                      else tuple(f"d{i}.op" for i in range(len(choices_))))
    return TabularBenchmark(path=str(path), sha256=hashlib.sha256(raw).hexdigest(), tokens=tokens,
                            names=names, accuracy=acc, accuracy_columns=tuple(acc_cols),
                            latencies=latencies, choices=choices_, decision_names=decision_names,
                            space=meta.get("space"), setting=meta.get("setting"), meta=meta)


def _sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_of(path)
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"sidecar {side} is not valid JSON ({err}); fix or remove it") from None
    if not isinstance(meta, dict):
        raise ValueError(f"sidecar {side} must hold a JSON object, not {type(meta).__name__}")
    return meta


def _accuracy_columns(path: Path, header: list[str], spec: str | Sequence[str] | None) -> list[str]:
    if spec is None or isinstance(spec, str) and "," not in spec and spec not in header:
        prefix = ACCURACY_PREFIX if spec is None else spec
        cols = [h for h in header if h.startswith(prefix)]
        if not cols:
            raise ValueError(f"{path} has no accuracy column starting with {prefix!r}; its header "
                             f"is {header} (give the columns with --accuracy COL1,COL2 or a prefix)")
        return cols
    cols = [c.strip() for c in spec.split(",")] if isinstance(spec, str) else list(spec)
    missing = [c for c in cols if c not in header]
    if missing or not cols:
        raise ValueError(f"{path} has no accuracy column(s) {missing or cols}; its header is {header}")
    return cols


def _tokens(path: Path, cells: list[tuple[int, str]]) -> np.ndarray:
    out: list[list[int]] = []
    width = None
    for line, cell in cells:
        parts = cell.split()
        try:
            row = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path} line {line}: tokens {cell!r} must be space-separated "
                             "choice indices (integers >= 0)") from None
        if not row or min(row) < 0:
            raise ValueError(f"{path} line {line}: tokens {cell!r} must be integers >= 0")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise ValueError(f"{path} line {line}: {len(row)} tokens, the rows before have {width}")
        out.append(row)
    return np.asarray(out, dtype=np.int64)


def _unique(path: Path, lines: list[int], keys: list[Any], what: str) -> None:
    seen: dict[Any, int] = {}
    for line, key in zip(lines, keys):
        if key in seen:
            raise ValueError(f"{path} line {line}: the same {what} as line {seen[key]}; one row "
                             "per architecture")
        seen[key] = line


def _numbers(path: Path, body: list[tuple[int, list[str]]], j: int, name: str) -> np.ndarray:
    out = np.empty(len(body))
    for k, (line, r) in enumerate(body):
        try:
            out[k] = float(r[j])
        except ValueError:
            raise ValueError(f"{path} line {line} column {name}: {r[j]!r} is not a number") from None
        if not math.isfinite(out[k]):
            raise ValueError(f"{path} line {line} column {name}: {r[j]!r} is not a finite number")
    return out


def _as_fractions(path: Path, acc: np.ndarray, cols: list[str], lines: list[int]) -> np.ndarray:
    scale = 100.0 if acc.max() > 1.5 else 1.0
    acc = acc / scale
    if acc.min() < 0 or acc.max() > 1:
        r, c = np.argwhere((acc < 0) | (acc > 1))[0]
        raise ValueError(f"{path} line {lines[r]} column {cols[c]}: accuracy {acc[r, c] * scale!r} "
                         "is outside [0, 1] (fractions) or [0, 100] (percent)")
    return acc


def _choices(path: Path, given: Sequence[int] | None, found: tuple[int, ...], width: int) -> tuple[int, ...]:
    if given is None:
        return found
    given = tuple(int(c) for c in given)
    if len(given) != width:
        raise ValueError(f"{path}: {len(given)} choice counts given for rows of {width} tokens")
    over = [i for i, (g, f) in enumerate(zip(given, found)) if f > g]
    if over:
        raise ValueError(f"{path}: decision {over[0]} has token {found[over[0]] - 1}, but only "
                         f"{given[over[0]]} choices were given")
    return given
