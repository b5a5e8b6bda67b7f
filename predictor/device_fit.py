"""Predictors of a real device: sample architectures, measure what the store lacks (drift
controlled, reference-relative), fit on the lookup table's features, evaluate on fresh archs.

Latencies here are relative to the reference model (MobileNetV2 of the setting) measured beside
each candidate: the unit that stays put while the device drifts. Milliseconds follow by
multiplying with a reference median measured on the device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latency.lut import LatencyTable
from latency.lut_build import TABLE_PASSES, build_table
from latency.lut_space import space_layers
from latency.session import DeviceSession, setting_of
from latency.store import MeasurementStore
from mnas_jax.space import ArchSpec, get_space, sample_tokens
from predictor.baselines import Inputs, fit_baselines
from predictor.metrics import report
from predictor.model import LatencyPredictor, fit_predictor, ridge


def table_file(workdir: str | Path, space: str, setting: str, device_id: str) -> Path:
    return Path(workdir) / "tables" / f"{space}-{setting}-{device_id}.json"


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
    latency.drift.combine_rounds, so one disturbed round does not move it)."""
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


def fit_on_device(specs: Sequence[ArchSpec], relative: Sequence[float],
                  table: LatencyTable | None, *, fingerprint: dict[str, Any], seed: int = 0,
                  space_name: str = "mnasnet") -> LatencyPredictor:
    """Fit on reference-relative latencies; with a table its relative entries are features."""
    setting = setting_of(specs[0])
    info = None if table is None else {"device_id": table.device_id, "space": table.space,
                                       "setting": table.setting, "unit": "relative"}
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


# Candidate inputs besides log pred_A, chosen per transfer by leave-one-out CV on the k points:
# a device with another kernel library (e.g. XNNPACK off) weighs MACs, and depthwise MACs,
# differently from device A; a device with another thread count mostly rescales.
TRANSFER_COLUMNS: tuple[tuple[str, ...], ...] = ((), ("macs",), ("macs", "macs_dw"))
TRANSFER_RIDGE = 0.1  # on standardized inputs


def _transfer_inputs(base: LatencyPredictor, specs: Sequence[ArchSpec],
                     columns: Sequence[str]) -> np.ndarray:
    """[log pred_A, log(column + 1) ...] per spec; features are computed once."""
    x = base.features(list(specs))
    a = np.log(np.asarray(base.predict(x)[0]))[:, None]
    if not columns:
        return a
    names = list(base.feature_names)
    return np.concatenate([a, np.log(x[:, [names.index(c) for c in columns]] + 1.0)], axis=1)


class TransferPredictor:
    """Device B from device A's predictor and k measurements on B: log y_B is a ridge-regressed
    linear function of log pred_A(x) and, when leave-one-out CV on the k points prefers it, of
    log MACs and log depthwise MACs (TRANSFER_COLUMNS); below 5 points a scale only. The LOO
    residual spread is the uncertainty."""

    unit = "relative"

    def __init__(self, base: LatencyPredictor, columns: tuple[str, ...], weights: tuple[float, ...],
                 mean: tuple[float, ...], scale: tuple[float, ...], intercept: float,
                 resid_sd: float, fingerprint: dict[str, Any] | None = None) -> None:
        self.base, self.columns, self.weights = base, columns, weights
        self.mean, self.scale, self.intercept = mean, scale, intercept
        self.resid_sd, self.fingerprint = resid_sd, fingerprint

    @property
    def coef(self) -> dict[str, Any]:
        return {"columns": ["log_pred_A", *self.columns], "weights": list(self.weights),
                "intercept": self.intercept}

    @classmethod
    def fit(cls, base: LatencyPredictor, specs: Sequence[ArchSpec], y: Sequence[float],
            fingerprint: dict[str, Any] | None = None) -> TransferPredictor:
        if len(specs) < 2:
            raise ValueError(f"transfer needs >= 2 measurements on the new device, got {len(specs)}")
        b = np.log(np.asarray(y, float))
        if len(specs) < 5:  # too few points for a slope: scale only
            a = _transfer_inputs(base, specs, ())[:, 0]
            c = float(np.mean(b - a))
            sd = float(np.std(b - a - c, ddof=1)) if len(b) > 2 else 0.0
            return cls(base, (), (1.0,), (0.0,), (1.0,), c, sd, fingerprint)  # y = e^c pred_A
        best: tuple[float, tuple[str, ...]] | None = None
        for columns in TRANSFER_COLUMNS:
            if len(columns) + 1 > len(b) - 2:
                continue
            z = _transfer_inputs(base, specs, columns)
            loo = []
            for i in range(len(b)):
                keep = np.arange(len(b)) != i
                w, mu, sd, c = ridge(z[keep], b[keep], TRANSFER_RIDGE)
                loo.append(b[i] - (c + ((z[i] - mu) / sd) @ w))
            score = float(np.sqrt(np.mean(np.square(loo))))
            if best is None or score < best[0]:
                best = (score, columns)
        assert best is not None
        z = _transfer_inputs(base, specs, best[1])
        w, mu, sd, c = ridge(z, b, TRANSFER_RIDGE)
        return cls(base, best[1], tuple(map(float, w)), tuple(map(float, mu)),
                   tuple(map(float, sd)), c, best[0], fingerprint)

    def predict(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        z = _transfer_inputs(self.base, specs, self.columns)
        value = np.exp(self.intercept + ((z - np.asarray(self.mean)) / np.asarray(self.scale))
                       @ np.asarray(self.weights))
        return value, value * self.resid_sd

    def save(self, directory: str | Path, base_dir: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "transfer.json").write_text(json.dumps({
            "kind": "transfer", "base": str(Path(base_dir).resolve()), "columns": self.columns,
            "weights": self.weights, "mean": self.mean, "scale": self.scale,
            "intercept": self.intercept, "resid_sd": self.resid_sd,
            "fingerprint": self.fingerprint}, indent=1))
        return directory
