"""A device's reference time is taken per setting (per reference model hash) everywhere: one
work directory that measured the imagenet and the fmnist settings gives the table's
`reference_ms`, `predict --json`'s `predicted_ms` and a ms target of each setting against its own
reference. Real parts: the local LiteRT device, real exports, a real SQLite store, a real
XGBoost fit. A ms target on a fresh work directory measures the reference first."""

from __future__ import annotations

import json

import pytest

from conftest_latency import shared_tflite_cache
from latency.cached import build_space_table, measure_relative, reference_hash, reference_ms
from latency.lut_build import assemble_table
from latency.measurement import Fingerprint, Measurement
from latency.protocol import MeasureProtocol
from latency.reference import stored_reference_ms
from latency.session import DeviceSession
from latency.store import MeasurementRecord, MeasurementStore, new_session_id
from mnas_jax.cli.main import main
from mnas_jax.search.config import SearchConfig
from mnas_jax.search.pipeline import resolve_search_target
from mnas_jax.search.target import resolve_target
from mnas_jax.space import get_space, sample_specs
from predictor.io import TABLE_FILE, save_predictor
from predictor.relative_fit import fit_on_device

FAST = MeasureProtocol(warmup_runs=2, min_runs=10, min_seconds=0.01)
SLICE = "mnasnet@op=2,kernel=0,se=0,skip=1,filters=1"  # 20 table layers


def _measure_reference_again(session: DeviceSession, setting: str, times: int) -> None:
    """More stored rows of a setting's reference, so that a median over every reference row of
    the device would be this setting's."""
    data = session.reference_bytes(setting)
    key, sid = reference_hash(session, setting), new_session_id()
    for _ in range(times):
        m = session.device.measure(data, session.protocol)
        session.store.append(MeasurementRecord.from_measurement(
            m, model_hash=key, kind="reference", protocol=session.protocol, session=sid,
            source="test", key="mobilenetv2"))


@pytest.mark.slow  # 12-35 s here (conversions, a table, a fit); the fast sibling follows
def test_two_settings_in_one_workdir_each_use_their_own_reference(tmp_path, capsys, request) -> None:
    shared_tflite_cache(request, tmp_path)
    space = get_space(SLICE, "fmnist")
    with DeviceSession.open("local", tmp_path, protocol=FAST, rounds=1) as session:
        device_id = session.device.fingerprint().device_id
        imagenet_ms = reference_ms(session, "imagenet")  # a fresh store: measured here
        _measure_reference_again(session, "imagenet", 6)  # imagenet rows outnumber fmnist's
        table = build_space_table(session, space, passes=1, progress=False)
        fmnist_all = stored_reference_ms(session.store, device_id,
                                         reference_hash(session, "fmnist"), last=None)
        assert fmnist_all is not None and fmnist_all < 0.6 * imagenet_ms  # 32 vs 224 pixels
        assert table.reference_ms == pytest.approx(fmnist_all)
        specs = sample_specs(space, 4, 0)
        y = measure_relative(session, specs, progress=False)
        pred = fit_on_device(specs, y, table, fingerprint=session.device.fingerprint().to_dict(),
                             space=space)
        fmnist_recent = reference_ms(session, "fmnist")
        # ms targets: each setting's against its own reference
        t_fm = resolve_search_target(SearchConfig(target="2ms", setting="fmnist"), space, session)
        t_in = resolve_search_target(SearchConfig(target="2ms", setting="imagenet"),
                                     get_space("mnasnet", "imagenet"), session)
        imagenet_recent = reference_ms(session, "imagenet")
        imagenet_stored = stored_reference_ms(session.store, device_id,
                                              reference_hash(session, "imagenet"))
    assert t_fm.value == pytest.approx(2.0 / fmnist_recent)
    assert t_in.value == pytest.approx(2.0 / imagenet_recent)
    assert imagenet_recent == imagenet_stored and fmnist_recent < 0.6 * imagenet_recent

    pdir = tmp_path / "predictors" / "p"
    save_predictor(pred, pdir)
    table.save(pdir / TABLE_FILE)
    capsys.readouterr()
    assert main(["predictor", "predict", specs[0].to_string(), "--model", str(pdir), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["reference_ms"] == pytest.approx(fmnist_all)
    assert row["predicted_ms"] == pytest.approx(row["predicted_relative"] * fmnist_all)


def test_table_and_targets_take_only_their_settings_reference_rows(tmp_path) -> None:
    """The fast sibling (a real SQLite store, rows written here): 7 imagenet references at 4 ms
    and 2 fmnist ones at 1 ms; the fmnist table and targets see 1 ms only."""
    fp = Fingerprint("local", "test cpu", "litert", "2.3.0", 1, "xnnpack", {})
    store = MeasurementStore.in_workdir(tmp_path)
    layers = get_space(SLICE, "fmnist").table_layers()

    def add(kind, ms, model, key=None, ref=None):
        m = Measurement(ms, ms, 0.0, 0.0, 5, 1, 0.01, fp, 0)
        store.append(MeasurementRecord.from_measurement(
            m, model_hash=model, kind=kind, protocol=FAST, session="s", source="test", key=key,
            reference_ms=ref, relative=None if ref is None else ms / ref))

    for _ in range(7):
        add("reference", 4.0, "imagenet-ref", key="mobilenetv2")
    add("reference", 1.0, "fmnist-ref", key="mobilenetv2")
    for layer in layers:
        add("layer", 0.05, "layer", key=layer.key, ref=1.0)
    add("reference", 1.0, "fmnist-ref", key="mobilenetv2")
    table = assemble_table(layers, store, space=SLICE, setting="fmnist", fingerprint=fp.to_dict(),
                           device_id=fp.device_id, reference_name="mobilenetv2",
                           reference_hash="fmnist-ref")
    assert table.reference_ms == 1.0
    assert stored_reference_ms(store, fp.device_id, "imagenet-ref") == 4.0
    assert stored_reference_ms(store, fp.device_id, "other") is None
    space = get_space("mnasnet", "fmnist")
    assert resolve_target("2ms", space, stored_reference_ms(store, fp.device_id,
                                                            "fmnist-ref")).value == 2.0


def test_a_ms_target_on_a_fresh_workdir_measures_the_reference_first(tmp_path, request) -> None:
    shared_tflite_cache(request, tmp_path)
    space = get_space("mnasnet", "fmnist")
    with DeviceSession.open("local", tmp_path, protocol=FAST, rounds=2) as session:
        assert session.store.count() == 0
        target = resolve_search_target(SearchConfig(target="1ms"), space, session)
        rows = session.store.measurements(kind="reference")
        assert len(rows) == 2 and {r.record.model_hash for r in rows} == {
            reference_hash(session, "fmnist")}
        assert target.value == pytest.approx(1.0 / reference_ms(session, "fmnist"))
        # a relative target needs no measurement
        resolve_search_target(SearchConfig(target="0.9x mobilenetv2"), space, session)
        assert session.store.count() == 2
