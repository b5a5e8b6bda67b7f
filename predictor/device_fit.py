"""Predictors of a real device: sample architectures, measure what the store lacks (drift
controlled, reference-relative), fit on the lookup table's features, evaluate on fresh archs.

Latencies here are relative to the reference model (MobileNetV2 of the setting) measured beside
each candidate: the unit that stays put while the device drifts. Milliseconds follow by
multiplying with a reference median measured on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latency.lut import LatencyTable, table_file
from latency.lut_build import TABLE_PASSES, build_table
from latency.lut_space import space_layers
from latency.session import DeviceSession, setting_of
from latency.store import MeasurementStore
from mnas_jax.space import ArchSpec, get_space, sample_tokens
from predictor.baselines import Inputs, fit_baselines
from predictor.metrics import report
from predictor.model import LatencyPredictor, fit_predictor


def predictor_dir(workdir: str | Path, space: str, setting: str, device_id: str) -> Path:
    return Path(workdir) / "predictors" / f"{space}-{setting}-{device_id}"


def ensure_table(session: DeviceSession, workdir: str | Path, space: str, setting: str,
                 progress: bool = True, passes: int = TABLE_PASSES) -> LatencyTable:
    """The device's table for the setting: loaded if built, else built (resumable) with each
    layer measured `passes` times."""
    device_id = session.device.fingerprint().device_id
    path = table_file(workdir, space, setting, device_id)
    if path.exists():
        return LatencyTable.load(path, space=space, setting=setting, device_id=device_id)
    table = build_table(space_layers(space, setting), space=space, setting=setting,
                        device=session.device, store=session.store,
                        export_layer=session.exporter.layers, prefetch=True,
                        reference_bytes=session.reference_bytes(setting), source=session.source,
                        progress=progress, passes=passes)
    table.save(path)
    return table


def sample_specs(space_name: str, setting: str, n: int, seed: int,
                 exclude: set[str] = frozenset()) -> list[ArchSpec]:
    """n distinct seeded samples whose ids are not in `exclude`."""
    space = get_space(space_name, setting)
    out: dict[str, ArchSpec] = {}
    for tokens in sample_tokens(space.choices, seed, 4 * n + 16):
        spec = space.decode(tokens)
        if spec.arch_id not in exclude:
            out.setdefault(spec.arch_id, spec)
        if len(out) == n:
            break
    return list(out.values())


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


def table_info_of(table: LatencyTable, path: str | Path | None = None) -> dict[str, Any]:
    """What a predictor records of its table so that loading finds it again and checks it is
    the same one (content hash): device, space, setting, unit of the entries used, file path."""
    info = {"device_id": table.device_id, "space": table.space, "setting": table.setting,
            "unit": "relative", "sha256": table.to_dict()["sha256"]}
    return info if path is None else info | {"path": str(Path(path).resolve())}


def fit_on_device(specs: Sequence[ArchSpec], relative: Sequence[float],
                  table: LatencyTable | None, *, fingerprint: dict[str, Any], seed: int = 0,
                  space_name: str = "mnasnet", table_path: str | Path | None = None
                  ) -> LatencyPredictor:
    """Fit on reference-relative latencies; with a table its relative entries are features
    (`table_path`, where the table file lives, is recorded for loading it again)."""
    setting = setting_of(specs[0])
    info = None if table is None else table_info_of(table, table_path)
    return fit_predictor(list(specs), relative, space_name=space_name, setting=setting,
                         table=None if table is None else table.entries_relative,
                         ids=[s.arch_id for s in specs], unit="relative",
                         device_fingerprint=fingerprint, table_info=info, seed=seed)


def evaluate(pred: LatencyPredictor, specs: Sequence[ArchSpec], measured: Sequence[float]
             ) -> dict[str, Any]:
    """Predictor and every baseline (fitted on the predictor's training data) on fresh archs."""
    space = get_space(pred.space, pred.setting)
    y = np.asarray(measured, float)
    value, unc = pred.predict(list(specs))
    test = Inputs(pred.features(list(specs)), pred.feature_names,
                  np.array([space.encode(s) for s in specs]), tuple(space.choices))
    train = Inputs(pred.train_x, pred.feature_names)
    methods = {"predictor": report(value, y)}
    predictions = {"predictor": np.asarray(value)}
    for name, base in fit_baselines(train, pred.train_y).items():
        predictions[name] = np.asarray(base.predict(test))
        methods[name] = report(predictions[name], y)
    return {"methods": methods, "n_test": len(y), "n_train": int(len(pred.train_y)),
            "coverage_1sd": float(np.mean(np.abs(np.asarray(value) - y) <= np.asarray(unc))),
            "predictions": {k: v.tolist() for k, v in predictions.items()},
            "measured": y.tolist(), "arch_ids": [s.arch_id for s in specs]}
