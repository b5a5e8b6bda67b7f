"""The SQLite measurement store: round trips, append-only, CSV export, crashes, two writers."""

from __future__ import annotations

import argparse
import csv
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latency.measurement import Fingerprint, Measurement
from latency.protocol import MeasureProtocol
from latency.store import (COLUMNS, MeasurementRecord, MeasurementStore,
                           StoreSchemaError, new_session_id)
from latency.workdir import Workdir
from mnas_jax.cli import device_cmds

ROOT = Path(__file__).resolve().parents[1]
FP = Fingerprint("local", "AMD EPYC", "litert", "2.3.0", 1, "xnnpack", {"host": "vm"})
FP2 = Fingerprint("adb", "SDM835", "tflite-benchmark_model", "sha256:abc", 1, "xnnpack",
                  {"serial": "R58"})


def record(i: int, *, kind: str = "layer", fp: Fingerprint = FP, key: str | None = None,
           **extra) -> MeasurementRecord:
    m = Measurement(1.0 + i, 0.9 + i, 0.1, 0.01, 50, 5, 0.1, fp, 0)
    return MeasurementRecord.from_measurement(
        m, model_hash=f"{i:064x}", kind=kind, protocol=MeasureProtocol(), session="s1",
        source="test", key=key if key is not None else f"k{i % 3}", **extra)


@pytest.fixture
def store(tmp_path):
    with MeasurementStore.in_workdir(tmp_path) as s:
        yield s


def test_round_trip_and_queries(store, tmp_path):
    assert (Workdir(tmp_path).store).is_file()
    ids = [store.append(record(i)) for i in range(6)]
    arch = record(10, kind="arch", fp=FP2, key="a1", arch_id="a1", arch_spec='{"blocks": []}',
                  reference_ms=4.0, relative=2.75)
    ids.append(store.append(arch))
    assert ids == sorted(ids) and len(set(ids)) == 7
    rows = store.measurements()
    assert [r.id for r in rows] == ids
    assert rows[-1].record == arch and rows[0].record == record(0)
    assert rows[-1].record.measurement.median_ms == 11.0
    assert [r.record for r in store.measurements(arch_id="a1")] == [arch]
    assert len(store.measurements(device_id=FP.device_id)) == 6
    assert len(store.measurements(kind="layer", key="k1")) == 2


def test_events(store):
    assert store.append_event("calibration", {"step": 1, "rmspe": 0.04}) == 1
    store.append_event("search", {"step": 2})
    assert [e.payload for e in store.events("calibration")] == [{"step": 1, "rmspe": 0.04}]
    assert len(store.events()) == 2
    with pytest.raises(ValueError):
        store.append_event("", {})


def test_rows_cannot_be_changed(store, tmp_path):
    store.append(record(0))
    store.append_event("x", {})
    raw = sqlite3.connect(Workdir(tmp_path).store)
    for sql in ("UPDATE measurements SET median_ms = 0", "DELETE FROM measurements",
                "UPDATE events SET kind = 'y'", "DELETE FROM events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(sql)
    raw.close()
    assert store.measurements()[0].record.median_ms == 1.0


def test_bad_records_are_refused():
    with pytest.raises(ValueError, match="kind 'model'"):
        record(0, kind="model")
    with pytest.raises(ValueError, match="arch_spec is not JSON"):
        record(0, arch_spec="{not json")


def test_newer_schema_is_refused(tmp_path):
    MeasurementStore.in_workdir(tmp_path).close()
    raw = sqlite3.connect(Workdir(tmp_path).store)
    raw.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(StoreSchemaError, match="schema version 99.*upgrade mnas-jax"):
        MeasurementStore.in_workdir(tmp_path)


def test_wal_mode(store, tmp_path):
    raw = sqlite3.connect(Workdir(tmp_path).store)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_export_csv(store, tmp_path):
    for i in range(4):
        store.append(record(i))
    out = tmp_path / "out" / "m.csv"
    assert store.export_csv(out) == 4
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 4
    assert rows[2]["median_ms"] == "3.0" and rows[0]["device_id"] == FP.device_id
    assert Fingerprint.from_json(rows[0]["fingerprint"]) == FP
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.csv"]  # no temp file left


def test_cli_store_export(store, tmp_path, capsys):
    store.append(record(0))
    parser = argparse.ArgumentParser(prog="mnas")
    device_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["store", "export", "--workdir", str(tmp_path), "-o",
                              str(tmp_path / "x.csv")])
    assert args.func(args) == 0
    assert "wrote 1 measurements" in capsys.readouterr().out
    args = parser.parse_args(["store", "export", "--workdir", str(tmp_path / "none"),
                              "-o", "y.csv"])
    with pytest.raises(FileNotFoundError, match="no measurement store"):
        args.func(args)
    assert not (tmp_path / "none").exists()


def test_session_ids_differ():
    assert new_session_id() != new_session_id()


# -- crashes and concurrent writers ---------------------------------------------------------
WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from latency.measurement import Fingerprint, Measurement
from latency.protocol import MeasureProtocol
from latency.store import MeasurementRecord, MeasurementStore
workdir, name, n, go = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
fp = Fingerprint("local", "cpu", "litert", "2.3.0", 1, "xnnpack", {"host": name})
store = MeasurementStore.in_workdir(workdir)
while not go.exists():
    time.sleep(0.005)
i = 0
while n < 0 or i < n:
    m = Measurement(1.0, 1.0, 0.0, 0.0, 50, 5, 0.05, fp, 0)
    rid = store.append(MeasurementRecord.from_measurement(
        m, model_hash="%064x" % i, kind="layer", protocol=MeasureProtocol(), session=name,
        source="test", key="%s-%d" % (name, i)))
    print(rid, flush=True)
    i += 1
"""


def writer(tmp_path: Path, name: str, n: int, go: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(tmp_path), name, str(n),
                             str(go)], stdout=subprocess.PIPE, text=True)


def test_sigkill_while_writing_keeps_every_committed_record(tmp_path):
    go = tmp_path / "go"
    go.touch()
    child = writer(tmp_path, "victim", -1, go)
    reported = []
    for line in child.stdout:
        reported.append(int(line))
        if len(reported) >= 150:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    reported += [int(line) for line in child.stdout.read().split()]
    assert child.returncode == -signal.SIGKILL
    with MeasurementStore.in_workdir(tmp_path) as store:
        assert store.integrity_check() == "ok"
        stored = {r.id for r in store.measurements(session="victim")}
        assert set(reported) <= stored
        assert len(stored) >= len(reported) >= 150
        assert store.append(record(0)) > max(stored)  # still writable


def test_two_writers_lose_nothing(tmp_path):
    n = 150
    go = tmp_path / "go"
    children = [writer(tmp_path, name, n, go) for name in ("a", "b")]  # both create the schema
    time.sleep(0.5)  # both have opened the store and wait for the start signal
    go.touch()
    ids = {name: [int(x) for x in c.communicate(timeout=60)[0].split()]
           for name, c in zip("ab", children)}
    assert all(c.returncode == 0 for c in children)
    with MeasurementStore.in_workdir(tmp_path) as store:
        rows = store.measurements()
        assert len(rows) == 2 * n and store.count() == 2 * n
        assert {r.id for r in rows} == set(ids["a"]) | set(ids["b"])
        for name in "ab":
            assert {r.record.key for r in store.measurements(session=name)} == {
                f"{name}-{i}" for i in range(n)}
