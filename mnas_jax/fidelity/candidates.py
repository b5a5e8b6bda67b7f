"""The correlation candidates and their file, WORKDIR/archs.json.

A header names what the candidates were selected for (space, setting, selection seed, device,
latency range), so that a results file of another selection or setting is recognised before a
run is added to it. The rows keep the format of the first selections (name, arch_id, spec,
relative_latency, macs); a file of that older format (a bare list of rows, no header) is read too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from mnas_jax.files import write_atomic
from mnas_jax.space import ArchSpec

FORMAT = 1
ROW_KEYS = ("name", "arch_id", "spec", "relative_latency", "macs")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One correlation candidate: its name, identity, spec string, latency relative to the
    reference model (measured) and MACs."""

    name: str
    arch_id: str
    spec: str
    relative_latency: float
    macs: int

    @property
    def arch(self) -> ArchSpec:
        """The architecture (parsed from the spec string)."""
        return ArchSpec.from_string(self.spec)

    def to_row(self) -> dict[str, Any]:
        """The row of archs.json."""
        return {k: getattr(self, k) for k in ROW_KEYS}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Candidate:
        """A candidate from its row; ValueError naming a missing key or a spec/id mismatch."""
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"candidate row {row.get('name', '?')!r} lacks {missing}")
        c = cls(str(row["name"]), str(row["arch_id"]), str(row["spec"]), float(row["relative_latency"]),
                int(row["macs"]))
        if c.arch.arch_id != c.arch_id:
            raise ValueError(f"candidate {c.name!r}: arch_id {c.arch_id} is not its spec's "
                             f"({c.arch.arch_id}); the file was edited by hand")
        return c


@dataclasses.dataclass(frozen=True)
class Selection:
    """Candidates plus what they were selected for (None where an older file does not say)."""

    candidates: tuple[Candidate, ...]
    space: str | None = None
    setting: str | None = None
    seed: int | None = None
    device: str | None = None
    reference: str | None = None
    latency_range: tuple[float, float] | None = None
    bins: int | None = None
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)  # kept, empty bins, pool size

    def __post_init__(self) -> None:
        for what in ("name", "arch_id"):
            values = [getattr(c, what) for c in self.candidates]
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"candidates repeat the {what}(s) {dup}; each must be unique")

    @property
    def selection_id(self) -> str:
        """A short hash of the candidates' arch ids: the selection's identity."""
        text = ",".join(sorted(c.arch_id for c in self.candidates))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def has_header(self) -> bool:
        """Whether the file said what the candidates were selected for (not an older list)."""
        return self.setting is not None

    def by_name(self) -> dict[str, Candidate]:
        """Candidates by name."""
        return {c.name: c for c in self.candidates}

    def by_id(self) -> dict[str, Candidate]:
        """Candidates by arch id."""
        return {c.arch_id: c for c in self.candidates}

    def pick(self, names: list[str]) -> list[Candidate]:
        """The named candidates in the given order; ValueError naming the unknown ones."""
        known = self.by_name()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"no candidate(s) {', '.join(unknown)} in the selection; it has "
                             f"{', '.join(known)}")
        return [known[n] for n in dict.fromkeys(names)]

    def to_json(self) -> dict[str, Any]:
        """The file's content: header, then the rows."""
        return {"format": FORMAT, "selection_id": self.selection_id, "space": self.space,
                "setting": self.setting, "seed": self.seed, "device": self.device,
                "reference": self.reference,
                "latency_range": None if self.latency_range is None else list(self.latency_range),
                "bins": self.bins, "notes": self.notes, "archs": [c.to_row() for c in self.candidates]}

    @classmethod
    def from_json(cls, data: Any) -> Selection:
        """Read the file's content: a header with `archs`, or an older bare list of rows."""
        if isinstance(data, list):
            return cls(tuple(Candidate.from_row(r) for r in data))
        if not isinstance(data, dict) or "archs" not in data:
            raise ValueError("not a candidates file: expected a list of rows or an object with 'archs'")
        span = data.get("latency_range")
        return cls(tuple(Candidate.from_row(r) for r in data["archs"]), data.get("space"),
                   data.get("setting"), data.get("seed"), data.get("device"), data.get("reference"),
                   None if span is None else (float(span[0]), float(span[1])), data.get("bins"),
                   dict(data.get("notes") or {}))


def read_selection(path: str | Path) -> Selection:
    """The selection in ``path``; FileNotFoundError saying to run `mnas proxy select` first."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no candidates file {path}: run `mnas proxy select --workdir "
                                f"{path.parent}` first")
    try:
        return Selection.from_json(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e}); restore it from its copy") from None


def write_selection(path: str | Path, selection: Selection) -> Path:
    """Write the selection atomically (a reader sees the old file or the new one)."""
    return write_atomic(path, json.dumps(selection.to_json(), indent=1) + "\n")
