"""The gradient-boosted latency predictor: XGBoost on architecture features.

Target, chosen by cross-validation inside the training data (`target="auto"`):
- `log_ms`: log latency, for data without a per-layer table (e.g. Pixel 2);
- `log_ratio`: log(measured / table sum), so the trees only learn what the table misses
  (caches, fusion, per-invoke overhead).
Tree depth and minimum child weight are picked from a small grid by the same CV, the number of
rounds by early stopping. The final model is a bagged ensemble (bootstrap resamples, one seed
each): the prediction is the ensemble mean in log space, its uncertainty combines the ensemble
spread (what more data would fix) with the CV residual (measurement noise and model error).
Latencies are in `unit`: 'ms', or 'relative' to a reference model measured beside them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
from typing import Any, Mapping, NamedTuple, Sequence, Union

import numpy as np
import xgboost as xgb

from mnas_jax.space import ArchSpec
from predictor.features import Featurizer, TableLike, make_featurizer

log = logging.getLogger(__name__)

TARGETS = ("log_ms", "log_ratio")
UNITS = ("ms", "relative")
DEFAULT_GRID = ((2, 1.0), (3, 1.0), (3, 4.0), (4, 4.0), (6, 4.0))  # (max_depth, min_child_weight)

ArchInput = Union[Sequence[ArchSpec], np.ndarray]


@dataclasses.dataclass(frozen=True)
class PredictorConfig:
    """Fitting recipe. `grid` holds (max_depth, min_child_weight) candidates for the CV."""

    target: str = "auto"
    ensemble: int = 5
    learning_rate: float = 0.05
    max_rounds: int = 1500
    early_stopping: int = 50
    grid: tuple[tuple[int, float], ...] = DEFAULT_GRID
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    cv_folds: int = 5
    nthread: int = 1

    def __post_init__(self) -> None:
        if self.target not in ("auto",) + TARGETS:
            raise ValueError(f"target={self.target!r}; choose 'auto' or one of {TARGETS}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble={self.ensemble} must be >= 1")
        if not self.grid:
            raise ValueError("grid must hold at least one (max_depth, min_child_weight) pair")
        object.__setattr__(self, "grid", tuple((int(d), float(w)) for d, w in self.grid))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["grid"] = [list(g) for g in self.grid]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictorConfig:
        d = dict(d)
        d["grid"] = tuple(tuple(g) for g in d.get("grid", DEFAULT_GRID))
        return cls(**d)


class Prediction(NamedTuple):
    """Predicted latency and its standard deviation, both in the predictor's unit."""

    value: np.ndarray
    uncertainty: np.ndarray


@dataclasses.dataclass(frozen=True)
class Choice:
    """What the CV picked: target, tree shape, rounds, and the CV RMSE in log space."""

    target: str
    max_depth: int
    min_child_weight: float
    rounds: int
    cv_rmse: float


def device_id_of(fingerprint: Mapping[str, Any] | None) -> str | None:
    """Same id as `latency.measurement.Fingerprint.device_id` for its `to_dict()`."""
    if fingerprint is None:
        return None
    text = json.dumps(dict(fingerprint), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _xgb_params(cfg: PredictorConfig, depth: int, mcw: float, seed: int) -> dict[str, Any]:
    return {"objective": "reg:squarederror", "tree_method": "hist", "eta": cfg.learning_rate,
            "max_depth": depth, "min_child_weight": mcw, "subsample": cfg.subsample,
            "colsample_bytree": cfg.colsample_bytree, "lambda": cfg.reg_lambda,
            "nthread": cfg.nthread, "seed": seed, "verbosity": 0}


def _target(kind: str, y: np.ndarray, table_ms: np.ndarray | None) -> np.ndarray:
    return np.log(y) - (np.log(table_ms) if kind == "log_ratio" else 0.0)


def choose(x: np.ndarray, y: np.ndarray, table_ms: np.ndarray | None, cfg: PredictorConfig,
           seed: int) -> Choice:
    """Pick target and tree shape by k-fold CV on the training data only."""
    targets = ([cfg.target] if cfg.target != "auto"
               else (["log_ms", "log_ratio"] if table_ms is not None else ["log_ms"]))
    if "log_ratio" in targets and table_ms is None:
        raise ValueError("target 'log_ratio' needs a lookup table; pass table= or use 'log_ms'")
    folds = min(cfg.cv_folds, len(y))
    best: Choice | None = None
    for kind in targets:
        dtrain = xgb.DMatrix(x, label=_target(kind, y, table_ms))
        for depth, mcw in cfg.grid:
            if folds < 2:
                return Choice(kind, depth, mcw, 100, float("nan"))
            res = xgb.cv(_xgb_params(cfg, depth, mcw, seed), dtrain, cfg.max_rounds, nfold=folds,
                         early_stopping_rounds=cfg.early_stopping, seed=seed, shuffle=True)
            curve = np.asarray(res["test-rmse-mean"], dtype=np.float64)  # dict or DataFrame
            score, rounds = float(curve[-1]), len(curve)
            log.debug("cv %s depth=%d mcw=%g rounds=%d rmse=%.4f", kind, depth, mcw, rounds,
                      score)
            if best is None or score < best.cv_rmse:
                best = Choice(kind, depth, mcw, rounds, score)
    assert best is not None
    return best


def train_ensemble(x: np.ndarray, y: np.ndarray, table_ms: np.ndarray | None, choice: Choice,
                   cfg: PredictorConfig, seed: int) -> tuple[xgb.Booster, ...]:
    """Bootstrap-bagged boosters; a single booster on all data when ensemble == 1."""
    target = _target(choice.target, y, table_ms)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(cfg.ensemble):
        idx = rng.integers(0, len(y), len(y)) if cfg.ensemble > 1 else np.arange(len(y))
        d = xgb.DMatrix(x[idx], label=target[idx])
        params = _xgb_params(cfg, choice.max_depth, choice.min_child_weight, seed + k)
        out.append(xgb.train(params, d, choice.rounds))
    return tuple(out)


@dataclasses.dataclass(frozen=True, eq=False)
class LatencyPredictor:
    """A fitted predictor with everything needed to save, check, predict and refit it."""

    boosters: tuple[xgb.Booster, ...]
    featurizer: Featurizer
    choice: Choice
    unit: str
    config: PredictorConfig
    seed: int
    device_fingerprint: Mapping[str, Any] | None
    train_ids: tuple[str, ...]
    train_x: np.ndarray
    train_y: np.ndarray
    created: str
    table_info: Mapping[str, Any] | None = None

    @property
    def space(self) -> str:
        return self.featurizer.space.name

    @property
    def setting(self) -> str:
        return self.featurizer.space.setting

    @property
    def device_id(self) -> str | None:
        return device_id_of(self.device_fingerprint)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.featurizer.names

    # -- prediction -------------------------------------------------------------------------
    def features(self, x: ArchInput) -> np.ndarray:
        """Features of specs, token rows (integer array) or already computed features."""
        return as_features(self.featurizer, x)

    def predict_ensemble(self, features: np.ndarray) -> np.ndarray:
        """(n, K) log-latency predictions of each booster: their spread is the model's doubt."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(f"features must have shape (n, {len(self.feature_names)}), "
                             f"got {x.shape}")
        out = np.stack([b.inplace_predict(x) for b in self.boosters], axis=1).astype(np.float64)
        if self.choice.target == "log_ratio":
            out += np.log(features[:, self.feature_names.index("table_ms")])[:, None]
        return out

    def predict(self, x: ArchInput) -> Prediction:
        """Latency (in `unit`) and its standard deviation for specs, token rows or features."""
        logs = self.predict_ensemble(self.features(x))
        mean = logs.mean(axis=1)
        spread = logs.std(axis=1, ddof=1) if logs.shape[1] > 1 else np.zeros(len(mean))
        resid = self.choice.cv_rmse if np.isfinite(self.choice.cv_rmse) else 0.0
        value = np.exp(mean)
        return Prediction(value, value * np.sqrt(spread ** 2 + resid ** 2))

    # -- refit ------------------------------------------------------------------------------
    def refit(self, x: ArchInput, y: Sequence[float], ids: Sequence[str] | None = None, *,
              retune: bool = False) -> LatencyPredictor:
        """A new predictor on the old training data plus (x, y); same recipe unless `retune`."""
        feats = self.features(x)
        y_new = _check_y(y, len(feats))
        ids_new = _ids(x, ids, len(feats))
        all_x = np.concatenate([self.train_x, feats])
        all_y = np.concatenate([self.train_y, y_new])
        table = _table_col(self.featurizer, all_x)
        seed = self.seed + 1
        choice = choose(all_x, all_y, table, self.config, seed) if retune else self.choice
        boosters = train_ensemble(all_x, all_y, table, choice, self.config, seed)
        return dataclasses.replace(self, boosters=boosters, choice=choice, seed=seed,
                                   train_ids=self.train_ids + ids_new, train_x=all_x,
                                   train_y=all_y, created=_now())


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def as_features(featurizer: Featurizer, x: ArchInput) -> np.ndarray:
    if isinstance(x, np.ndarray):
        if np.issubdtype(x.dtype, np.integer):
            return featurizer.from_tokens(x)
        if x.ndim != 2 or x.shape[1] != len(featurizer.names):
            raise ValueError(f"a float array must be features of shape (n, "
                             f"{len(featurizer.names)}); got {x.shape}. Pass token rows as "
                             "an integer array")
        return x.astype(np.float64)
    specs = list(x)
    bad = [type(s).__name__ for s in specs if not isinstance(s, ArchSpec)]
    if bad:
        raise ValueError(f"expected ArchSpecs, token rows or features; got {bad[0]}")
    return featurizer.from_specs(specs)


def _check_y(y: Sequence[float], n: int) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64).ravel()
    if arr.size != n:
        raise ValueError(f"{arr.size} latencies for {n} architectures; pass one per arch")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError("latencies must be finite and > 0")
    return arr


def _ids(x: ArchInput, ids: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if ids is not None:
        if len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} architectures")
        return tuple(str(i) for i in ids)
    if not isinstance(x, np.ndarray):
        return tuple(s.arch_id for s in x)
    return tuple(f"row{i}" for i in range(n))


def _table_col(featurizer: Featurizer, x: np.ndarray) -> np.ndarray | None:
    if not featurizer.feature_set.uses_table:
        return None
    col = x[:, featurizer.names.index("table_ms")]
    if np.any(col <= 0):
        raise ValueError("lookup-table sums must be > 0; check the table's entries")
    return col


def fit_predictor(x: ArchInput, y: Sequence[float], *, space_name: str,
                  setting: str | None = None, table: TableLike | None = None,
                  ids: Sequence[str] | None = None, unit: str = "ms",
                  device_fingerprint: Mapping[str, Any] | None = None,
                  table_info: Mapping[str, Any] | None = None, seed: int = 0,
                  config: PredictorConfig = PredictorConfig(),
                  featurizer: Featurizer | None = None) -> LatencyPredictor:
    """Fit on measured latencies `y` (in `unit`) of specs, token rows or features `x`.

    Pass `featurizer` to reuse one (and its caches) already made for the same space and table.
    """
    if unit not in UNITS:
        raise ValueError(f"unit={unit!r}; choose one of {UNITS}")
    feat = featurizer or make_featurizer(space_name, setting, table)
    if feat.space.name != space_name or (setting and feat.space.setting != setting):
        raise ValueError(f"featurizer is for {feat.space.name}/{feat.space.setting}, "
                         f"not {space_name}/{setting}")
    feats = as_features(feat, x)
    y_arr = _check_y(y, len(feats))
    if len(y_arr) < 3:
        raise ValueError(f"{len(y_arr)} measured architectures are too few; fit on >= 3")
    train_ids = _ids(x, ids, len(feats))
    table_col = _table_col(feat, feats)
    choice = choose(feats, y_arr, table_col, config, seed)
    log.info("predictor: %s", choice)
    boosters = train_ensemble(feats, y_arr, table_col, choice, config, seed)
    return LatencyPredictor(boosters, feat, choice, unit, config, seed,
                            dict(device_fingerprint) if device_fingerprint is not None else None,
                            train_ids, feats, y_arr, _now(),
                            dict(table_info) if table_info is not None else None)
