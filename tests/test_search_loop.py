"""The search loop's bookkeeping: a SIGKILLed search resumes with nothing lost or duplicated and
nothing trained twice. Uses stand-in accuracy/latency (tests/search_standins.py) but the real
controller, PPO, SQLite store and checkpoint files."""

import os
import signal
import subprocess
import sys
import time

from latency.store import MeasurementStore
from search_standins import StandInEvaluator, run

STEPS = 5


def _samples(workdir):
    with MeasurementStore.in_workdir(workdir, create=False) as store:
        return [e.payload for e in store.events("sample")]


def _key(s):
    return (s["step"], s["index"], s["arch_id"], s["status"],
            None if s["reward"] is None else round(s["reward"], 9))


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    ref_dir, killed_dir = tmp_path / "ref", tmp_path / "killed"
    run(ref_dir, STEPS, 0.0)
    reference = sorted(_key(s) for s in _samples(ref_dir))
    assert sum(1 for k in reference if k[3] != "screened") == STEPS * 4

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__),
                                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__),
                                                          "search_standins.py"),
                             str(killed_dir), str(STEPS), "0.3"], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill mid-step, after some samples of step >= 1 exist
        time.sleep(0.2)
        db = killed_dir / "mnas.sqlite"
        if db.exists():
            try:
                got = _samples(killed_dir)
            except Exception:
                continue
            trained = [s for s in got if s["status"] != "screened"]
            if any(s["step"] >= 1 for s in got) and len(trained) % 4:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _samples(killed_dir)
    assert 0 < sum(1 for s in before if s["status"] != "screened") < STEPS * 4

    evaluator = StandInEvaluator()
    run(killed_dir, STEPS, 0.0, evaluator=evaluator)
    after = _samples(killed_dir)
    keys = [_key(s) for s in after]
    assert len(keys) == len(set((k[0], k[1]) for k in keys))  # no duplicate (step, index)
    assert sorted(keys) == reference  # same completed steps as the uninterrupted run
    trained_before = sum(1 for s in before if s["status"] == "ok")
    trained_total = sum(1 for s in after if s["status"] == "ok")
    assert evaluator.calls == trained_total - trained_before  # nothing trained twice
