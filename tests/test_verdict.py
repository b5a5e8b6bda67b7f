"""The report's dominance rule: a one-sided Welch t-test at 5% over >= 3 fresh seeds on the test
split, at no more latency; closed-form cases against scipy's t distribution."""

from __future__ import annotations

import pytest

import math

from scipy import stats

from mnas_jax.search.assess import Assessed, dominates, retrain_seeds, verdicts, welch_p
from mnas_jax.search.step import child_seed


def _a(name: str, accs: tuple[float, ...], latency: float) -> Assessed:
    return Assessed(name, "found" if name.startswith("found") else "baseline", name, "", accs, 0, latency)


def test_more_accurate_beyond_the_seed_noise_at_no_more_latency_dominates() -> None:
    found = _a("found-1", (0.80, 0.81, 0.82), 1.0)  # mean 0.81, sd 0.01
    clear = _a("mbv2", (0.70, 0.71, 0.72), 1.0)  # 0.10 apart, se ~0.008
    close = _a("mbv2-b", (0.79, 0.80, 0.81), 1.0)  # 0.01 apart: t = 1.22, p = 0.14
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


def test_fewer_than_three_seeds_decide_nothing() -> None:
    assert not dominates(_a("found-1", (0.9,), 0.5), _a("b", (0.1, 0.1), 1.0))
    assert not dominates(_a("found-1", (0.9, 0.91), 0.5), _a("b", (0.1, 0.1, 0.11), 1.0))


def test_welch_p_in_closed_form() -> None:
    a, b = _a("found-1", (0.80, 0.81, 0.82), 1.0), _a("b", (0.79, 0.80, 0.81), 1.0)
    # equal spreads (sd 0.01, n 3): t = 0.01 / sqrt(2 * 0.01^2 / 3), Welch's df = 4
    t = 0.01 / math.sqrt(2 * 0.01**2 / 3)
    assert welch_p(a, b) == pytest.approx(stats.t.sf(t, 4))
    assert welch_p(b, a) == pytest.approx(1 - stats.t.sf(t, 4))
    v = verdicts([a], [b])[0]
    assert v["p_more_accurate"]["b"] == pytest.approx(stats.t.sf(t, 4)) and v["dominates"] == []


def test_the_winners_curse_is_search_time_minus_retrained_validation() -> None:
    a = Assessed("found-1", "found", "x", "", (0.7, 0.7, 0.7), 0, 1.0, search_accuracy=0.8,
                 val_accuracies=(0.72, 0.74, 0.76))
    assert a.winners_curse == pytest.approx(0.8 - 0.74)
    assert a.to_dict()["winners_curse"] == pytest.approx(0.06)


def test_report_seeds_are_fresh() -> None:
    search = {child_seed(0, step, i) for step in range(200) for i in range(64)}
    seeds = retrain_seeds(0, 5)
    assert len(set(seeds)) == 5 and not search & set(seeds)
    assert retrain_seeds(0, 3) == seeds[:3] and retrain_seeds(1, 3) != seeds[:3]
    assert pytest.approx(sum(a for a in (0.80, 0.81, 0.82)) / 3) == _a("x", (0.80, 0.81, 0.82), 1).mean
