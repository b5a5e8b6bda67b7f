"""The report's dominance rule (issue 14, item 3): closed-form cases."""

from __future__ import annotations

import pytest

from mnas_jax.search.assess import Assessed, dominates, retrain_seeds, verdicts
from mnas_jax.search.step import child_seed


def _a(name: str, accs: tuple[float, ...], latency: float) -> Assessed:
    return Assessed(name, "found" if name.startswith("found") else "baseline", name, "", accs, 0, latency)


def test_more_accurate_beyond_the_seed_noise_at_no_more_latency_dominates() -> None:
    found = _a("found-1", (0.80, 0.81, 0.82), 1.0)  # mean 0.81, sd 0.01
    clear = _a("mbv2", (0.70, 0.71, 0.72), 1.0)  # 0.10 apart, se ~0.008
    close = _a("mbv2-b", (0.79, 0.80, 0.81), 1.0)  # 0.01 apart < 2 se (0.016)
    assert dominates(found, clear) and not dominates(clear, found)
    assert not dominates(found, close) and not dominates(close, found)
    slower = _a("found-2", (0.80, 0.81, 0.82), 1.01)
    assert not dominates(slower, clear)  # more latency: never dominates, whatever the accuracy


def test_verdicts_name_each_relation() -> None:
    found = [_a("found-1", (0.80, 0.81, 0.82), 0.5)]
    base = [_a("slow-worse", (0.70, 0.71, 0.72), 1.0), _a("slow-same", (0.80, 0.805, 0.815), 1.0),
            _a("fast-better", (0.90, 0.91, 0.92), 0.4)]
    (v,) = verdicts(found, base)
    assert v["dominates"] == ["slow-worse"]
    assert v["dominated_by"] == ["fast-better"]
    assert v["faster_at_indistinguishable_accuracy"] == ["slow-same"]


def test_one_seed_decides_nothing() -> None:
    assert not dominates(_a("found-1", (0.9,), 0.5), _a("b", (0.1, 0.1), 1.0))


def test_report_seeds_are_fresh() -> None:
    search = {child_seed(0, step, i) for step in range(200) for i in range(64)}
    seeds = retrain_seeds(0, 5)
    assert len(set(seeds)) == 5 and not search & set(seeds)
    assert retrain_seeds(0, 3) == seeds[:3] and retrain_seeds(1, 3) != seeds[:3]
    assert pytest.approx(sum(a for a in (0.80, 0.81, 0.82)) / 3) == _a("x", (0.80, 0.81, 0.82), 1).mean
