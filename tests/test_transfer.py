"""One predictor API: a transferred predictor is saved and loaded like any other and carries its
base and the base's table; a device predictor finds its table from its directory; `mnas
predictor predict --model DIR --json` works on both (lut_ms filled for the device predictor).
Real XGBoost fits on a real space slice; the table's entries are synthetic (no measuring)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from latency.lut import LatencyTable
from latency.workdir import Workdir
from mnas_jax.cli.main import main
from mnas_jax.space import get_space, sample_tokens
from predictor.io import table_info_of
from predictor.io import (TABLE_FILE, PredictorFileError, PredictorMismatchError, load_predictor,
                          predictor_table, read_metadata, save_predictor)
from predictor.model import PredictorConfig, fit_predictor
from predictor.transfer import TransferPredictor

SLICE = "mnasnet@op=2,kernel=0,se=0,skip=1,filters=1"
SMALL = PredictorConfig(ensemble=2, grid=((1, 1.0),), max_rounds=80, early_stopping=10)
FP_A = {"kind": "local", "cpu_model": "cpu A", "runtime": "litert", "runtime_version": "2.3.0",
        "threads": 1, "delegate": "xnnpack", "extra": {}}
FP_B = dict(FP_A, delegate="none")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """WORKDIR with A's table (tables/) and A's predictor (predictors/a), and B's latencies."""
    from predictor.model import device_id_of

    work = tmp_path_factory.mktemp("work")
    space = get_space(SLICE, "fmnist")
    layers = get_space(SLICE, "fmnist").table_layers()
    rng = np.random.default_rng(0)
    ms = {x.key: float(rng.uniform(0.05, 0.5)) for x in layers}
    table = LatencyTable(SLICE, "fmnist", FP_A, device_id_of(FP_A), "mobilenetv2", 2.0, ms,
                         {k: v / 2.0 for k, v in ms.items()})
    path = table.save(Workdir(work).table(SLICE, "fmnist", table.device_id))
    specs = [space.decode(t) for t in sample_tokens(space.choices, 1, 60)]
    specs = list({s.arch_id: s for s in specs}.values())
    y_a = np.array([table.sum_relative(s) * 1.1 for s in specs])
    base = fit_predictor(specs[:30], y_a[:30], space_name=SLICE, setting="fmnist",
                         table=table.entries_relative, unit="relative", device_fingerprint=FP_A,
                         table_info=table_info_of(table, path), config=SMALL)
    save_predictor(base, work / "predictors" / "a")
    macs = np.array([sum(x.in_size ** 2 * x.out_channels for x in s.layers()) for s in specs])
    y_b = 2.5 * y_a ** 0.8 * (macs / np.median(macs)) ** 0.2
    return work, table, specs, y_b


def test_device_predictor_finds_its_table(setup, tmp_path):
    work, table, specs, _ = setup
    a = load_predictor(work / "predictors" / "a")  # via the path recorded at fit time
    assert predictor_table(work / "predictors" / "a") == table
    moved = tmp_path / "elsewhere" / "a"  # a copy elsewhere: the recorded path still holds
    shutil.copytree(work / "predictors" / "a", moved)
    np.testing.assert_array_equal(load_predictor(moved).predict(specs).value,
                                  a.predict(specs).value)
    meta = read_metadata(moved)  # without the recorded path: WORKDIR/tables beside predictors/
    meta["table_info"].pop("path")
    (moved / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match=f"lookup table of device {table.device_id}"):
        load_predictor(moved)
    table.save(moved / TABLE_FILE)  # ...or a copy in the directory itself
    assert predictor_table(moved) == table
    changed = LatencyTable(**{**table.__dict__, "reference_ms": 3.0})
    changed.save(moved / TABLE_FILE)  # a rebuilt table is not the one it was fitted with
    with pytest.raises(PredictorFileError, match="rebuilt since the predictor was fitted"):
        load_predictor(moved)


def test_transfer_round_trip_carries_base_and_table(setup, tmp_path):
    work, table, specs, y_b = setup
    base = load_predictor(work / "predictors" / "a")
    tp = TransferPredictor.fit(base, specs[30:40], y_b[30:40], FP_B,
                               base_table=predictor_table(work / "predictors" / "a"),
                               reference_ms=4.0)
    out = save_predictor(tp, tmp_path / "b")
    meta = read_metadata(out)
    assert meta["kind"] == "mnas-transfer-predictor" and meta["n_train"] == 10
    assert (out / "base" / TABLE_FILE).is_file()
    aside = tmp_path / "aside"  # B needs nothing outside its directory: A's files moved away
    shutil.move(work, aside)
    try:
        loaded = load_predictor(out, space=SLICE, setting="fmnist", device_id=tp.device_id)
        np.testing.assert_allclose(loaded.predict(specs[40:]).value, tp.predict(specs[40:]).value,
                                   rtol=1e-12)
        assert loaded.train_ids == tp.train_ids and loaded.reference_ms == 4.0
        with pytest.raises(PredictorMismatchError, match="mnas predictor fit") as err:
            load_predictor(out, device_id=base.device_id)
        assert "--allow-mismatch" not in str(err.value)
        # calibration rounds refit it on its k points plus the new ones; the base stays
        again = loaded.refit(specs[40:45], y_b[40:45])
        assert len(again.train_ids) == 15 and again.base is loaded.base
        save_predictor(again, out)
        assert read_metadata(out)["n_train"] == 15
    finally:
        shutil.move(aside, work)


def test_cli_predict_on_device_and_transferred_predictors(setup, tmp_path, capsys):
    work, table, specs, y_b = setup
    base = load_predictor(work / "predictors" / "a")
    tp = TransferPredictor.fit(base, specs[30:40], y_b[30:40], FP_B, base_table=table,
                               reference_ms=4.0)
    save_predictor(tp, tmp_path / "b")
    arch = specs[50].to_string()
    assert main(["predictor", "predict", arch, "--model", str(work / "predictors/a"),
                 "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert a["lut_ms"] == pytest.approx(table.sum_ms(specs[50]))
    assert a["predicted_ms"] == pytest.approx(a["predicted_relative"] * table.reference_ms)
    assert main(["predictor", "predict", arch, "--model", str(tmp_path / "b"), "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert b["lut_ms"] is None and b["device"] == tp.device_id
    assert b["predicted_ms"] == pytest.approx(b["predicted_relative"] * 4.0)
    # an architecture outside the slice: one line naming it, exit 2
    assert main(["predictor", "predict", "mnasnet-a1", "--model", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "is outside the mnasnet@op=2" in err and len(err.strip().splitlines()) == 1
