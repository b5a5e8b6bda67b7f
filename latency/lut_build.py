"""Build a lookup table: measure every layer of a space setting as a one-layer model.

Resumable: every measurement is appended to the store as soon as it is taken, and a build first
reads what the store already holds for this device, so a killed build continues where it stopped
and re-measures nothing. A reference model is measured every `reference_every` layers.

An entry is a layer's fastest run (`min_ms`) over the reference's, and the reference's is the
median over the build session's reference measurements nearest to the layer (`REFERENCE_WINDOW`
on each side), not the single one taken just before it. One reference measurement scatters by
several percent here and a machine hiccup can double it, and every layer after it would inherit
that error: the nearby median made the table-times-scale baseline much more accurate, and the
predictor's training-set CV preferred fastest runs to medians (a hiccup only ever slows a run)
for every window tried. With `passes` > 1 every layer is measured again in a later pass (odd
passes in reverse order, so slow drift cancels) and the entry is the geometric mean of its
passes: two passes of the same layer hours apart differ by a few percent, and the CV preferred
their mean to their minimum or to either pass alone. The numbers:
benchmarks/reports/measured_earlier.md.
Conversion (CPU heavy) can run ahead in another process while the device measures.
"""

from __future__ import annotations

import bisect
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from latency.devices.base import Device
from latency.lut import LatencyTable
from latency.measurement import model_hash
from latency.protocol import MeasureProtocol
from latency.reference import stored_reference_ms
from latency.store import MeasurementRecord, MeasurementStore, new_session_id
from mnas_jax.progress import Progress
from mnas_jax.space import LayerSpec

log = logging.getLogger(__name__)

# One-layer models are small and fast: fewer runs keep the build within minutes while the
# median stays stable (the table is re-checked against full-model measurements by the predictor).
LUT_PROTOCOL = MeasureProtocol(warmup_runs=3, min_runs=25, min_seconds=0.05, max_seconds=10.0,
                               max_cv=0.08, max_retries=1)

ExportLayer = Callable[[LayerSpec], bytes]


REFERENCE_WINDOW = 6  # reference measurements on each side of a layer (~500 layers)
TABLE_PASSES = 2  # the default number of measurements per layer of a whole-space build


def _local_references(store: MeasurementStore, device_id: str, window: int
                      ) -> Callable[[int, str, float], float]:
    """(row id, session, fallback) -> median of the fastest runs of the session's references
    nearest the row."""
    by_session: dict[str, tuple[list[int], list[float]]] = {}
    for row in store.measurements(kind="reference", device_id=device_id):
        ids, ms = by_session.setdefault(row.record.session, ([], []))
        ids.append(row.id)
        ms.append(row.record.min_ms)

    def local(row_id: int, session: str, fallback: float) -> float:
        if session not in by_session:
            return fallback
        ids, ms = by_session[session]
        j = bisect.bisect_left(ids, row_id)
        return statistics.median(ms[max(0, j - window):j + window])

    return local


def stored_layer_entries(store: MeasurementStore, device_id: str,
                         window: int = REFERENCE_WINDOW) -> dict[str, tuple[float, float, int]]:
    """key -> (ms, relative, passes) over every stored layer measurement of this device: the
    geometric means over passes of the fastest run and of the fastest run over the local
    reference (module doc)."""
    local = _local_references(store, device_id, window)
    logs: dict[str, list[tuple[float, float]]] = {}
    for row in store.measurements(kind="layer", device_id=device_id):
        rec = row.record
        if rec.key is None or rec.reference_ms is None:
            continue
        rel = rec.min_ms / local(row.id, rec.session, rec.reference_ms)
        logs.setdefault(rec.key, []).append((math.log(rec.min_ms), math.log(rel)))
    return {key: (math.exp(statistics.fmean(m for m, _ in v)),
                  math.exp(statistics.fmean(r for _, r in v)), len(v)) for key, v in logs.items()}


def build_table(layers: Sequence[LayerSpec], *, space: str, setting: str, device: Device,
                store: MeasurementStore, export_layer: ExportLayer | Callable[[Sequence[LayerSpec]], Iterator[bytes]],
                reference_bytes: bytes, reference_name: str = "mobilenetv2",
                protocol: MeasureProtocol = LUT_PROTOCOL, reference_every: int = 40,
                progress: bool = True, source: str = "local", prefetch: bool = False,
                max_layers: int | None = None, passes: int = 1) -> LatencyTable:
    """Measure what the store lacks (each layer `passes` times), then assemble the table.

    `export_layer` maps one layer to .tflite bytes; with `prefetch=True` it must instead map a
    sequence of layers to an iterator of bytes in order (e.g. a converter running ahead in another
    process). `max_layers` stops after that many new measurements (for tests of resuming).
    """
    if passes < 1:
        raise ValueError(f"passes={passes!r}: measure every layer at least once (passes >= 1)")
    started = time.time()
    fingerprint = device.fingerprint()
    device_id = fingerprint.device_id
    session = new_session_id()
    done = {k: v[2] for k, v in stored_layer_entries(store, device_id).items()}
    # pass p measures the layers stored fewer than p + 1 times; odd passes run in reverse order
    todo = [layer for p in range(passes)
            for layer in (layers if p % 2 == 0 else layers[::-1]) if done.get(layer.key, 0) <= p]
    if max_layers is not None:
        todo = todo[:max_layers]
    log.info("table %s/%s: %d layers x %d passes, %d measurements to take", space, setting,
             len(layers), passes, len(todo))
    ref_hash = model_hash(reference_bytes)

    def measure_reference() -> float:
        m = device.measure(reference_bytes, protocol)
        store.append(MeasurementRecord.from_measurement(
            m, model_hash=ref_hash, kind="reference", protocol=protocol, session=session,
            source=source, key=reference_name))
        return m.median_ms

    models = export_layer(todo) if prefetch else (export_layer(layer) for layer in todo)
    title = f"table {space}/{setting}" + (f" ({passes} passes)" if passes > 1 else "")
    with Progress(title, len(todo), enabled=progress) as bar:
        ref_ms = measure_reference() if todo else 0.0
        for i, (layer, model) in enumerate(zip(todo, models)):
            if i and i % reference_every == 0:
                ref_ms = measure_reference()
            m = device.measure(model, protocol)
            store.append(MeasurementRecord.from_measurement(
                m, model_hash=model_hash(model), kind="layer", protocol=protocol, session=session,
                source=source, key=layer.key, reference_ms=ref_ms, relative=m.median_ms / ref_ms,
                arch_spec=None))
            bar.advance()
        if todo:
            measure_reference()
    return assemble_table(layers, store, space=space, setting=setting,
                          fingerprint=fingerprint.to_dict(), device_id=device_id,
                          reference_name=reference_name, reference_hash=ref_hash,
                          build_seconds=time.time() - started)


def assemble_table(layers: Sequence[LayerSpec], store: MeasurementStore, *, space: str,
                   setting: str, fingerprint: dict[str, Any], device_id: str, reference_name: str,
                   reference_hash: str, build_seconds: float = 0.0) -> LatencyTable:
    """The table from the store's measurements (see `stored_layer_entries`); every layer must
    have one. Its `reference_ms` is the median of every stored measurement of this setting's
    reference model (`reference_hash`; latency.reference), never of another setting's."""
    done = stored_layer_entries(store, device_id)
    missing = [layer.key for layer in layers if layer.key not in done]
    if missing:
        raise ValueError(f"{len(missing)} of {len(layers)} layers have no measurement on device "
                         f"{device_id} (first: {missing[0]}); run the build again to measure them")
    ref_ms = stored_reference_ms(store, device_id, reference_hash, last=None)
    keys = [layer.key for layer in layers]
    return LatencyTable(space=space, setting=setting, fingerprint=fingerprint, device_id=device_id,
                        reference=reference_name,
                        reference_ms=float("nan") if ref_ms is None else ref_ms,
                        entries_ms={k: done[k][0] for k in keys},
                        entries_relative={k: done[k][1] for k in keys},
                        build_seconds=build_seconds)
