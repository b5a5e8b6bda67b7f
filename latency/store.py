"""Append-only measurement store: embedded SQLite (WAL) in the work directory.

Measurements are the expensive asset, so rows are never updated or deleted (triggers refuse
it), each append is its own transaction, and writers in other processes wait (busy timeout)
instead of failing. A process killed mid-write leaves every committed row readable.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from latency.measurement import Fingerprint, Measurement, canonical_json
from latency.protocol import MeasureProtocol
from latency.workdir import Workdir
from mnas_jax.files import write_atomic

SCHEMA_VERSION = 1
RECORD_KINDS = ("arch", "layer", "reference")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    device_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    arch_id TEXT,
    arch_spec TEXT,
    kind TEXT NOT NULL CHECK (kind IN {RECORD_KINDS!r}),
    key TEXT,
    protocol TEXT NOT NULL,
    median_ms REAL NOT NULL,
    min_ms REAL NOT NULL,
    iqr_ms REAL NOT NULL,
    cv REAL NOT NULL,
    runs INTEGER NOT NULL,
    warmup INTEGER NOT NULL,
    seconds REAL NOT NULL,
    retries INTEGER NOT NULL,
    reference_ms REAL,
    relative REAL,
    session TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_device_kind_key ON measurements (device_id, kind, key);
CREATE INDEX IF NOT EXISTS measurements_arch ON measurements (arch_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind);
"""
_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {OP} ON {table}
BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
"""

COLUMNS = ("id", "created_at", "device_id", "fingerprint", "model_hash", "arch_id", "arch_spec",
           "kind", "key", "protocol", "median_ms", "min_ms", "iqr_ms", "cv", "runs", "warmup",
           "seconds", "retries", "reference_ms", "relative", "session", "source")


def _schema_statements() -> list[str]:
    """Tables, indexes and append-only triggers, one statement each (no executescript: it
    would commit the schema transaction early)."""
    tables = [t.strip() for t in _SCHEMA.split(";") if t.strip()]
    triggers = [_APPEND_ONLY.format(table=t, op=op.lower(), OP=op).strip()
                for t in ("measurements", "events") for op in ("UPDATE", "DELETE")]
    return tables + triggers


class StoreSchemaError(ValueError):
    """The database was written by a newer schema than this code reads."""


def utc_now() -> str:
    """The current UTC time as ISO 8601 text with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_session_id() -> str:
    """A run id: sortable UTC time plus random suffix, e.g. 20250101T120000Z-3f9a1c."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class MeasurementRecord:
    """One row to append: a measurement with its provenance."""

    fingerprint: Fingerprint
    model_hash: str
    kind: str
    protocol: MeasureProtocol
    median_ms: float
    min_ms: float
    iqr_ms: float
    cv: float
    runs: int
    warmup: int
    seconds: float
    retries: int
    session: str
    source: str
    arch_id: str | None = None
    arch_spec: str | None = None
    key: str | None = None
    reference_ms: float | None = None
    relative: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in RECORD_KINDS:
            raise ValueError(f"record kind {self.kind!r} is not one of {RECORD_KINDS}")
        if self.arch_spec is not None:
            try:
                json.loads(self.arch_spec)
            except ValueError:
                raise ValueError(f"arch_spec is not JSON: {self.arch_spec[:80]!r}") from None

    @property
    def device_id(self) -> str:
        """The id of the device the record was measured on."""
        return self.fingerprint.device_id

    @property
    def measurement(self) -> Measurement:
        """The record's timing statistics as a Measurement."""
        return Measurement(self.median_ms, self.min_ms, self.iqr_ms, self.cv, self.runs,
                           self.warmup, self.seconds, self.fingerprint, self.retries)

    @classmethod
    def from_measurement(cls, m: Measurement, *, model_hash: str, kind: str,
                         protocol: MeasureProtocol, session: str, source: str,
                         **provenance: Any) -> MeasurementRecord:
        """provenance: arch_id, arch_spec (JSON text), key, reference_ms, relative."""
        return cls(fingerprint=m.fingerprint, model_hash=model_hash, kind=kind, protocol=protocol,
                   median_ms=m.median_ms, min_ms=m.min_ms, iqr_ms=m.iqr_ms, cv=m.cv, runs=m.runs,
                   warmup=m.warmup, seconds=m.seconds, retries=m.retries, session=session,
                   source=source, **provenance)


@dataclass(frozen=True)
class StoredMeasurement:
    """A measurement record with its row id and insertion time."""

    id: int
    created_at: str
    record: MeasurementRecord


@dataclass(frozen=True)
class Event:
    """A free-form event row: kind and JSON payload."""

    id: int
    created_at: str
    kind: str
    payload: dict[str, Any]


class MeasurementStore:
    """One SQLite file; open one per process (connections are not shared across threads)."""

    def __init__(self, path: str | Path, create: bool = True, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no measurement store at {str(self.path)!r}; "
                                    "measure something first or check --workdir")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        try:
            self._init(busy_timeout_s)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def in_workdir(cls, workdir: str | Path | Workdir, create: bool = True) -> MeasurementStore:
        """The store of a work directory (its default database file)."""
        return cls(Workdir.of(workdir).store, create=create)

    def _init(self, busy_timeout_s: float) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"{self.path}: cannot switch to WAL (mode {mode})")
        c.execute("PRAGMA synchronous = FULL")
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("CREATE TABLE IF NOT EXISTS meta "
                      "(name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = c.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"{self.path} has schema version {row[0]}, this mnas-jax reads up to "
                    f"{SCHEMA_VERSION}; upgrade mnas-jax to use this work directory")
            for statement in _schema_statements():
                c.execute(statement)
            if row is None:
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> MeasurementStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def append(self, record: MeasurementRecord) -> int:
        """Append one measurement (its own transaction); returns its id."""
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[MeasurementRecord]) -> list[int]:
        """Append measurements in one transaction: all of them are stored or none (a pass of an
        interleaved measurement is never half stored); returns their ids."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            ids = [self._insert(r) for r in records]
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return ids

    def _insert(self, r: MeasurementRecord) -> int:
        values = (utc_now(), r.device_id, r.fingerprint.to_json(), r.model_hash, r.arch_id,
                  r.arch_spec, r.kind, r.key, canonical_json(r.protocol.to_dict()), r.median_ms,
                  r.min_ms, r.iqr_ms, r.cv, r.runs, r.warmup, r.seconds, r.retries,
                  r.reference_ms, r.relative, r.session, r.source)
        cur = self._conn.execute(
            f"INSERT INTO measurements ({', '.join(COLUMNS[1:])}) "
            f"VALUES ({', '.join('?' * len(values))})", values)
        return int(cur.lastrowid)

    def append_event(self, kind: str, payload: Mapping[str, Any]) -> int:
        """Append a free-form event (search progress, calibration errors, ...)."""
        if not kind:
            raise ValueError("event kind must be a non-empty string")
        cur = self._conn.execute("INSERT INTO events (created_at, kind, payload) VALUES (?, ?, ?)",
                                 (utc_now(), kind, canonical_json(dict(payload))))
        return int(cur.lastrowid)

    # -- reading ---------------------------------------------------------------------------
    def measurements(self, *, arch_id: str | None = None, device_id: str | None = None,
                     kind: str | None = None, key: str | None = None,
                     session: str | None = None) -> list[StoredMeasurement]:
        """Rows matching every given filter, oldest first."""
        filters = {"arch_id": arch_id, "device_id": device_id, "kind": kind, "key": key,
                   "session": session}
        where = [(f"{k} = ?", v) for k, v in filters.items() if v is not None]
        sql = f"SELECT {', '.join(COLUMNS)} FROM measurements"
        if where:
            sql += " WHERE " + " AND ".join(w for w, _ in where)
        rows = self._conn.execute(sql + " ORDER BY id", [v for _, v in where]).fetchall()
        return [_stored(row) for row in rows]

    def events(self, kind: str | None = None) -> list[Event]:
        """Events in insertion order, optionally of one kind."""
        sql, args = "SELECT id, created_at, kind, payload FROM events", []
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", [kind]
        return [Event(i, t, k, json.loads(p))
                for i, t, k, p in self._conn.execute(sql + " ORDER BY id", args).fetchall()]

    def count(self) -> int:
        """Number of stored measurements."""
        return int(self._conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def integrity_check(self) -> str:
        """SQLite's integrity check result ('ok' when the file is sound)."""
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def export_csv(self, path: str | Path) -> int:
        """Write every measurement to CSV atomically (temp file + rename); returns the row count."""
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        n = 0
        for row in self._conn.execute(f"SELECT {', '.join(COLUMNS)} FROM measurements ORDER BY id"):
            writer.writerow(row)
            n += 1
        write_atomic(path, text.getvalue())
        return n


def _stored(row: tuple) -> StoredMeasurement:
    d = dict(zip(COLUMNS, row))
    fields = {f.name for f in dataclasses.fields(MeasurementRecord)}
    values = {k: v for k, v in d.items() if k in fields}
    values["fingerprint"] = Fingerprint.from_json(d["fingerprint"])
    values["protocol"] = MeasureProtocol.from_dict(json.loads(d["protocol"]))
    return StoredMeasurement(d["id"], d["created_at"], MeasurementRecord(**values))
