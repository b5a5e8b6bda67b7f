"""Predictor metrics and baselines against closed-form values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from predictor import metrics
from predictor.baselines import (RIDGE_ALPHAS, Inputs, fit_baselines, fit_macs_linear,
                                 fit_onehot_ridge, fit_table_affine, fit_table_scale, onehot)


def test_rmse_and_rmspe_closed_form():
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert metrics.rmspe([110, 90], [100, 100]) == pytest.approx(10.0)
    assert metrics.rmspe([100, 100], [100, 100]) == 0.0
    assert metrics.mean_bias([90, 90], [100, 100]) == pytest.approx(-10.0)


def test_within_shares():
    pred, true = [104, 106, 89, 100], [100, 100, 100, 100]
    assert metrics.within_5(pred, true) == 0.5
    assert metrics.within_10(pred, true) == 0.75
    assert metrics.within_10([110.0, 90.0], [100.0, 100.0]) == 1.0  # the bound is inclusive
    with pytest.raises(ValueError, match="tol"):
        metrics.within(pred, true, 10)


def test_rank_correlations_closed_form():
    assert metrics.kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert metrics.kendall_tau([4, 3, 2, 1], [1, 2, 3, 4]) == pytest.approx(-1.0)
    # one swapped pair: 5 concordant, 1 discordant of 6
    assert metrics.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # Spearman: 1 - 6 * sum d^2 / (n (n^2 - 1)) with sum d^2 = 2
    assert metrics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))


def test_noise_floor_closed_form():
    """Pass 2 scored against pass 1: pass 1 is the label (the denominator)."""
    pass1 = [1.00, 1.20, 1.40, 1.60, 2.00]
    pass2 = [1.04, 1.14, 1.54, 1.50, 2.30]  # +4%, -5%, +10%, -6.25%, +15%
    f = metrics.noise_floor(pass1, pass2)
    assert f["within_5"] == pytest.approx(2 / 5)  # the -5% bound is inclusive
    assert f["within_10"] == pytest.approx(4 / 5)
    # pairs in order except (1.54, 1.50) swapped: 9 concordant, 1 discordant of 10
    assert f["kendall_tau"] == pytest.approx(8 / 10)
    assert f["rmspe"] == pytest.approx(100 * math.sqrt(
        (0.04 ** 2 + 0.05 ** 2 + 0.10 ** 2 + 0.0625 ** 2 + 0.15 ** 2) / 5))
    assert f["bias_pct"] == pytest.approx(100 * (0.04 - 0.05 + 0.10 - 0.0625 + 0.15) / 5)
    assert f["n"] == 5
    same = metrics.noise_floor(pass1, pass1)
    assert same["within_5"] == 1.0 and same["kendall_tau"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="predictions for"):
        metrics.noise_floor(pass1, pass2[:3])


def test_report_and_coverage():
    rep = metrics.report([1.0, 2.0, 3.3], [1.0, 2.0, 3.0])
    assert set(rep) == {"rmse", "rmspe", "within_5", "within_10", "kendall_tau", "spearman",
                        "bias_pct", "n"}
    assert rep["n"] == 3 and rep["within_5"] == pytest.approx(2 / 3)
    assert rep["within_10"] == 1.0 and rep["kendall_tau"] == pytest.approx(1.0)
    assert metrics.coverage([1, 2, 3], [1.5, 2, 5], [0.5, 0.1, 1.0]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("pred,true,msg", [([1, 2], [1, 2, 3], "3 measurements"),
                                           ([1], [0], "> 0"), ([], [], "at least one"),
                                           ([np.nan], [1], "finite")])
def test_metric_input_errors(pred, true, msg):
    with pytest.raises(ValueError, match=msg):
        metrics.report(pred, true)


def _inputs(macs, table=None, tokens=None, choices=None):
    cols = [np.asarray(macs, float)] + ([np.asarray(table, float)] if table is not None else [])
    names = ("macs",) + (("table_ms",) if table is not None else ())
    return Inputs(np.stack(cols, 1), names, tokens, choices)


def test_column_baselines_recover_exact_relations():
    macs = np.array([1e6, 2e6, 3e6, 5e6])
    table = np.array([2.0, 3.0, 5.0, 7.0])
    y = 3e-6 * macs + 1.5
    lin = fit_macs_linear(_inputs(macs), y)
    assert lin.a == pytest.approx(3e-6) and lin.b == pytest.approx(1.5)
    inp = _inputs(macs, table)
    assert fit_table_scale(inp, 1.2 * table).a == pytest.approx(1.2)
    aff = fit_table_affine(inp, 1.1 * table + 0.4)
    assert (aff.a, aff.b) == (pytest.approx(1.1), pytest.approx(0.4))
    assert set(fit_baselines(inp, y)) == {"macs_linear", "table_sum", "table_scale",
                                          "table_affine"}


def _closed_form_ridge(x, y, alpha):
    """Ridge with an unpenalised intercept, solved in closed form: (w, b)."""
    xm, ym = x.mean(0), y.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, ym - xm @ w


@pytest.mark.parametrize("n", [2, 12, 40])
def test_onehot_ridge_matches_brute_force_leave_one_out(n):
    """The penalty is the one with the least leave-one-out error, refitted one by one; the
    predictions are the closed-form ridge's (the hand-written exact LOO this replaced)."""
    tokens = np.array([[0, 2], [1, 0], [1, 1]])
    assert onehot(tokens, (2, 3)).tolist() == [[1, 0, 0, 0, 1], [0, 1, 1, 0, 0], [0, 1, 0, 1, 0]]
    rng = np.random.default_rng(n)
    choices = (3, 4, 2)
    tokens = np.stack([rng.integers(0, c, size=n) for c in choices], axis=1)
    y = 5 + tokens @ np.array([0.5, -0.3, 1.0]) + rng.normal(scale=0.7, size=n)
    x = onehot(tokens, choices)
    inputs = _inputs(np.ones(n), tokens=tokens, choices=choices)
    model = fit_onehot_ridge(inputs, y)
    if n > 2:
        def loo_rmse(alpha):
            errs = []
            for i in range(n):
                keep = np.arange(n) != i
                w, b = _closed_form_ridge(x[keep], y[keep], alpha)
                errs.append(y[i] - (x[i] @ w + b))
            return np.sqrt(np.mean(np.square(errs)))

        assert model.alpha == RIDGE_ALPHAS[int(np.argmin([loo_rmse(a) for a in RIDGE_ALPHAS]))]
    else:
        assert model.alpha == RIDGE_ALPHAS[-1]
    w, b = _closed_form_ridge(x, y, model.alpha)
    np.testing.assert_allclose(model.predict(inputs), x @ w + b, rtol=1e-9, atol=1e-9)


def test_onehot_ridge_fits_an_additive_truth():
    rng = np.random.default_rng(1)
    choices = (3, 3, 3)
    tokens = rng.integers(0, 3, size=(60, 3))
    effect = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 1.0], [2.0, 2.0, 0.5]])
    y = 10 + effect[np.arange(3), tokens].sum(1)
    model = fit_onehot_ridge(_inputs(np.ones(60), tokens=tokens, choices=choices), y)
    pred = model.predict(_inputs(np.ones(60), tokens=tokens, choices=choices))
    assert model.alpha == min(model.alpha, 0.1) and np.abs(pred - y).max() < 0.05
