"""Build a lookup table: measure every layer of a space setting as a one-layer model.

Resumable: every measurement is appended to the store as soon as it is taken, and a build first
reads what the store already holds for this device, so a killed build continues where it stopped
and re-measures nothing. A reference model is measured every `reference_every` layers; each
layer's `relative` is its median over the reference median measured just before it.
Conversion (CPU heavy) can run ahead in another process while the device measures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from latency.devices.base import Device
from latency.lut import LatencyTable
from latency.measurement import model_hash
from latency.protocol import MeasureProtocol
from latency.store import MeasurementRecord, MeasurementStore, new_session_id
from mnas_jax.space import LayerSpec

log = logging.getLogger(__name__)

# One-layer models are small and fast: fewer runs keep the build within minutes while the
# median stays stable (the table is re-checked against full-model measurements by the predictor).
LUT_PROTOCOL = MeasureProtocol(warmup_runs=3, min_runs=25, min_seconds=0.05, max_seconds=10.0,
                               max_cv=0.08, max_retries=1)

ExportLayer = Callable[[LayerSpec], bytes]


def stored_layer_entries(store: MeasurementStore, device_id: str) -> dict[str, tuple[float, float]]:
    """key -> (median ms, relative) of the newest layer measurement per key on this device."""
    out = {}
    for row in store.latest_per_key(kind="layer", device_id=device_id).values():
        rec = row.record
        if rec.key is not None and rec.relative is not None:
            out[rec.key] = (rec.median_ms, rec.relative)
    return out


def build_table(layers: Sequence[LayerSpec], *, space: str, setting: str, device: Device,
                store: MeasurementStore, export_layer: ExportLayer | Callable[[Sequence[LayerSpec]], Iterator[bytes]],
                reference_bytes: bytes, reference_name: str = "mobilenetv2",
                protocol: MeasureProtocol = LUT_PROTOCOL, reference_every: int = 40,
                progress: bool = True, source: str = "local", prefetch: bool = False,
                max_layers: int | None = None) -> LatencyTable:
    """Measure the layers the store lacks, then assemble the table from the store.

    `export_layer` maps one layer to .tflite bytes; with `prefetch=True` it must instead map a
    sequence of layers to an iterator of bytes in order (e.g. a converter running ahead in another
    process). `max_layers` stops after that many new measurements (for tests of resuming).
    """
    started = time.time()
    fingerprint = device.fingerprint()
    device_id = fingerprint.device_id
    session = new_session_id()
    done = stored_layer_entries(store, device_id)
    todo = [layer for layer in layers if layer.key not in done]
    if max_layers is not None:
        todo = todo[:max_layers]
    log.info("table %s/%s: %d layers, %d stored, %d to measure", space, setting, len(layers),
             len(layers) - len(todo), len(todo))
    ref_hash = model_hash(reference_bytes)

    def measure_reference() -> float:
        m = device.measure(reference_bytes, protocol)
        store.append(MeasurementRecord.from_measurement(
            m, model_hash=ref_hash, kind="reference", protocol=protocol, session=session,
            source=source, key=reference_name))
        return m.median_ms

    models = export_layer(todo) if prefetch else (export_layer(layer) for layer in todo)
    with _Progress(progress, len(todo), f"table {space}/{setting}") as advance:
        ref_ms = measure_reference() if todo else 0.0
        for i, (layer, model) in enumerate(zip(todo, models)):
            if i and i % reference_every == 0:
                ref_ms = measure_reference()
            m = device.measure(model, protocol)
            store.append(MeasurementRecord.from_measurement(
                m, model_hash=model_hash(model), kind="layer", protocol=protocol, session=session,
                source=source, key=layer.key, reference_ms=ref_ms, relative=m.median_ms / ref_ms,
                arch_spec=None))
            advance()
        if todo:
            measure_reference()
    return assemble_table(layers, store, space=space, setting=setting,
                          fingerprint=fingerprint.to_dict(), device_id=device_id,
                          reference_name=reference_name, build_seconds=time.time() - started)


def assemble_table(layers: Sequence[LayerSpec], store: MeasurementStore, *, space: str,
                   setting: str, fingerprint: dict[str, Any], device_id: str, reference_name: str,
                   build_seconds: float = 0.0) -> LatencyTable:
    """The table from the store's newest entry per layer; every layer must have one."""
    done = stored_layer_entries(store, device_id)
    missing = [layer.key for layer in layers if layer.key not in done]
    if missing:
        raise ValueError(f"{len(missing)} of {len(layers)} layers have no measurement on device "
                         f"{device_id} (first: {missing[0]}); run the build again to measure them")
    refs = [r.record.median_ms for r in store.measurements(kind="reference", device_id=device_id)
            if r.record.key == reference_name]
    refs.sort()
    ref_ms = refs[len(refs) // 2] if refs else float("nan")
    keys = [layer.key for layer in layers]
    return LatencyTable(space=space, setting=setting, fingerprint=fingerprint, device_id=device_id,
                        reference=reference_name, reference_ms=ref_ms,
                        entries_ms={k: done[k][0] for k in keys},
                        entries_relative={k: done[k][1] for k in keys},
                        build_seconds=build_seconds)


class _Progress:
    """A rich progress bar, or nothing."""

    def __init__(self, enabled: bool, total: int, title: str) -> None:
        self.enabled, self.total, self.title = enabled and total > 0, total, title

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self._p.__enter__()
        task = self._p.add_task(self.title, total=self.total)
        return lambda: self._p.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._p.__exit__(*exc)
