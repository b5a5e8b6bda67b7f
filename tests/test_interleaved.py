"""Interleaved reference measurements: order, ratios, drift record, store rows."""

from __future__ import annotations


import pytest
from conftest_latency import tflite_models  # noqa: F401 (fixture)

from latency.devices.local import LocalDevice
from latency.interleaved import (combine_rounds, interleaved_records, measure_interleaved,
                                 measure_rounds, relative_latencies)
from latency.measurement import Fingerprint, Measurement, model_hash
from latency.protocol import MeasureProtocol
from latency.store import MeasurementStore

FAST = MeasureProtocol(warmup_runs=2, min_runs=20, min_seconds=0.02, max_seconds=5.0)


def test_relative_latencies_closed_form():
    assert relative_latencies([2.0, 4.0], [1.0, 1.0, 3.0]) == [(1.0, 2.0), (2.0, 2.0)]
    with pytest.raises(ValueError, match="2 candidates need 3 reference medians"):
        relative_latencies([2.0, 4.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="not positive"):
        relative_latencies([1.0], [0.0, 0.0])


class Recording:
    """A real device that also records which model it measured, in order."""

    def __init__(self, device) -> None:
        self.device, self.order = device, []

    def fingerprint(self) -> Fingerprint:
        return self.device.fingerprint()

    def measure(self, model_bytes: bytes, protocol: MeasureProtocol,
                timeout_s: float | None = None) -> Measurement:
        self.order.append(model_hash(model_bytes))
        return self.device.measure(model_bytes, protocol, timeout_s)


def test_measure_interleaved_on_litert(tflite_models):
    device = Recording(LocalDevice())
    items = [("tiny", tflite_models["tiny"]), ("small", tflite_models["small"])]
    ref = tflite_models["medium"]
    result = measure_interleaved(device, items, ref, FAST, progress=True)

    h = {name: model_hash(b) for name, b in tflite_models.items()}
    assert device.order == [h["medium"], h["tiny"], h["medium"], h["small"], h["medium"]]
    assert result.reference_hash == h["medium"] and len(result.reference) == 3
    refs = [m.median_ms for m in result.reference]
    by_key = result.by_key()
    assert list(by_key) == ["tiny", "small"]
    for i, (key, _) in enumerate(items):
        c = by_key[key]
        assert c.model_hash == h[key]
        assert c.reference_ms == pytest.approx((refs[i] + refs[i + 1]) / 2)
        assert c.relative == pytest.approx(c.measurement.median_ms / c.reference_ms)
    assert by_key["tiny"].relative < by_key["small"].relative < 1.0  # smaller models, faster
    assert result.reference_spread >= 1.0


def test_measure_interleaved_rejects_bad_items(tflite_models):
    with pytest.raises(ValueError, match="at least one"):
        measure_interleaved(LocalDevice(), [], tflite_models["tiny"], FAST)
    twice = [("a", tflite_models["tiny"]), ("a", tflite_models["small"])]
    with pytest.raises(ValueError, match=r"duplicate keys \['a'\]"):
        measure_interleaved(LocalDevice(), twice, tflite_models["medium"], FAST)


def test_interleaved_rows_in_the_store(tflite_models, tmp_path):
    items = [("arch-1", tflite_models["tiny"]), ("arch-2", tflite_models["small"])]
    result = measure_interleaved(LocalDevice(), items, tflite_models["medium"], FAST)
    records = interleaved_records(result, FAST, session="s", source="local",
                                  reference_key="mobilenetv2-96",
                                  arch_info={"arch-1": ("arch-1", '{"spec": 1}')})
    with MeasurementStore.in_workdir(tmp_path) as store:
        for r in records:
            store.append(r)
        rows = [s.record for s in store.measurements(session="s")]
    assert [r.kind for r in rows] == ["reference", "arch", "reference", "arch", "reference"]
    assert [r.key for r in rows[::2]] == ["mobilenetv2-96"] * 3
    assert rows[1].arch_id == "arch-1" and rows[1].arch_spec == '{"spec": 1}'
    assert rows[3].arch_id is None
    assert rows[1].relative == pytest.approx(result.by_key()["arch-1"].relative)
    assert rows[3].reference_ms == pytest.approx(result.by_key()["arch-2"].reference_ms)
    assert rows[0].relative is None and rows[0].model_hash == result.reference_hash


def test_measure_rounds_alternates_order_and_takes_the_median(tflite_models):
    device = Recording(LocalDevice())
    items = [("tiny", tflite_models["tiny"]), ("small", tflite_models["small"])]
    seen = []
    result = measure_rounds(device, items, tflite_models["medium"], FAST, rounds=3, on_round=seen.append)
    h = {name: model_hash(b) for name, b in tflite_models.items()}
    r, t, s = h["medium"], h["tiny"], h["small"]
    assert device.order == [r, t, r, s, r] + [r, s, r, t, r] + [r, t, r, s, r]
    assert len(seen) == 3 and len(result.reference) == 9
    for key in ("tiny", "small"):
        rels = [x.by_key()[key].relative for x in seen]
        c = result.by_key()[key]
        assert c.relative == pytest.approx(sorted(rels)[1])  # median: one disturbed round does not move it
        assert c.measurement.runs == sum(x.by_key()[key].measurement.runs for x in seen)
        assert c.measurement.min_ms == min(x.by_key()[key].measurement.min_ms for x in seen)
    assert combine_rounds(seen[:1]) is seen[0]
    with pytest.raises(ValueError, match="rounds=0"):
        measure_rounds(device, items, tflite_models["medium"], FAST, rounds=0)
    with pytest.raises(ValueError, match="different candidates"):
        combine_rounds([seen[0], measure_interleaved(LocalDevice(), items[:1], tflite_models["medium"], FAST)])
