"""Measuring through the store's cache: what a device's store and work directory already hold
(reference-relative latencies, lookup tables) is reused, the rest is measured by the session.

Latencies here are relative to the reference model measured beside each candidate: the unit
that stays put while the device drifts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from latency.lut import LatencyTable
from latency.lut_build import TABLE_PASSES, build_table
from latency.measurement import model_hash
from latency.reference import RECENT, stored_reference_ms
from latency.session import REFERENCE, DeviceSession
from latency.store import MeasurementRecord, MeasurementStore, new_session_id
from latency.workdir import Workdir
from mnas_jax.space import ArchSpec, SearchSpace


def stored_log_relative(store: MeasurementStore, device_id: str) -> dict[str, list[float]]:
    """arch_id -> log of every reference-relative latency stored for this device, in order."""
    logs: dict[str, list[float]] = {}
    for row in store.measurements(kind="arch", device_id=device_id):
        rec = row.record
        if rec.arch_id is not None and rec.relative is not None and rec.relative > 0:
            logs.setdefault(rec.arch_id, []).append(float(np.log(rec.relative)))
    return logs


def stored_relative(store: MeasurementStore, device_id: str) -> dict[str, float]:
    """arch_id -> median of every reference-relative latency stored for this device (each
    round of each measurement is a row; more rows, less noise; the median, as
    latency.interleaved.combine_rounds, so one disturbed round does not move it)."""
    return {k: float(np.median(np.exp(v))) for k, v in stored_log_relative(store, device_id).items()}


def measure_relative(session: DeviceSession, specs: Sequence[ArchSpec], *, fresh: bool = False,
                     progress: bool = True) -> np.ndarray:
    """Relative latency per spec; measures only what the store lacks unless `fresh`."""
    device_id = session.device.fingerprint().device_id
    have = {} if fresh else stored_relative(session.store, device_id)
    todo = [s for s in specs if s.arch_id not in have]
    if todo:
        result = session.measure_archs(todo, progress=progress)
        have.update({c.key: c.relative for c in result.candidates})
    return np.array([have[s.arch_id] for s in specs])


def reference_hash(session: DeviceSession, setting: str, name: str = REFERENCE) -> str:
    """The key of a setting's reference times: the hash of its converted reference model."""
    return model_hash(session.reference_bytes(setting, name))


def reference_ms(session: DeviceSession, setting: str, name: str = REFERENCE, *,
                 last: int | None = RECENT) -> float:
    """The recent median ms of `setting`'s reference model on the session's device (its `last`
    stored measurements, of this setting only: latency.reference); a store that holds none
    (a fresh work directory) gets the session's `rounds` measurements of it first."""
    data = session.reference_bytes(setting, name)
    key = model_hash(data)
    device_id = session.device.fingerprint().device_id
    ms = stored_reference_ms(session.store, device_id, key, last=last)
    if ms is None:
        sid = new_session_id()
        for _ in range(max(1, session.rounds)):
            m = session.device.measure(data, session.protocol)
            session.store.append(MeasurementRecord.from_measurement(
                m, model_hash=key, kind="reference", protocol=session.protocol, session=sid,
                source=session.source, key=name))
        ms = stored_reference_ms(session.store, device_id, key, last=last)
    assert ms is not None
    return ms


def build_space_table(session: DeviceSession, space: SearchSpace, *, passes: int = TABLE_PASSES,
                      progress: bool = True) -> LatencyTable:
    """Measure what the store lacks of every layer of `space` (each `passes` times) on the
    session's device, converting ahead in the session's exporter; resumable."""
    if space.reference_name is None:
        raise ValueError(f"space {space.name!r} ({space.setting}) has no reference model to "
                         "measure beside its layers, so it has no device lookup table")
    return build_table(space.table_layers(), space=space.name, setting=space.setting,
                       device=session.device, store=session.store,
                       export_layer=session.exporter.layers, prefetch=True,
                       reference_bytes=session.reference_bytes(space.setting, space.reference_name),
                       reference_name=space.reference_name, source=session.source,
                       progress=progress, passes=passes)


def ensure_table(session: DeviceSession, workdir: str | Path | Workdir, space: SearchSpace,
                 progress: bool = True, passes: int = TABLE_PASSES) -> LatencyTable:
    """The device's table for the space: loaded if built, else built (resumable) with each
    layer measured `passes` times and saved in the work directory."""
    device_id = session.device.fingerprint().device_id
    path = Workdir.of(workdir).table(space.name, space.setting, device_id)
    if path.exists():
        return LatencyTable.load(path, space=space.name, setting=space.setting, device_id=device_id)
    table = build_space_table(session, space, passes=passes, progress=progress)
    table.save(path)
    return table
