"""Predictor features, fitting on the real Pixel 2 data, the table path, refit and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnas_jax.cli.main import main
from mnas_jax.costs import layer_macs, layer_params
from mnas_jax.space import get_space, reference, sample_tokens
from predictor import metrics
from predictor.baselines import Inputs, fit_baselines
from predictor.external import default_data_dir, load_fbnet_csv, split
from predictor.features import OutsideSpaceError, _mac_parts, make_featurizer
from predictor.model import PredictorConfig, fit_predictor

SMALL = PredictorConfig(ensemble=3, grid=((1, 1.0), (3, 1.0)), max_rounds=300)
PIXEL2 = default_data_dir() / "pixel2.csv"


def toy_cost(layer) -> float:
    """A made-up per-layer table (ms): compute plus memory plus a fixed cost per layer."""
    return 2e-6 * layer_macs(layer) + 1e-5 * layer.in_size ** 2 * layer.in_channels + 0.01


@pytest.fixture(scope="module")
def pixel2():
    return load_fbnet_csv(PIXEL2)


@pytest.mark.parametrize("space,setting", [("fbnet", None), ("mnasnet", "fmnist"),
                                           ("mnasnet", "imagenet")])
def test_token_path_equals_layer_by_layer_sum(space, setting):
    feat = make_featurizer(space, setting, table=toy_cost)
    tokens = sample_tokens(feat.space.choices, 7, 40)
    fast = feat.from_tokens(tokens)
    slow = np.stack([feat.features_direct(feat.space.decode(t)) for t in tokens])
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    specs = [feat.space.decode(t) for t in tokens[:5]]
    np.testing.assert_allclose(feat.from_specs(specs), fast[:5], rtol=1e-12)
    assert len(set(feat.names)) == len(feat.names) == fast.shape[1]
    assert {"table_ms", "s0_table_ms", "macs", "params", "max_weight_bytes"} <= set(feat.names)
    # features match the analytic cost model of the whole architecture
    spec = feat.space.decode(tokens[0])
    assert fast[0, feat.names.index("macs")] == sum(layer_macs(x) for x in spec.layers())
    assert fast[0, feat.names.index("params")] == sum(layer_params(x) for x in spec.layers())
    assert fast[0, feat.names.index("table_ms")] == pytest.approx(
        sum(toy_cost(x) for x in spec.layers()))


def test_mac_parts_add_up_to_layer_macs():
    for name, setting in (("fbnet", None), ("mnasnet", "imagenet")):
        space = get_space(name, setting)
        for row in sample_tokens(space.choices, 3, 10):
            for layer in space.decode(row).layers():
                assert sum(_mac_parts(layer).values()) == layer_macs(layer), layer.key


def test_features_reject_archs_and_tokens_outside_the_space():
    feat = make_featurizer("fbnet")
    with pytest.raises(OutsideSpaceError, match="outside the fbnet/cifar100 space"):
        feat.from_specs([reference("mobilenetv2", "imagenet")])
    with pytest.raises(OutsideSpaceError, match=r"token 9 at row 0, decision 3 \(l3.op\) is outside the fbnet/cifar100 space"):
        feat.from_tokens(np.array([[0, 0, 0, 9] + [0] * 18]))
    with pytest.raises(OutsideSpaceError, match=r"shape \(n, 22\)"):
        feat.from_tokens(np.zeros((2, 5), dtype=int))
    table = make_featurizer("fbnet", table={"nope": 1.0})
    with pytest.raises(OutsideSpaceError, match="not in the lookup table"):
        table.from_tokens(np.zeros((1, 22), dtype=int))


def test_pixel2_fit_beats_a_mean_predictor(pixel2):
    tr, te = split(len(pixel2), 300, seed=0, test_size=500)
    pred = fit_predictor(pixel2.tokens[tr], pixel2.ms[tr], space_name="fbnet", seed=0,
                         ids=[pixel2.ids[i] for i in tr], config=SMALL)
    value, unc = pred.predict(pixel2.tokens[te])
    true = pixel2.ms[te]
    mean = np.full(len(te), pixel2.ms[tr].mean())
    assert metrics.rmse(value, true) < 0.85 * metrics.rmse(mean, true)
    assert metrics.within_10(value, true) > metrics.within_10(mean, true) + 0.1
    assert metrics.kendall_tau(value, true) > 0.5
    assert np.all(unc > 0) and pred.unit == "ms" and pred.train_ids[0].startswith("pixel2:")
    # specs, token rows and features give the same numbers
    specs = [pred.featurizer.space.decode(t) for t in pixel2.tokens[te[:3]]]
    np.testing.assert_allclose(pred.predict(specs).value, value[:3])
    np.testing.assert_allclose(pred.predict(pred.features(specs)).value, value[:3])


def test_table_target_learns_what_the_table_misses():
    """Synthetic device: the table sum misses a cache penalty growing with the weights."""
    feat = make_featurizer("mnasnet", "fmnist", table=toy_cost)
    tokens = sample_tokens(feat.space.choices, 11, 500)
    x = feat.from_tokens(tokens)
    table, params = x[:, feat.names.index("table_ms")], x[:, feat.names.index("params")]
    noise = np.random.default_rng(0).normal(0, 0.005, len(x))
    y = table * (1.03 + 0.25 * params / (params + np.median(params))) * np.exp(noise)
    pred = fit_predictor(tokens[:200], y[:200], space_name="mnasnet", setting="fmnist",
                         table=toy_cost, featurizer=feat, config=SMALL, unit="relative")
    value = pred.predict(x[200:]).value
    base = fit_baselines(Inputs(x[:200], feat.names), y[:200])
    scale = base["table_scale"].predict(Inputs(x[200:], feat.names))
    assert metrics.within_5(value, y[200:]) >= metrics.within_5(scale, y[200:])
    assert metrics.rmspe(value, y[200:]) < metrics.rmspe(scale, y[200:])
    assert pred.choice.target in ("log_ratio", "log_ridge", "log_macs", "log_ms") and pred.unit == "relative"


def test_ridge_prior_recovers_a_smooth_table_error_and_saves_as_json(tmp_path):
    """log(measured / table) linear in log(params): the ridge prior alone nearly fits it, and the
    predictor round-trips through its JSON files."""
    from predictor.io import load_predictor, save_predictor
    from predictor.model import PredictorConfig, fit_ridge_prior

    feat = make_featurizer("mnasnet", "fmnist", table=toy_cost)
    tokens = sample_tokens(feat.space.choices, 12, 300)
    x = feat.from_tokens(tokens)
    table, params = x[:, feat.names.index("table_ms")], x[:, feat.names.index("params")]
    y = table * np.exp(0.02 + 0.1 * np.log(params / np.median(params)))
    prior = fit_ridge_prior(x[:200], y[:200], feat.names, lam=1e-3)
    approx = np.exp(prior.log_value(x[200:], feat.names))
    assert metrics.within_5(approx, y[200:]) == 1.0
    pred = fit_predictor(tokens[:200], y[:200], space_name="mnasnet", setting="fmnist", table=toy_cost,
                         featurizer=feat, config=PredictorConfig(target="log_ridge", ensemble=2, grid=((2, 1.0),)),
                         unit="relative")
    save_predictor(pred, tmp_path / "p")
    again = load_predictor(tmp_path / "p", table=toy_cost)
    np.testing.assert_allclose(again.predict(tokens[200:]).value, pred.predict(tokens[200:]).value, rtol=1e-6)
    assert again.prior == pred.prior and again.choice.target == "log_ridge"


def test_refit_adds_data_and_keeps_the_recipe(pixel2):
    pred = fit_predictor(pixel2.tokens[:60], pixel2.ms[:60], space_name="fbnet", config=SMALL)
    new = pred.refit(pixel2.tokens[60:90], pixel2.ms[60:90], ids=pixel2.ids[60:90])
    assert len(new.train_ids) == 90 and new.train_ids[-1] == pixel2.ids[89]
    assert new.choice == pred.choice and new.train_x.shape == (90, len(pred.feature_names))
    with pytest.raises(ValueError, match="3 latencies for 30"):
        pred.refit(pixel2.tokens[60:90], [1.0, 2.0, 3.0])


def test_cli_fit_and_predict(tmp_path, capsys):
    out = tmp_path / "p2"
    rc = main(["predictor", "fit", "--data", str(PIXEL2), "--space", "fbnet", "--train-size",
               "150", "--test-size", "300", "--seed", "1", "-o", str(out), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert {"predictor", "onehot_ridge", "macs_linear"} <= set(report["methods"])
    assert report["train_size"] == 150 and report["test_size"] == 300
    for name in ("metadata.json", "report.json", "predicted_vs_measured.png", "booster_0.json"):
        assert (out / name).is_file()
    ops = "k5_e6 skip k3_e1_g2 skip k5_e1 skip skip skip k5_e6 k5_e1 k3_e1_g2 k5_e1 k5_e6 " \
          "k3_e6 k3_e3 k5_e6 k3_e6 k3_e3 k5_e1 k3_e3 k5_e1 k5_e1_g2"
    assert main(["predictor", "predict", ops, "--model", str(out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["arch_id"] == get_space("fbnet").decode(
        get_space("fbnet").parse_ops(ops)).arch_id
    assert 10 < row["predicted_ms"] < 80 and row["uncertainty_ms"] > 0
    assert row["predicted_relative"] is None and row["lut_ms"] is None
    assert main(["predictor", "predict", "mobilenetv2", "--model", str(out)]) == 2
    assert "outside the fbnet" in capsys.readouterr().err
    assert main(["predictor", "fit", "--data", str(PIXEL2), "--space", "fbnet",
                 "--train-size", "9000", "-o", str(tmp_path / "x")]) == 2
    assert "--train-size 9000" in capsys.readouterr().err


def test_transfer_to_a_device_with_another_profile():
    """Device B weighs MACs differently from device A (like XNNPACK off): 20 measurements on B
    and device A's predictor give B's latencies; fewer than 5 give a scale only; 1 is an error."""
    from predictor.transfer import TransferPredictor

    space = get_space("mnasnet", "fmnist")
    specs = [space.decode(t) for t in sample_tokens(space.choices, 21, 260)]
    feat = make_featurizer("mnasnet", "fmnist", table=toy_cost)
    x = feat.from_tokens(np.array([space.encode(s) for s in specs]))
    table, macs = x[:, feat.names.index("table_ms")], x[:, feat.names.index("macs")]
    y_a = table * 1.05
    y_b = 3.0 * y_a**0.7 * (macs / np.median(macs)) ** 0.3
    base = fit_predictor(specs[:60], y_a[:60], space_name="mnasnet", setting="fmnist", table=toy_cost,
                         featurizer=feat, config=SMALL, unit="relative")
    scale_only = TransferPredictor.fit(base, specs[60:63], y_b[60:63])
    tp = TransferPredictor.fit(base, specs[60:80], y_b[60:80])
    held = slice(80, 260)
    assert scale_only.columns == () and scale_only.weights == (1.0,)
    assert metrics.within_10(tp.predict(specs[held])[0], y_b[held]) >= 0.9
    assert metrics.rmspe(tp.predict(specs[held])[0], y_b[held]) < metrics.rmspe(
        scale_only.predict(specs[held])[0], y_b[held])
    with pytest.raises(ValueError, match=">= 2 measurements"):
        TransferPredictor.fit(base, specs[:1], y_b[:1])
