"""A predictor for a new device B from device A's predictor and k measurements on B.

log y_B is a ridge-regressed linear function of log pred_A(x) and, when leave-one-out CV on
the k points prefers it, of log MACs and log depthwise MACs (TRANSFER_COLUMNS); below 5 points
a scale only. The LOO residual spread is the uncertainty.

It is saved and loaded like any other predictor (`predictor.io.save_predictor` /
`load_predictor`, which replace the directory atomically) and carries what it needs: the directory holds `metadata.json` (kind
`mnas-transfer-predictor`, the coefficients, B's fingerprint), `training.npz` (A's features
and B's latencies of the k points, so calibration rounds can refit it) and `base/`, a copy of
A's predictor with A's lookup table in `base/table.json`.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from latency.lut import LatencyTable
from predictor.io import (METADATA, TABLE_FILE, TRAINING, TRANSFER_KIND, PredictorFileError,
                          check_expected, check_files, file_sha256, load_predictor,
                          read_metadata, versions, write_predictor, write_synced)
from predictor.model import ArchInput, LatencyPredictor, Prediction, device_id_of, ridge

TRANSFER_SCHEMA = 1
BASE_DIR = "base"
# Candidate inputs besides log pred_A, chosen per transfer by leave-one-out CV on the k points:
# a device with another kernel library (e.g. XNNPACK off) weighs MACs, and depthwise MACs,
# differently from device A; a device with another thread count mostly rescales.
TRANSFER_COLUMNS: tuple[tuple[str, ...], ...] = ((), ("macs",), ("macs", "macs_dw"))
TRANSFER_RIDGE = 0.1  # on standardized inputs
MIN_SLOPE_POINTS = 5  # below this, a scale only


def _inputs(base: LatencyPredictor, features: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """[log pred_A, log(column + 1) ...] per row of A's features."""
    a = np.log(np.asarray(base.predict(features)[0]))[:, None]
    if not columns:
        return a
    names = list(base.feature_names)
    return np.concatenate([a, np.log(features[:, [names.index(c) for c in columns]] + 1.0)],
                          axis=1)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class TransferPredictor:
    """Device B's latencies (relative to the reference model) from device A's predictor."""

    unit = "relative"

    def __init__(self, base: LatencyPredictor, columns: tuple[str, ...],
                 weights: tuple[float, ...], mean: tuple[float, ...], scale: tuple[float, ...],
                 intercept: float, resid_sd: float, fingerprint: Mapping[str, Any] | None = None,
                 *, train_ids: tuple[str, ...] = (), train_x: np.ndarray | None = None,
                 train_y: np.ndarray | None = None, base_table: LatencyTable | None = None,
                 reference_ms: float | None = None, created: str | None = None) -> None:
        self.base, self.columns, self.weights = base, tuple(columns), tuple(weights)
        self.mean, self.scale, self.intercept = tuple(mean), tuple(scale), float(intercept)
        self.resid_sd = float(resid_sd)
        self.device_fingerprint = None if fingerprint is None else dict(fingerprint)
        self.train_ids = tuple(train_ids)
        width = len(base.feature_names)
        self.train_x = np.zeros((0, width)) if train_x is None else np.asarray(train_x, float)
        self.train_y = np.zeros(0) if train_y is None else np.asarray(train_y, float)
        self.base_table, self.reference_ms = base_table, reference_ms
        self.created = created or _now()

    # -- what every predictor exposes --------------------------------------------------------
    @property
    def space(self) -> str:
        """Search space of the base predictor."""
        return self.base.space

    @property
    def setting(self) -> str:
        """Setting of the base predictor."""
        return self.base.setting

    @property
    def device_id(self) -> str | None:
        """Id of the target device B (from its fingerprint), or None if unknown."""
        return device_id_of(self.device_fingerprint)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature names of the base predictor (device A's features)."""
        return self.base.feature_names

    @property
    def table_info(self) -> Mapping[str, Any] | None:
        """Device A's table (the features' table), not B's: B has none."""
        return self.base.table_info

    @property
    def coef(self) -> dict[str, Any]:
        """The transfer fit: columns, weights, intercept and leave-one-out RMSE in log space."""
        return {"columns": ["log_pred_A", *self.columns], "weights": list(self.weights),
                "intercept": self.intercept, "loo_rmse_log": self.resid_sd}

    def features(self, x: ArchInput) -> np.ndarray:
        """Device A's features of specs, token rows or features."""
        return self.base.features(x)

    def predict(self, x: ArchInput) -> Prediction:
        """Device B latency from the log-linear map of pred_A; resid_sd as relative uncertainty."""
        z = _inputs(self.base, self.features(x), self.columns)
        value = np.exp(self.intercept + ((z - np.asarray(self.mean)) / np.asarray(self.scale))
                       @ np.asarray(self.weights))
        return Prediction(value, value * self.resid_sd)

    # -- fitting -----------------------------------------------------------------------------
    @classmethod
    def fit(cls, base: LatencyPredictor, x: ArchInput, y: Sequence[float],
            fingerprint: Mapping[str, Any] | None = None, *, ids: Sequence[str] | None = None,
            base_table: LatencyTable | None = None,
            reference_ms: float | None = None) -> TransferPredictor:
        """Fit on B's latencies `y` of specs (or token rows, or A's features) `x`."""
        feats = base.features(x)
        b = np.log(np.asarray(y, float))
        if len(b) != len(feats):
            raise ValueError(f"{len(b)} latencies for {len(feats)} architectures")
        if len(b) < 2:
            raise ValueError(f"transfer needs >= 2 measurements on the new device, got {len(b)}")
        if ids is None:
            ids = [s.arch_id for s in x] if not isinstance(x, np.ndarray) else [
                f"row{i}" for i in range(len(b))]
        keep = dict(fingerprint=fingerprint, train_ids=tuple(ids), train_x=feats,
                    train_y=np.exp(b), base_table=base_table, reference_ms=reference_ms)
        if len(b) < MIN_SLOPE_POINTS:  # too few points for a slope: scale only
            a = _inputs(base, feats, ())[:, 0]
            c = float(np.mean(b - a))
            sd = float(np.std(b - a - c, ddof=1)) if len(b) > 2 else 0.0
            return cls(base, (), (1.0,), (0.0,), (1.0,), c, sd, **keep)  # y = e^c pred_A
        best: tuple[float, tuple[str, ...]] | None = None
        for columns in TRANSFER_COLUMNS:
            if len(columns) + 1 > len(b) - 2:
                continue
            z = _inputs(base, feats, columns)
            loo = []
            for i in range(len(b)):
                rest = np.arange(len(b)) != i
                w, mu, sd, c = ridge(z[rest], b[rest], TRANSFER_RIDGE)
                loo.append(b[i] - (c + ((z[i] - mu) / sd) @ w))
            score = float(np.sqrt(np.mean(np.square(loo))))
            if best is None or score < best[0]:
                best = (score, columns)
        assert best is not None
        z = _inputs(base, feats, best[1])
        w, mu, sd, c = ridge(z, b, TRANSFER_RIDGE)
        return cls(base, best[1], tuple(map(float, w)), tuple(map(float, mu)),
                   tuple(map(float, sd)), c, best[0], **keep)

    def refit(self, x: ArchInput, y: Sequence[float], ids: Sequence[str] | None = None, *,
              retune: bool = False) -> TransferPredictor:
        """The transfer refitted on its k points plus (x, y) (calibration rounds); A stays."""
        feats = self.features(x)
        if ids is None:
            ids = [s.arch_id for s in x] if not isinstance(x, np.ndarray) else [
                f"row{len(self.train_ids) + i}" for i in range(len(feats))]
        return TransferPredictor.fit(
            self.base, np.concatenate([self.train_x, feats]),
            np.concatenate([self.train_y, np.asarray(y, float)]), self.device_fingerprint,
            ids=self.train_ids + tuple(ids), base_table=self.base_table,
            reference_ms=self.reference_ms)

    def write(self, directory: Path) -> None:
        """Its files, its base's and the base's table, written into an existing directory."""
        write_transfer(self, directory)


# -- files ------------------------------------------------------------------------------------
def write_transfer(tp: TransferPredictor, directory: Path) -> None:
    """The files of a transfer predictor, its base and the base's table, written into an
    existing (empty, private) directory; `predictor.io.save_predictor` swaps it in."""
    (directory / BASE_DIR).mkdir()
    write_predictor(tp.base, directory / BASE_DIR)
    if tp.base_table is not None:
        tp.base_table.save(directory / BASE_DIR / TABLE_FILE)
    with (directory / TRAINING).open("wb") as f:
        np.savez(f, train_x=tp.train_x, train_y=tp.train_y)
    meta = {"schema": TRANSFER_SCHEMA, "kind": TRANSFER_KIND, "space": tp.space,
            "setting": tp.setting, "unit": tp.unit, "device_fingerprint": tp.device_fingerprint,
            "device_id": tp.device_id, "base": BASE_DIR, "base_device_id": tp.base.device_id,
            "columns": list(tp.columns), "weights": list(tp.weights), "mean": list(tp.mean),
            "scale": list(tp.scale), "intercept": tp.intercept, "resid_sd": tp.resid_sd,
            "train_ids": list(tp.train_ids), "n_train": len(tp.train_ids),
            "reference_ms": tp.reference_ms, "created": tp.created, "versions": versions(),
            "files": {TRAINING: file_sha256(directory / TRAINING)}}
    write_synced(directory / METADATA, json.dumps(meta, indent=1, sort_keys=True).encode())


def load_transfer(directory: str | Path, *, space: str | None = None,
                  setting: str | None = None, device_id: str | None = None,
                  allow_mismatch: bool = False, meta: Mapping[str, Any] | None = None,
                  shown: Path | None = None) -> TransferPredictor:
    """Load a directory written by `write_transfer` (checked like any predictor); `meta`: its
    metadata already read, `shown`: the name to give in messages (predictor.io reads one
    version of a published directory this way)."""
    directory = Path(directory)
    shown = shown or directory
    meta = read_metadata(directory) if meta is None else meta
    if meta.get("kind") != TRANSFER_KIND or meta.get("schema") != TRANSFER_SCHEMA:
        raise PredictorFileError(f"{shown / METADATA} is not a transfer predictor of schema "
                                 f"{TRANSFER_SCHEMA}; fit it again")
    check_files(directory, meta.get("files", {}))
    if not allow_mismatch:
        check_expected(meta, shown, space, setting, device_id)
    base_dir = directory / meta["base"]
    base = load_predictor(base_dir, allow_mismatch=True)
    table_path = base_dir / TABLE_FILE
    base_table = LatencyTable.load(table_path) if table_path.is_file() else None
    with np.load(directory / TRAINING, allow_pickle=False) as z:
        train_x, train_y = z["train_x"], z["train_y"]
    return TransferPredictor(
        base, tuple(meta["columns"]), tuple(meta["weights"]), tuple(meta["mean"]),
        tuple(meta["scale"]), meta["intercept"], meta["resid_sd"], meta["device_fingerprint"],
        train_ids=tuple(meta["train_ids"]), train_x=train_x, train_y=train_y,
        base_table=base_table, reference_ms=meta.get("reference_ms"), created=meta["created"])
