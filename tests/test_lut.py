"""Lookup table: enumeration covers every sampled layer, a resumed build re-measures nothing,
files round-trip and refuse the wrong device/space or damage, the vectorised scorer equals the
per-spec sum. Real exporter, real LiteRT interpreter, real SQLite store."""

import json

import numpy as np
import pytest

from latency.devices.local import LocalDevice
from latency.export import Exporter
from latency.lut import LatencyTable, MissingLayerError, TableMismatchError
from latency.lut_build import LUT_PROTOCOL, build_table
from latency.lut_score import TableScorer
from latency.store import MeasurementStore
from mnas_jax.space import get_space, reference, sample_tokens


class CountingDevice:
    """The real local device, counting what it measures."""

    def __init__(self):
        self.inner, self.calls = LocalDevice(threads=1), 0

    def fingerprint(self):
        return self.inner.fingerprint()

    def measure(self, model, protocol, timeout_s=None):
        self.calls += 1
        return self.inner.measure(model, protocol)


@pytest.fixture(scope="module")
def exporter():
    return Exporter()


def test_enumeration_covers_sampled_archs():
    for setting in ("imagenet", "fmnist"):
        keys = {layer.key for layer in get_space("mnasnet", setting).table_layers()}
        space = get_space("mnasnet", setting)
        for tokens in sample_tokens(space.choices, 3, 300):
            assert {layer.key for layer in space.decode(tokens).layers()} <= keys


def _build_setup(tmp_path, exporter, **options):
    """A real store and counting local device, and build_table's arguments (fast protocol)."""
    store, dev = MeasurementStore.in_workdir(tmp_path), CountingDevice()
    fast = LUT_PROTOCOL.__class__(warmup_runs=1, min_runs=5, min_seconds=0.0, max_retries=0)
    common = dict(space="mnasnet", setting="fmnist", device=dev, store=store,
                  export_layer=exporter.export_layer, protocol=fast, progress=False,
                  reference_bytes=exporter.export(reference("mobilenetv2-0.35", "fmnist")),
                  **options)
    return store, dev, common


def test_resumed_build_remeasures_nothing(tmp_path, exporter):
    layers = get_space("mnasnet", "fmnist").table_layers()[:14]
    store, dev, common = _build_setup(tmp_path, exporter, reference_every=5)
    with pytest.raises(ValueError, match="have no measurement"):
        build_table(layers, max_layers=6, **common)  # "killed" after 6 layers
    assert len(store.measurements(kind="layer")) == 6
    dev.calls = 0
    table = build_table(layers, **common)
    layer_rows = store.measurements(kind="layer")
    assert len(layer_rows) == 14  # the 6 stored ones were not measured again
    n_refs = dev.calls - 8
    assert 1 <= n_refs <= 3  # the rest of the calls are reference measurements
    assert set(table.entries_ms) == {layer.key for layer in layers}
    assert all(v > 0 for v in table.entries_ms.values())
    assert all(v > 0 for v in table.entries_relative.values())


def _table(layers, device_id="dev1"):
    rng = np.random.default_rng(0)
    return LatencyTable("mnasnet", "fmnist", {"kind": "test"}, device_id, "mobilenetv2", 1.0,
                        {x.key: float(rng.uniform(0.01, 1)) for x in layers},
                        {x.key: float(rng.uniform(0.01, 1)) for x in layers})


def test_table_file_checks(tmp_path):
    table = _table(get_space("mnasnet", "fmnist").table_layers())
    path = table.save(tmp_path / "t.json")
    assert LatencyTable.load(path, space="mnasnet", setting="fmnist", device_id="dev1") == table
    with pytest.raises(TableMismatchError, match="device_id 'dev1', not 'phone'"):
        LatencyTable.load(path, device_id="phone")
    with pytest.raises(TableMismatchError, match="setting 'fmnist', not 'imagenet'"):
        LatencyTable.load(path, setting="imagenet")
    assert LatencyTable.load(path, device_id="phone", allow_mismatch=True) == table
    text = path.read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="truncated"):
        LatencyTable.load(tmp_path / "cut.json")
    doc = json.loads(text)
    key = next(iter(doc["table"]["entries_ms"]))
    doc["table"]["entries_ms"][key] += 1.0
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="corrupted"):
        LatencyTable.load(tmp_path / "bad.json")
    with pytest.raises(MissingLayerError, match="outside the table's space"):
        table.sum_ms(reference("mnasnet-a1", "imagenet"))


def test_vectorised_scorer_equals_sum():
    for setting in ("imagenet", "fmnist"):
        space = get_space("mnasnet", setting)
        table = _table(get_space("mnasnet", setting).table_layers())
        scorer = TableScorer.build(space, table)
        rel = TableScorer.build(space, table, relative=True)
        tokens = sample_tokens(space.choices, 9, 300)
        tokens[:50, 5] = 0  # block 0 with no layers
        tokens[50:100, 41] = 0  # block 6 with no layers
        want = [table.sum_ms(space.decode(t)) for t in tokens]
        np.testing.assert_allclose(scorer.score(tokens), want, rtol=1e-12)
        np.testing.assert_allclose(rel.score(tokens[:20]),
                                   [table.sum_relative(space.decode(t)) for t in tokens[:20]],
                                   rtol=1e-12)


def test_two_passes_resume_and_average(tmp_path, exporter):
    layers = get_space("mnasnet", "fmnist").table_layers()[:5]
    store, dev, common = _build_setup(tmp_path, exporter, reference_every=3, passes=2)
    with pytest.raises(ValueError, match="have no measurement"):
        build_table(layers[:5], max_layers=4, **common)  # killed inside the first pass
    table = build_table(layers, **common)
    rows = store.measurements(kind="layer")
    keys = [r.record.key for r in rows]
    assert len(rows) == 10 and all(keys.count(x.key) == 2 for x in layers)
    assert keys[5:] == [x.key for x in layers[::-1]]  # the second pass runs in reverse order
    dev.calls = 0
    build_table(layers, **common)  # complete: nothing to measure
    assert dev.calls == 0
    for x in layers:
        ms = [r.record.min_ms for r in rows if r.record.key == x.key]
        assert table.entries_ms[x.key] == pytest.approx(np.sqrt(ms[0] * ms[1]), rel=1e-12)
    with pytest.raises(ValueError, match="passes=0"):
        build_table(layers, **dict(common, passes=0))


def test_entries_use_the_median_of_nearby_references(tmp_path):
    """One reference measured during a hiccup (5x slower) must not scale the layers after it."""
    from latency.lut_build import stored_layer_entries
    from latency.measurement import Fingerprint, Measurement
    from latency.protocol import MeasureProtocol
    from latency.store import MeasurementRecord

    fp = Fingerprint("local", "test cpu", "litert", "2.3.0", 1, "xnnpack", {})
    store = MeasurementStore.in_workdir(tmp_path)

    def add(kind, ms, key=None, ref=None):
        m = Measurement(ms, ms, 0.0, 0.0, 5, 1, 0.01, fp, 0)
        store.append(MeasurementRecord.from_measurement(
            m, model_hash="0" * 64, kind=kind, protocol=MeasureProtocol(), session="s",
            source="test", key=key, reference_ms=ref, relative=None if ref is None else ms / ref))

    refs = [2.0, 2.0, 10.0, 2.0, 2.0]  # the third one hit a hiccup
    for i, r in enumerate(refs):
        add("reference", r, key="mobilenetv2")
        add("layer", 1.0, key=f"l{i}", ref=r)
    entries = stored_layer_entries(store, fp.device_id, window=2)
    assert {k: v[1] for k, v in entries.items()} == {f"l{i}": 0.5 for i in range(5)}
    assert all(v[2] == 1 for v in entries.values())
