"""Baselines the predictor is compared against, fitted on the same training split.

- `macs_linear`: latency = a * MACs + b (least squares).
- `table_sum`: the plain lookup-table sum (nothing fitted).
- `table_scale`: table sum x one scale (geometric mean of measured / sum on the training set).
- `table_affine`: a * table sum + b (least squares).
- `onehot_ridge`: linear in one-hot layer choices (scikit-learn's RidgeCV: the penalty picked
  by exact leave-one-out error on the training set), the model behind the Pixel 2 data's README
  figure.
Each fitted baseline is a frozen dataclass with `predict(inputs)`; fitting is a pure function.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

import numpy as np

RIDGE_ALPHAS = (0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What baselines may look at: the feature matrix (with its names) and the token rows."""

    features: np.ndarray
    names: tuple[str, ...]
    tokens: np.ndarray | None = None
    choices: tuple[int, ...] | None = None

    def column(self, name: str) -> np.ndarray:
        """One feature column by name; ValueError naming it when missing."""
        if name not in self.names:
            raise ValueError(f"feature {name!r} is missing; have {list(self.names)}")
        return self.features[:, self.names.index(name)]

    def subset(self, idx: np.ndarray) -> Inputs:
        """The rows `idx` of features and tokens."""
        tokens = None if self.tokens is None else self.tokens[idx]
        return dataclasses.replace(self, features=self.features[idx], tokens=tokens)


class Baseline(Protocol):
    """A fitted baseline: a name and predictions from Inputs."""

    name: str

    def predict(self, inputs: Inputs) -> np.ndarray:
        """Predicted latency per row of `inputs`."""


@dataclasses.dataclass(frozen=True)
class ColumnAffine:
    """a * column + b."""

    name: str
    column: str
    a: float
    b: float

    def predict(self, inputs: Inputs) -> np.ndarray:
        """a * column + b for each row of `inputs`."""
        return self.a * inputs.column(self.column) + self.b


@dataclasses.dataclass(frozen=True)
class OneHotRidge:
    """A ridge model on one-hot layer choices, with the penalty it was fitted with."""

    name: str
    choices: tuple[int, ...]
    weights: np.ndarray
    intercept: float
    alpha: float

    def predict(self, inputs: Inputs) -> np.ndarray:
        """Ridge prediction from the one-hot encoded token rows; ValueError without tokens."""
        if inputs.tokens is None:
            raise ValueError("the one-hot baseline needs token rows; pass Inputs(tokens=...)")
        return onehot(inputs.tokens, self.choices) @ self.weights + self.intercept


def _lstsq_affine(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 2 or np.ptp(x) == 0:
        return 0.0, float(np.mean(y))
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)


def fit_macs_linear(inputs: Inputs, y: np.ndarray) -> ColumnAffine:
    """Latency = a * MACs + b by least squares."""
    return ColumnAffine("macs_linear", "macs", *_lstsq_affine(inputs.column("macs"), y))


def table_sum(inputs: Inputs, y: np.ndarray | None = None) -> ColumnAffine:
    """The plain lookup-table sum (nothing fitted; `y` is ignored)."""
    inputs.column("table_ms")
    return ColumnAffine("table_sum", "table_ms", 1.0, 0.0)


def fit_table_scale(inputs: Inputs, y: np.ndarray) -> ColumnAffine:
    """Table sum x one scale: the geometric mean of measured / sum."""
    s = inputs.column("table_ms")
    return ColumnAffine("table_scale", "table_ms", float(np.exp(np.mean(np.log(y / s)))), 0.0)


def fit_table_affine(inputs: Inputs, y: np.ndarray) -> ColumnAffine:
    """Latency = a * table sum + b by least squares."""
    return ColumnAffine("table_affine", "table_ms", *_lstsq_affine(inputs.column("table_ms"), y))


def onehot(tokens: np.ndarray, choices: Sequence[int]) -> np.ndarray:
    """(n, D) tokens -> (n, sum(choices)) indicator matrix."""
    tokens = np.asarray(tokens)
    offsets = np.r_[0, np.cumsum(choices)[:-1]]
    out = np.zeros((len(tokens), int(np.sum(choices))))
    out[np.arange(len(tokens))[:, None], offsets + tokens] = 1.0
    return out


def fit_onehot_ridge(inputs: Inputs, y: np.ndarray,
                     alphas: Sequence[float] = RIDGE_ALPHAS) -> OneHotRidge:
    """Ridge on one-hot layer choices (unpenalised intercept), the penalty picked among `alphas`
    by exact leave-one-out error (scikit-learn's RidgeCV); the largest one below 3 archs."""
    from sklearn.linear_model import Ridge, RidgeCV

    if inputs.tokens is None or inputs.choices is None:
        raise ValueError("the one-hot baseline needs token rows and choices")
    x = onehot(inputs.tokens, inputs.choices)
    if len(y) > 2:
        fitted = RidgeCV(alphas=tuple(alphas)).fit(x, y)
        alpha = float(fitted.alpha_)
    else:
        alpha = float(alphas[-1])
        fitted = Ridge(alpha=alpha).fit(x, y)
    return OneHotRidge("onehot_ridge", tuple(inputs.choices), np.asarray(fitted.coef_, np.float64),
                       float(fitted.intercept_), alpha)


def fit_baselines(inputs: Inputs, y: np.ndarray) -> dict[str, Baseline]:
    """Every baseline the inputs allow (table ones need 'table_ms', one-hot needs tokens)."""
    y = np.asarray(y, dtype=np.float64)
    out: dict[str, Baseline] = {"macs_linear": fit_macs_linear(inputs, y)}
    if "table_ms" in inputs.names:
        out["table_sum"] = table_sum(inputs)
        out["table_scale"] = fit_table_scale(inputs, y)
        out["table_affine"] = fit_table_affine(inputs, y)
    if inputs.tokens is not None and inputs.choices is not None:
        out["onehot_ridge"] = fit_onehot_ridge(inputs, y)
    return out
