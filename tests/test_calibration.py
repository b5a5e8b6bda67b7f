"""Calibration rounds: which candidates, refits and their errors, and safety under SIGKILL.

The device is a stand-in (tests/calibration_standins.py: a slow fake device); the estimator is a
one-parameter stand-in in the fast tests and the search's own (XGBoost refit + save_predictor)
in the SIGKILL test; the store, the tagged resumable measuring, the Calibrator and the search
loop are the real ones. The real device runs in the smoke search.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from calibration.calibrator import Calibrator, point_id, round_points, round_tag
from calibration.policy import CalibrationPolicy, choose
from calibration_standins import (FIRST_FIT, PREDICTOR_DIR, SLICE, JsonEstimator, first_fit_specs, run,
                                  session)
from latency.store import MeasurementStore
from mnas_jax.space import get_space, sample_tokens
from predictor.io import read_predictor_dir

STEPS = 5
POLICY = CalibrationPolicy(every=1, n_best=1, n_uncertain=1, n_random=1)


def _samples(n: int = 8) -> list[dict]:
    space = get_space("mnasnet", "fmnist")
    out = []
    for i, t in enumerate(sample_tokens(space.choices, 5, n)):
        spec = space.decode(t)
        out.append({"arch_id": spec.arch_id, "spec": spec.to_string(), "reward": None if i == 0 else 0.1 * i,
                    "uncertainty": 0.5 if i == 3 else 0.01, "predicted_latency": 1.0, "status": "ok"})
    return out


def test_policy_picks_best_reward_most_uncertain_and_a_random_one() -> None:
    samples = _samples()
    picked = choose(samples, measured={samples[7]["arch_id"]}, policy=POLICY, seed=0)
    why = {w: s["arch_id"] for s, w in picked}
    assert why["best_reward"] == samples[6]["arch_id"]  # 7 is measured already; 0 has no reward (screened)
    assert why["uncertain"] == samples[3]["arch_id"]
    assert len({s["arch_id"] for s, _ in picked}) == 3 and samples[7]["arch_id"] not in {s["arch_id"] for s, _ in picked}
    assert choose(samples, {s["arch_id"] for s in samples}, POLICY, 0) == []


def test_round_is_stored_before_the_refit_and_refits_lower_the_error(tmp_path: Path) -> None:
    sess = session(tmp_path, 0.0)
    estimator = JsonEstimator(tmp_path / "estimator.json")
    stored: list[dict] = []

    def on_round(record: dict) -> None:
        assert estimator.ids == []  # nothing refitted yet when the round is stored
        stored.append(record)

    cal = Calibrator(POLICY, estimator, lambda specs, tag: sess.measure_tagged(specs, tag, rounds=2), on_round=on_round)
    record = cal.run(0, _samples(), seed=0)
    assert stored == [{k: v for k, v in record.items() if k != "after_refit"}]
    assert record["after_refit"]["mean_abs_pct"] < record["before_refit"]["mean_abs_pct"]
    assert estimator.ids == [point_id(c["arch_id"], 0) for c in record["candidates"]]
    calls = sess.device.calls
    again = cal.run(0, _samples(), seed=0)  # the same step once more (a resume): measured nothing
    assert sess.device.calls == calls and again["candidates"] == record["candidates"] and len(estimator.ids) == 3
    # a fresh process with the stored round and a predictor that lacks it catches up exactly once
    fresh = JsonEstimator(tmp_path / "other.json")
    cal2 = Calibrator(POLICY, fresh, lambda specs, tag: [], rounds=stored)
    assert cal2.sync() == 3 and cal2.sync() == 0 and fresh.ids == estimator.ids
    sess.store.close()


def _rows(workdir: Path) -> tuple[list, list, list]:
    with MeasurementStore.in_workdir(workdir, create=False) as store:
        rows = [(r.record.session, r.record.arch_id) for r in store.measurements(kind="arch")]
        rounds = [e.payload for e in store.events("calibration")]
        refits = [e.payload for e in store.events("calibration_refit")]
    return rows, rounds, refits


def _all_rows(workdir: Path) -> list[tuple]:
    """Every stored measurement, whole (id, kind, session, model, times)."""
    with MeasurementStore.in_workdir(workdir, create=False) as store:
        assert store.integrity_check() == "ok"
        return [(r.id, r.record.kind, r.record.session, r.record.model_hash, r.record.median_ms)
                for r in store.measurements()]


def _check_predictor_is_one_whole_version(workdir: Path) -> tuple[str, ...]:
    """The predictor directory loads whole (predictor, table, metadata of one save) and holds
    only points the store has: the first fit's and those of stored rounds, none twice."""
    loaded = read_predictor_dir(workdir / PREDICTOR_DIR)
    meta, pred = loaded.metadata, loaded.predictor
    assert list(pred.train_ids) == meta["train_ids"] and len(pred.train_x) == meta["n_train"]
    assert loaded.table.to_dict()["sha256"] == meta["table_info"]["sha256"]
    _, rounds, _ = _rows(workdir)
    first = [s.arch_id for s in first_fit_specs(get_space(SLICE, "fmnist"))]
    assert list(pred.train_ids[:len(first)]) == first
    stored = {p[2] for r in rounds for p in round_points(r)}
    later = pred.train_ids[len(first):]
    assert set(later) <= stored and len(set(later)) == len(later)
    return pred.train_ids


def _kill_inside_round(workdir: Path, step: int, after_record: bool, delay: float) -> None:
    """Run the search in a process; SIGKILL it `delay` s after round `step` began measuring (or,
    `after_record`, after its record was stored: inside the refit and save)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "calibration_standins.py"),
                             str(workdir), str(STEPS), "0.02", "xgboost"], env=env)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            time.sleep(0.02)
            if not (workdir / "mnas.sqlite").exists():
                continue
            try:
                rows, rounds, _ = _rows(workdir)
            except Exception:  # noqa: BLE001 - the database is being created
                continue
            if (len(rounds) > step) if after_record else any(s == round_tag(step) for s, _ in rows):
                break
        else:
            raise AssertionError(f"never caught the search inside calibration round {step}")
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def test_sigkill_during_real_rounds_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """The real chain (the search's PredictorEstimator: XGBoost refit + save_predictor, the
    SQLite store) killed at random points of three rounds: after each kill the store holds every
    measurement it held and the predictor directory is one whole version; a resumed search
    completes every round, with no point lost or doubled and nothing measured twice."""
    ref_dir, killed = tmp_path / "ref", tmp_path / "killed"
    run(ref_dir, STEPS, 0.0, "xgboost")
    _, ref_rounds, _ = _rows(ref_dir)
    assert len(ref_rounds) == STEPS

    rng = random.Random()
    kills = [(1, False, rng.uniform(0.0, 0.5)), (2, False, rng.uniform(0.0, 0.5)),
             (3, True, rng.uniform(0.0, 0.3))]
    before: list[tuple] = []
    for step, after_record, delay in kills:
        _kill_inside_round(killed, step, after_record, delay)
        rows = _all_rows(killed)
        assert rows[:len(before)] == before, (step, delay)  # nothing stored was lost
        before = rows
        _check_predictor_is_one_whole_version(killed)

    run(killed, STEPS, 0.0, "xgboost")
    assert _all_rows(killed)[:len(before)] == before
    rows, rounds, refits = _rows(killed)
    # nothing measured twice: every candidate of every round has exactly its 3 passes
    per = Counter(rows)
    assert all(n == 3 for (sess, _), n in per.items() if sess.startswith("calibration")), (per, kills)
    assert [r["step"] for r in rounds] == list(range(STEPS)) and sorted(r["step"] for r in refits) == list(range(STEPS))
    # no point lost, none doubled: the saved predictor holds exactly the stored rounds' points
    ids = _check_predictor_is_one_whole_version(killed)
    assert list(ids[FIRST_FIT:]) == [p[2] for r in rounds for p in round_points(r)], kills
    # and the interrupted search measured what the uninterrupted one did
    strip = lambda rs: [[(c["arch_id"], round(c["measured"], 9)) for c in r["candidates"]] for r in rs]  # noqa: E731
    assert strip(rounds) == strip(ref_rounds), kills
