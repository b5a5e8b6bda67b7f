"""Predictors of a real device's reference-relative latencies: fit on measured architectures
(with the device table's relative entries as features), evaluate on fresh ones beside every
baseline.

Latencies are relative to the reference model measured beside each candidate (the unit that
stays put while the device drifts); milliseconds follow by multiplying with a reference median
measured on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latency.lut import LatencyTable
from latency.session import setting_of
from mnas_jax.space import ArchSpec, SearchSpace, get_space
from predictor.baselines import Inputs, fit_baselines
from predictor.io import table_info_of
from predictor.metrics import report
from predictor.model import LatencyPredictor, fit_predictor


def fit_on_device(specs: Sequence[ArchSpec], relative: Sequence[float],
                  table: LatencyTable | None, *, fingerprint: dict[str, Any], space: SearchSpace,
                  seed: int = 0, table_path: str | Path | None = None) -> LatencyPredictor:
    """Fit on reference-relative latencies of archs of `space`; with a table its relative
    entries are features (`table_path`, where the table file lives, is recorded for loading it
    again)."""
    setting = setting_of(specs[0])
    info = None if table is None else table_info_of(table, table_path)
    return fit_predictor(list(specs), relative, space_name=space.name, setting=setting,
                         table=None if table is None else table.entries_relative,
                         ids=[s.arch_id for s in specs], unit="relative",
                         device_fingerprint=fingerprint, table_info=info, seed=seed)


def evaluate_on_fresh(pred: LatencyPredictor, specs: Sequence[ArchSpec],
                      measured: Sequence[float]) -> dict[str, Any]:
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
