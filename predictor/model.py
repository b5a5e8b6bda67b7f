"""The gradient-boosted latency predictor: XGBoost on architecture features.

Target, chosen by cross-validation inside the training data (`target="auto"`): log latency
minus a prior the trees then correct,
- `log_ms`: no prior;
- `log_macs`: a power law in MACs fitted by least squares (ranks well from a few archs);
- `log_ratio`: the lookup-table sum, so the trees learn only what the table misses (caches,
  fusion, per-invoke overhead); offered when a table is given;
- `log_ridge`: the table sum times a ridge-regression correction on the standardized features
  and their logs (a table sum's error is smooth in weight size and late-block width: on this
  machine, 300 MnasNet-224 archs, the correction alone took the +-5% share of held-out archs
  from 72% with trees on `log_ratio` to ~80%); offered when a table is given.
Tree depth and minimum child weight come from a small grid, the number of rounds (0: the prior
alone) from early stopping, all by the same CV. The default loss is pseudo-Huber on log latency
(quadratic within ~5%, linear beyond): phone measurements have heavy upper tails, and a squared
loss lets those outliers pull every prediction. The final model is a bagged ensemble (bootstrap
resamples, one seed each): the prediction is the ensemble mean in log space; its uncertainty
combines the ensemble spread (what more data would fix) with the out-of-fold residual of the CV
(measurement noise and model error). Latencies are in `unit`: 'ms', or 'relative' to a
reference model measured beside them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence, Union

import numpy as np
import xgboost as xgb

from mnas_jax.space import ArchSpec, get_space
from predictor.features import Featurizer, TableLike, make_featurizer

log = logging.getLogger(__name__)

TARGETS = ("log_ms", "log_macs", "log_ratio", "log_ridge")
RIDGE_LAMBDA = 1.0  # on standardized inputs; 0.1-10 measured alike
OBJECTIVES = {"squared": "reg:squarederror", "huber": "reg:pseudohubererror",
              "absolute": "reg:absoluteerror"}
UNITS = ("ms", "relative")
# (max_depth, min_child_weight); depth 1 (an additive model) wins at a few dozen archs.
DEFAULT_GRID = ((1, 1.0), (2, 1.0), (3, 1.0), (3, 4.0), (4, 4.0), (6, 4.0))

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
    objective: str = "huber"
    huber_slope: float = 0.05
    cv_folds: int = 5
    nthread: int = 1

    def __post_init__(self) -> None:
        if self.target not in ("auto",) + TARGETS:
            raise ValueError(f"target={self.target!r}; choose 'auto' or one of {TARGETS}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r}; choose one of {list(OBJECTIVES)}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble={self.ensemble} must be >= 1")
        if not self.grid:
            raise ValueError("grid must hold at least one (max_depth, min_child_weight) pair")
        object.__setattr__(self, "grid", tuple((int(d), float(w)) for d, w in self.grid))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the grid as lists)."""
        d = dataclasses.asdict(self)
        d["grid"] = [list(g) for g in self.grid]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictorConfig:
        """The config of ``to_dict``'s output (missing grid: the default)."""
        d = dict(d)
        d["grid"] = tuple(tuple(g) for g in d.get("grid", DEFAULT_GRID))
        return cls(**d)


class Prediction(NamedTuple):
    """Predicted latency and its standard deviation, both in the predictor's unit."""

    value: np.ndarray
    uncertainty: np.ndarray


@dataclasses.dataclass(frozen=True)
class Choice:
    """What the CV picked: target, tree shape, rounds; the out-of-fold RMSE of log latency
    (`cv_rmse`, the residual part of the uncertainty) and the CV objective it was chosen on."""

    target: str
    max_depth: int
    min_child_weight: float
    rounds: int
    cv_rmse: float
    cv_score: float


def device_id_of(fingerprint: Mapping[str, Any] | None) -> str | None:
    """Same id as `latency.measurement.Fingerprint.device_id` for its `to_dict()`."""
    if fingerprint is None:
        return None
    text = json.dumps(dict(fingerprint), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _xgb_params(cfg: PredictorConfig, depth: int, mcw: float, seed: int) -> dict[str, Any]:
    return {"objective": OBJECTIVES[cfg.objective], "tree_method": "hist",
            "eta": cfg.learning_rate, "max_depth": depth, "min_child_weight": mcw,
            "subsample": cfg.subsample, "colsample_bytree": cfg.colsample_bytree,
            "lambda": cfg.reg_lambda, "nthread": cfg.nthread, "seed": seed, "verbosity": 0,
            "eval_metric": "rmse" if cfg.objective == "squared" else "mae",
            **({"huber_slope": cfg.huber_slope} if cfg.objective == "huber" else {})}


@dataclasses.dataclass(frozen=True)
class Prior:
    """The part of log latency the trees do not learn: intercept + slope * log(column).

    `log_ms` has none; `log_ratio` is the table sum (slope 1); `log_macs` a power law in MACs
    fitted by least squares, which ranks well from a handful of measurements.
    """

    column: str | None = None
    intercept: float = 0.0
    slope: float = 0.0
    # `log_ridge`: weights on the standardized [features, log(|features| + 1e-6)]
    weights: tuple[float, ...] = ()
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()

    def log_value(self, x: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """The prior's log-latency for each feature row (0 without a prior)."""
        if self.column is None:
            return np.zeros(len(x))
        out = self.intercept + self.slope * np.log(x[:, list(names).index(self.column)])
        if self.weights:
            z = (_ridge_inputs(x) - np.asarray(self.mean)) / np.asarray(self.scale)
            out = out + z @ np.asarray(self.weights)
        return out


def _ridge_inputs(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.log(np.abs(x) + 1e-6)], axis=1)


def ridge(z: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                            float]:
    """Ridge regression on standardized columns: (weights, column means, column scales,
    intercept) with y ~ intercept + ((z - mean) / scale) @ weights; constant columns get scale 1."""
    mean, scale = z.mean(axis=0), z.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    zz = (z - mean) / scale
    intercept = float(y.mean())
    w = np.linalg.solve(zz.T @ zz + lam * np.eye(z.shape[1]), zz.T @ (y - intercept))
    return w, mean, scale, intercept


def fit_ridge_prior(x: np.ndarray, y: np.ndarray, names: Sequence[str],
                    lam: float = RIDGE_LAMBDA) -> Prior:
    """log y = log table_ms + intercept + w . standardized([x, log x]), ridge-penalised."""
    r = np.log(y) - np.log(x[:, list(names).index("table_ms")])
    w, mean, scale, intercept = ridge(_ridge_inputs(x), r, lam)
    return Prior("table_ms", intercept, 1.0, tuple(map(float, w)), tuple(map(float, mean)),
                 tuple(map(float, scale)))


def fit_prior(target: str, x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> Prior:
    """Fit the prior the trees correct for ``target`` (none for log_ms; table-based otherwise)."""
    if target == "log_ms":
        return Prior()
    if target in ("log_ratio", "log_ridge"):
        if "table_ms" not in names:
            raise ValueError(f"target {target!r} needs a lookup table; pass table= or use "
                             "'log_ms'")
        if target == "log_ridge":
            return fit_ridge_prior(x, y, names)
        return Prior("table_ms", 0.0, 1.0)
    col = np.log(x[:, list(names).index("macs")])
    if np.ptp(col) == 0:
        return Prior("macs", float(np.mean(np.log(y)) - np.mean(col)), 1.0)
    slope, intercept = np.polyfit(col, np.log(y), 1)
    return Prior("macs", float(intercept), float(slope))


def _fold_curves(x: np.ndarray, y: np.ndarray, names: Sequence[str], target: str,
                 params: dict[str, Any], folds: list[tuple[np.ndarray, np.ndarray]],
                 cfg: PredictorConfig) -> tuple[int, float, np.ndarray]:
    """k-fold CV with the prior fitted inside each fold. Each fold stops early on its own
    validation curve; the rounds are the minimum of the mean curve over the length all folds
    reached. Returns (rounds, score, out-of-fold log-latency residuals)."""
    runs = []
    for tr, va in folds:
        prior = fit_prior(target, x[tr], y[tr], names)
        base = prior.log_value(x[va], names)
        label = np.log(y[tr]) - prior.log_value(x[tr], names)
        start = _start(label, params)
        dtr = xgb.DMatrix(x[tr], label=label)
        dva = xgb.DMatrix(x[va], label=np.log(y[va]) - base)
        res: dict[str, Any] = {}
        booster = xgb.train(dict(params, base_score=start), dtr, cfg.max_rounds,
                            evals=[(dva, "val")], evals_result=res,
                            early_stopping_rounds=cfg.early_stopping, verbose_eval=False)
        # round 0: the prior alone, plus the constant the trees start from
        zero = _metric(np.log(y[va]) - base - start, params["eval_metric"])
        runs.append((booster, dva, base, va, [zero] + list(res["val"][params["eval_metric"]]),
                     start))
    length = min(len(r[4]) for r in runs)
    mean = np.mean([r[4][:length] for r in runs], axis=0)
    rounds = int(np.argmin(mean))
    resid = np.zeros(len(y))
    for booster, dva, base, va, _, start in runs:
        trees = booster.predict(dva, iteration_range=(0, rounds)) if rounds else start
        resid[va] = np.log(y[va]) - base - trees
    return rounds, float(mean[rounds]), resid


def _start(label: np.ndarray, params: Mapping[str, Any]) -> float:
    """The constant the trees start from (base_score): mean, or median for robust losses."""
    return float(np.mean(label) if params["objective"] == "reg:squarederror"
                 else np.median(label))


def _metric(resid: np.ndarray, name: str) -> float:
    return float(np.sqrt(np.mean(resid ** 2)) if name == "rmse" else np.mean(np.abs(resid)))


def choose(x: np.ndarray, y: np.ndarray, names: Sequence[str], cfg: PredictorConfig,
           seed: int) -> Choice:
    """Pick target and tree shape by k-fold CV on the training data only."""
    if cfg.target != "auto":
        targets = [cfg.target]
    else:
        targets = ["log_ms", "log_macs"] + (["log_ratio", "log_ridge"] if "table_ms" in names
                                            else [])
    folds_n = min(cfg.cv_folds, len(y))
    perm = np.random.default_rng(seed).permutation(len(y))
    parts = np.array_split(perm, folds_n)
    folds = [(np.concatenate(parts[:k] + parts[k + 1:]), parts[k]) for k in range(folds_n)]
    best: Choice | None = None
    for target in targets:
        for depth, mcw in cfg.grid:
            params = _xgb_params(cfg, depth, mcw, seed)
            rounds, score, resid = _fold_curves(x, y, names, target, params, folds, cfg)
            log.debug("cv %s depth=%d mcw=%g rounds=%d score=%.4f", target, depth, mcw, rounds,
                      score)
            if best is None or score < best.cv_score:
                rmse = float(np.sqrt(np.mean(resid ** 2)))
                best = Choice(target, depth, mcw, rounds, rmse, score)
    assert best is not None
    return best


def train_ensemble(x: np.ndarray, y: np.ndarray, names: Sequence[str], prior: Prior,
                   choice: Choice, cfg: PredictorConfig, seed: int) -> tuple[xgb.Booster, ...]:
    """Bootstrap-bagged boosters on log(y) - prior; one booster on all data if ensemble == 1."""
    target = np.log(y) - prior.log_value(x, names)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(cfg.ensemble):
        idx = rng.integers(0, len(y), len(y)) if cfg.ensemble > 1 else np.arange(len(y))
        d = xgb.DMatrix(x[idx], label=target[idx])
        params = _xgb_params(cfg, choice.max_depth, choice.min_child_weight, seed + k)
        params["base_score"] = _start(target[idx], params)
        out.append(xgb.train(params, d, choice.rounds))
    return tuple(out)


@dataclasses.dataclass(frozen=True, eq=False)
class LatencyPredictor:
    """A fitted predictor with everything needed to save, check, predict and refit it."""

    boosters: tuple[xgb.Booster, ...]
    featurizer: Featurizer
    choice: Choice
    prior: Prior
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
        """Name of the search space the predictor was fitted on."""
        return self.featurizer.space.name

    @property
    def setting(self) -> str:
        """Setting of that space."""
        return self.featurizer.space.setting

    @property
    def device_id(self) -> str | None:
        """Id of the device whose measurements it was fitted on (None if unknown)."""
        return device_id_of(self.device_fingerprint)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the features it reads."""
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
        return out + self.prior.log_value(np.asarray(features), self.feature_names)[:, None]

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
        _check_table(self.featurizer, all_x)
        seed = self.seed + 1
        names = self.feature_names
        choice = choose(all_x, all_y, names, self.config, seed) if retune else self.choice
        prior = fit_prior(choice.target, all_x, all_y, names)
        boosters = train_ensemble(all_x, all_y, names, prior, choice, self.config, seed)
        return dataclasses.replace(self, boosters=boosters, choice=choice, prior=prior, seed=seed,
                                   train_ids=self.train_ids + ids_new, train_x=all_x,
                                   train_y=all_y, created=_now())

    def write(self, directory: Path) -> None:
        """Its files (boosters, training data, metadata), written into an existing directory."""
        from predictor.io import write_predictor

        write_predictor(self, directory)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def as_features(featurizer: Featurizer, x: ArchInput) -> np.ndarray:
    """Feature rows of specs, token rows or ready features (checked for width)."""
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


def _check_table(featurizer: Featurizer, x: np.ndarray) -> None:
    if featurizer.feature_set.uses_table and np.any(x[:, featurizer.names.index("table_ms")] <= 0):
        raise ValueError("lookup-table sums must be > 0; check the table's entries")


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
    if feat.space != get_space(space_name, setting or feat.space.setting):
        raise ValueError(f"featurizer is for {feat.space.name}/{feat.space.setting}, "
                         f"not {space_name}/{setting}")
    feats = as_features(feat, x)
    y_arr = _check_y(y, len(feats))
    if len(y_arr) < 3:
        raise ValueError(f"{len(y_arr)} measured architectures are too few; fit on >= 3")
    train_ids = _ids(x, ids, len(feats))
    _check_table(feat, feats)
    choice = choose(feats, y_arr, feat.names, config, seed)
    log.info("predictor: %s", choice)
    prior = fit_prior(choice.target, feats, y_arr, feat.names)
    boosters = train_ensemble(feats, y_arr, feat.names, prior, choice, config, seed)
    return LatencyPredictor(boosters, feat, choice, prior, unit, config, seed,
                            dict(device_fingerprint) if device_fingerprint is not None else None,
                            train_ids, feats, y_arr, _now(),
                            dict(table_info) if table_info is not None else None)
