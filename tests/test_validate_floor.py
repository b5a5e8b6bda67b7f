"""`mnas predictor validate` measures its fresh archs a second time and prints the label noise
floor beside the predictor's accuracy (JSON key `noise_floor`, a "noise floor" row in the table).

Real parts: the local LiteRT interpreter, a real SQLite store, real exports of a Fashion-MNIST
slice of MnasNet (small nets); the predictor is a small real XGBoost fit on a synthetic table of
this device (no table build)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest_latency import shared_tflite_cache
from latency.lut import LatencyTable
from latency.session import DeviceSession
from latency.store import MeasurementStore
from latency.workdir import Workdir
from mnas_jax.cli.main import main
from mnas_jax.space import get_space, sample_tokens
from predictor.io import save_predictor, table_info_of
from predictor.model import PredictorConfig, fit_predictor

SLICE = "mnasnet@op=2,kernel=0,se=0,skip=1,filters=1"
SMALL = PredictorConfig(ensemble=2, grid=((1, 1.0),), max_rounds=40, early_stopping=10)


@pytest.fixture(scope="module")
def local_predictor(tmp_path_factory, request):
    """WORKDIR with a predictor of the local device (1 thread) on the slice, synthetic table."""
    work = tmp_path_factory.mktemp("work")
    shared_tflite_cache(request, work)
    with DeviceSession.open("local", work) as session:
        fp = session.device.fingerprint()
    space = get_space(SLICE, "fmnist")
    rng = np.random.default_rng(0)
    ms = {x.key: float(rng.uniform(0.01, 0.1)) for x in space.table_layers()}
    table = LatencyTable(SLICE, "fmnist", fp.to_dict(), fp.device_id, "mobilenetv2", 0.5, ms,
                         {k: v / 0.5 for k, v in ms.items()})
    path = table.save(Workdir(work).table(SLICE, "fmnist", fp.device_id))
    specs = list({s.arch_id: s for s in (space.decode(t) for t in
                                         sample_tokens(space.choices, 3, 30))}.values())
    y = np.array([table.sum_relative(s) * 1.2 for s in specs])
    pred = fit_predictor(specs, y, space_name=SLICE, setting="fmnist",
                         table=table.entries_relative, unit="relative",
                         device_fingerprint=fp.to_dict(), table_info=table_info_of(table, path),
                         config=SMALL)
    save_predictor(pred, work / "predictors" / "local")
    return work, fp


def test_validate_reports_the_noise_floor(local_predictor, capsys):
    work, fp = local_predictor
    args = ["predictor", "validate", "--model", str(work / "predictors" / "local"),
            "--device", "local", "--workdir", str(work), "--n", "3", "--quiet"]
    assert main(args + ["--json", "--rounds", "2"]) == 0  # 2 interleaved rounds a pass (default 4)
    rep = json.loads(capsys.readouterr().out)
    floor = rep["noise_floor"]
    assert floor["n"] == 3 and len(floor["pass2"]) == 3
    assert 0 <= floor["within_5"] <= floor["within_10"] <= 1 and -1 <= floor["kendall_tau"] <= 1
    assert floor["seconds_pass2"] > 0 and floor["rounds"] == 2
    # pass 2 is scored against pass 1 (the predictor's labels) with the predictor's metrics
    from predictor.metrics import noise_floor
    assert noise_floor(rep["measured"], floor["pass2"])["rmspe"] == pytest.approx(floor["rmspe"])
    # the report file holds it too; both passes are in the store (2 rounds each)
    saved = json.loads((work / rep["report"]).read_text())  # an absolute path stays one
    assert saved["noise_floor"]["pass2"] == floor["pass2"]
    with MeasurementStore.in_workdir(Workdir.of(work)) as store:
        rows = [r for r in store.measurements(kind="arch", device_id=fp.device_id)
                if r.record.arch_id in rep["arch_ids"]]
    assert len(rows) == 3 * 2 * 2

    # the table: a "noise floor" row beside the predictor's; --floor-n 1 measures one arch again
    assert main(args + ["--floor-n", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    cells = [[c.strip() for c in line.split("│")] for line in out.splitlines()]
    rows = {c[1]: c[2:] for c in cells if len(c) > 3}
    assert "predictor" in rows and "noise floor" in rows, out
    assert rows["noise floor"][0].endswith("%") and rows["noise floor"][1].endswith("%"), out
    assert "the same 1 archs measured twice" in out


def test_rounds_below_one_stop_in_one_line(local_predictor, capsys):
    work, _ = local_predictor
    assert main(["predictor", "validate", "--model", str(work / "predictors" / "local"),
                 "--workdir", str(work), "--n", "3", "--rounds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rounds 0" in err[0], err
