"""Predictor save/load: identical predictions, checked files, clear mismatch errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnas_jax.space import reference
from predictor.external import default_data_dir, load_fbnet_csv
from predictor.features import OutsideSpaceError
from predictor.io import (PredictorFileError, PredictorMismatchError, load_predictor,
                          read_metadata, save_predictor)
from predictor.model import PredictorConfig, device_id_of, fit_predictor

CONFIG = PredictorConfig(ensemble=2, grid=((2, 1.0),), max_rounds=200)
FINGERPRINT = {"kind": "local", "cpu_model": "test cpu", "runtime": "litert",
               "runtime_version": "2.3.0", "threads": 1, "delegate": "xnnpack", "extra": {}}


@pytest.fixture(scope="module")
def data():
    return load_fbnet_csv(default_data_dir() / "pixel2.csv")


@pytest.fixture(scope="module")
def fitted(data):
    return fit_predictor(data.tokens[:150], data.ms[:150], space_name="fbnet",
                         ids=data.ids[:150], device_fingerprint=FINGERPRINT, seed=3,
                         config=CONFIG)


@pytest.fixture
def saved(fitted, tmp_path):
    return save_predictor(fitted, tmp_path / "pred")


def test_round_trip_gives_identical_predictions(fitted, saved, data):
    loaded = load_predictor(saved, space="fbnet", setting="cifar100",
                            device_fingerprint=FINGERPRINT)
    a, b = fitted.predict(data.tokens[150:400]), loaded.predict(data.tokens[150:400])
    np.testing.assert_array_equal(a.value, b.value)
    np.testing.assert_array_equal(a.uncertainty, b.uncertainty)
    assert loaded.train_ids == fitted.train_ids and loaded.choice == fitted.choice
    assert loaded.prior == fitted.prior and loaded.unit == "ms"
    np.testing.assert_array_equal(loaded.train_x, fitted.train_x)
    meta = read_metadata(saved)
    assert meta["schema"] == 1 and meta["features"]["names"] == list(fitted.feature_names)
    assert meta["device_id"] == device_id_of(FINGERPRINT) and meta["unit"] == "ms"
    assert meta["train_ids"][0] == "pixel2:0" and "xgboost" in meta["versions"]
    assert set(meta["files"]) == {"booster_0.json", "booster_1.json", "training.npz"}
    json.loads((saved / "booster_0.json").read_text())  # XGBoost's own JSON, no pickle
    # refit after loading works from the stored training data
    assert len(loaded.refit(data.tokens[400:420], data.ms[400:420]).train_ids) == 170


def test_save_replaces_atomically(fitted, saved, monkeypatch):
    (saved / "stale.txt").write_text("old")
    old = saved.resolve()
    save_predictor(fitted, saved)
    assert not (saved / "stale.txt").exists()
    # the replaced version stays whole for readers that resolved the link before the switch
    assert (old / "stale.txt").exists() and saved.resolve() != old
    monkeypatch.setattr("mnas_jax.files.KEEP_SECONDS", 0.0)  # then it goes, at a later save
    save_predictor(fitted, saved)
    names = sorted(p.name for p in saved.parent.iterdir())
    # the published name and the one version it points to; no temp dirs, no old versions
    assert len(names) == 2 and names[1] == "pred" and names[0].startswith(".pred.v")
    assert saved.resolve().name == names[0]


def test_a_reader_never_sees_a_missing_or_partial_predictor(fitted, saved):
    """Issue 14, item 5: saves in a loop beside a reader; every read finds a whole predictor."""
    import threading

    stop, seen, errors = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(read_metadata(saved)["files"])
            except Exception as err:  # noqa: BLE001 - any failure to read is the defect
                errors.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(15):
            save_predictor(fitted, saved)
    finally:
        stop.set()
        reader.join()
    assert not errors and seen
    load_predictor(saved)


def test_a_killed_save_leaves_the_previous_predictor(saved, tmp_path, monkeypatch):
    """SIGKILL a process that saves over and over: the directory still loads afterwards."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = f"""
import sys
sys.path.insert(0, {str(os.path.dirname(__file__))!r})
from predictor.io import load_predictor, save_predictor
pred = load_predictor({str(saved)!r})
print("ready", flush=True)
while True:
    save_predictor(pred, {str(saved)!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    load_predictor(saved)
    monkeypatch.setattr("mnas_jax.files.KEEP_SECONDS", 0.0)  # what no reader can hold any more
    save_predictor(load_predictor(saved), saved)  # and the next save tidies what the kill left
    assert len(list(saved.parent.glob(".pred.*"))) == 1


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_booster_file_is_named(saved, damage):
    path = saved / "booster_1.json"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncate"
                     else raw.replace(b"split_conditions", b"split_conditiona", 1))
    with pytest.raises(PredictorFileError, match=r"booster_1\.json is truncated or corrupted"):
        load_predictor(saved)


def test_missing_files_and_bad_metadata(saved, tmp_path):
    (saved / "training.npz").unlink()
    with pytest.raises(PredictorFileError, match=r"training\.npz is missing"):
        load_predictor(saved)
    meta_path = saved / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, schema=99)))
    with pytest.raises(PredictorFileError, match="schema 99"):
        load_predictor(saved)
    meta_path.write_text(meta_path.read_text()[:40])
    with pytest.raises(PredictorFileError, match="truncated or not JSON"):
        load_predictor(saved)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_predictor(tmp_path / "nothing")


def test_wrong_space_or_device_is_a_mismatch_unless_allowed(saved, data):
    with pytest.raises(PredictorMismatchError, match="space 'fbnet'.*'mnasnet' was expected"):
        load_predictor(saved, space="mnasnet")
    other = dict(FINGERPRINT, threads=2)
    with pytest.raises(PredictorMismatchError) as err:
        load_predictor(saved, device_fingerprint=other)
    assert device_id_of(FINGERPRINT) in str(err.value) and device_id_of(other) in str(err.value)
    assert isinstance(err.value, ValueError)
    loaded = load_predictor(saved, space="mnasnet", device_fingerprint=other,
                            allow_mismatch=True)
    assert loaded.predict(data.tokens[:2]).value.shape == (2,)


def test_arch_outside_the_space_is_a_clear_error(saved):
    loaded = load_predictor(saved)
    with pytest.raises(OutsideSpaceError, match="outside the fbnet/cifar100 space"):
        loaded.predict([reference("mnasnet-a1", "imagenet")])


def test_table_predictor_needs_its_table(tmp_path):
    def cost(layer):
        return 1e-6 * layer.in_size ** 2 * layer.out_channels + 0.01

    from mnas_jax.space import get_space, sample_tokens

    tokens = sample_tokens(get_space("fbnet").choices, 0, 40)
    y = np.linspace(10, 30, 40)
    pred = fit_predictor(tokens, y, space_name="fbnet", table=cost, config=CONFIG,
                         table_info={"device_id": "abc"})
    path = save_predictor(pred, tmp_path / "t")
    with pytest.raises(PredictorFileError, match="lookup table of device abc .* not found"):
        load_predictor(path)
    loaded = load_predictor(path, table=cost)
    np.testing.assert_array_equal(loaded.predict(tokens).value, pred.predict(tokens).value)
