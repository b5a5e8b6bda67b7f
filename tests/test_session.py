"""DeviceSession: core placement and measurement rounds stored in a real SQLite store, measured on
the real LiteRT interpreter with real exports."""

from __future__ import annotations

import os

import pytest

from latency.protocol import MeasureProtocol
from latency.session import DeviceSession
from mnas_jax.space import get_space, sample_tokens
from latency.cached import measure_relative, stored_relative

FAST = MeasureProtocol(warmup_runs=2, min_runs=10, min_seconds=0.01)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_single_thread_device_is_pinned_and_a_multithreaded_one_is_not(tmp_path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    with DeviceSession.open("local", tmp_path) as one:
        assert one.device.core == cores[-1]
    with DeviceSession.open("local:threads=2", tmp_path) as two:
        assert two.device.core is None and two.device.threads == 2


def test_rounds_are_all_stored_and_combined_by_their_median(tmp_path) -> None:
    space = get_space("mnasnet", "fmnist")
    specs = [space.decode(t) for t in sample_tokens(space.choices, 5, 2)]
    with DeviceSession.open("local", tmp_path, protocol=FAST, rounds=2) as session:
        result = session.measure_archs(specs)
        device_id = session.device.fingerprint().device_id
        rows = session.store.measurements(kind="arch", device_id=device_id)
        refs = session.store.measurements(kind="reference", device_id=device_id)
        assert len(rows) == 4 and len(refs) == 6  # R A R B R, then R B R A R
        for spec in specs:
            rels = [r.record.relative for r in rows if r.record.arch_id == spec.arch_id]
            assert result.by_key()[spec.arch_id].relative == pytest.approx((rels[0] + rels[1]) / 2)
        stored = stored_relative(session.store, device_id)
        assert stored == pytest.approx({k: c.relative for k, c in result.by_key().items()})
        # nothing new is measured for archs the store holds; fresh=True measures again
        again = measure_relative(session, specs, progress=False)
        assert len(session.store.measurements(kind="arch", device_id=device_id)) == 4
        assert list(again) == pytest.approx([stored[s.arch_id] for s in specs])
        measure_relative(session, specs[:1], fresh=True, progress=False)
        assert len(session.store.measurements(kind="arch", device_id=device_id)) == 6
