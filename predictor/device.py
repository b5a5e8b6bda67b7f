"""Predictors of a real device, one module for the search and the CLI: fit one on archs measured
on the device, transfer another device's to it, validate one against fresh measurements, adopt
one for a search and predict with one (in the reference's unit and in ms).

Measurements go through the session's store (measured once, reused by every later call);
predictors are saved with `predictor.io.save_predictor`, in the work directory's layout
(`latency.workdir.Workdir`) unless the caller names a directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latency.cached import measure_relative, reference_ms
from latency.lut import LatencyTable
from latency.session import DeviceSession
from latency.workdir import Workdir
from mnas_jax.files import write_atomic
from mnas_jax.space import ArchSpec, SearchSpace, sample_specs
from predictor.io import PredictorDir, load_predictor, read_predictor_dir, save_predictor
from predictor.kinds import Predictor
from predictor.metrics import noise_floor, plot_predicted_vs_measured, report
from predictor.relative_fit import evaluate_on_fresh, fit_on_device
from predictor.transfer import TransferPredictor

REPORT_NAME = "report.json"
PLOT_NAME = "predicted_vs_measured.png"
TRANSFER_SEED_OFFSET = 77  # the k archs measured for a transfer: other samples than a fit's


def fit_device(session: DeviceSession, workdir: Workdir, space: SearchSpace,
               specs: Sequence[ArchSpec], out: Path, *, table: LatencyTable | None, seed: int,
               progress: bool = True, reuse: bool = False) -> Predictor:
    """The device's predictor on `specs` measured on it (the relative entries of `table` as
    features), saved with its table in `out`; with `reuse`, the predictor already in `out` is
    loaded instead (a resumed search: its calibration refits are kept)."""
    fp = session.device.fingerprint()
    y = measure_relative(session, specs, progress=progress)
    if reuse and out.exists():
        return load_predictor(out, space=space.name, setting=space.setting, device_id=fp.device_id,
                              table=None if table is None else table.entries_relative)
    path = None if table is None else workdir.table(space.name, space.setting, fp.device_id)
    pred = fit_on_device(list(specs), y, table, fingerprint=fp.to_dict(), seed=seed, space=space,
                         table_path=path)
    save_predictor(pred, out, table=table)  # the directory carries its table
    return pred


def transfer_specs(space: SearchSpace, k: int, seed: int) -> list[ArchSpec]:
    """The k archs measured on the new device for a transfer."""
    return sample_specs(space, k, seed + TRANSFER_SEED_OFFSET)


def transfer_device(session: DeviceSession, base: PredictorDir, base_path: Path,
                    specs: Sequence[ArchSpec], out: Path, *,
                    progress: bool = True) -> TransferPredictor:
    """Device A's predictor (`base`, read from `base_path`) transferred to the session's device
    with `specs` measured on it; saved in `out`. ValueError when both are one device."""
    fp = session.device.fingerprint()
    if fp.device_id == base.predictor.device_id:
        raise ValueError(f"--transfer-from {base_path} is a predictor of this very device "
                         f"({fp.device_id}): transfer to another --device")
    y = measure_relative(session, specs, progress=progress)
    ref_ms = reference_ms(session, base.predictor.setting)  # this setting's reference only
    tp = TransferPredictor.fit(base.predictor, list(specs), y, fp.to_dict(),
                               base_table=base.table, reference_ms=ref_ms)
    save_predictor(tp, out)
    return tp


def validate_device(session: DeviceSession, model: Path, space: SearchSpace, n: int, seed: int,
                    out: Path, *, floor_n: int | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """The predictor in `model` against `n` fresh archs (none it was trained on) measured now:
    its error and every baseline's, beside the label noise floor (the first `floor_n` of the
    archs, default all, measured a second time: pass 2 scored against pass 1, see
    `predictor.metrics.noise_floor`; 0 skips it); the report (JSON) and a predicted-vs-measured
    plot are written to `out`. Returns the report."""
    fp = session.device.fingerprint()
    pred = load_predictor(model, space=space.name, setting=space.setting, device_id=fp.device_id)
    specs = sample_specs(space, n, seed, pred.train_ids)
    t0 = time.perf_counter()
    y = measure_relative(session, specs, fresh=True, progress=progress)
    pass1_s = time.perf_counter() - t0
    rep = evaluate_on_fresh(pred, specs, y)
    floor_n = len(specs) if floor_n is None else min(floor_n, len(specs))
    if floor_n > 0:
        t0 = time.perf_counter()
        y2 = measure_relative(session, specs[:floor_n], fresh=True, progress=progress)
        rep["noise_floor"] = noise_floor(y[:floor_n], y2) | {
            "pass2": y2.tolist(), "seconds_pass1": pass1_s,
            "seconds_pass2": time.perf_counter() - t0, "rounds": session.rounds}
        if floor_n < len(specs):  # the predictor on the same archs as the floor
            rep["noise_floor"]["predictor_on_these_archs"] = report(
                np.array(rep["predictions"]["predictor"][:floor_n]), y[:floor_n])
    out.mkdir(parents=True, exist_ok=True)
    rep |= {"predictor_dir": str(model), "device": fp.device_id, "space": space.name,
            "setting": space.setting, "report": str(out / REPORT_NAME),
            "plot": str(out / PLOT_NAME)}
    write_atomic(out / REPORT_NAME, json.dumps(rep, indent=1) + "\n")
    series = {k: (np.array(rep["predictions"][k]), np.array(rep["measured"]))
              for k in ("predictor", "table_scale", "macs_linear") if k in rep["predictions"]}
    plot_predicted_vs_measured(str(out / PLOT_NAME), series, unit="x reference",
                               title=f"{n} fresh archs on {fp.device_id} ({space.setting})")
    return rep


def adopt_predictor(path: str | Path, workdir: Workdir, out: Path, setting: str,
                    device_id: str) -> Predictor:
    """A predictor fitted or transferred for this device (`mnas search --predictor DIR`) copied
    to `out`, where calibration refits the copy (DIR stays as it is); its device's lookup table,
    if any, is copied to the work directory's tables, where the copy finds it."""
    given = read_predictor_dir(path, setting=setting, device_id=device_id)
    table = given.device_table
    if table is not None:
        copy = workdir.table(table.space, table.setting, table.device_id)
        if not copy.exists():
            table.save(copy)
    save_predictor(given.predictor, out)
    return given.predictor


def predict_rows(loaded: PredictorDir, specs: Sequence[ArchSpec]) -> list[dict[str, Any]]:
    """Predicted latency per spec, in the predictor's unit and in ms (the reference's median on
    the predictor's device; None when unknown), beside its device's table sum when it has one."""
    pred, table, ref_ms = loaded.predictor, loaded.device_table, loaded.reference_ms
    value, unc = pred.predict(list(specs))
    ms = pred.unit == "ms"
    scale = 1.0 if ms else ref_ms
    rows = []
    for spec, v, u in zip(specs, np.atleast_1d(value), np.atleast_1d(unc)):
        rows.append({"arch_id": spec.arch_id, "unit": pred.unit, "device": pred.device_id,
                     "predicted_ms": None if scale is None else float(v) * scale,
                     "predicted_relative": None if ms else float(v),
                     "uncertainty_ms": None if scale is None else float(u) * scale,
                     "uncertainty_relative": None if ms else float(u),
                     "reference_ms": None if ms else ref_ms,
                     "lut_ms": None if table is None else table.sum_ms(spec),
                     "lut_relative": None if table is None else table.sum_relative(spec)})
    return rows
