"""Stand-ins for the calibration tests: a slow fake device and a small refittable estimator.

NOT the real device or predictor: the device returns a deterministic latency per model after a
short sleep (so a test can kill a process in the middle of a round), and the estimator is a
one-parameter model saved as JSON. Everything else is real: the DeviceSession's resumable tagged
measuring, the SQLite store, the Calibrator, the search loop and its checkpoints.
Run as a script: `python tests/calibration_standins.py WORKDIR STEPS SLEEP_S`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from calibration.calibrator import Calibrator
from calibration.policy import CalibrationPolicy
from latency.measurement import Fingerprint, Measurement
from latency.protocol import MeasureProtocol
from latency.session import DeviceSession
from latency.store import MeasurementStore
from mnas_jax.controller.ppo import PPOConfig, PPOSearcher
from mnas_jax.costs import arch_macs
from mnas_jax.files import write_atomic
from mnas_jax.reward import RewardConfig
from mnas_jax.search.loop import LoopConfig, run_loop
from mnas_jax.space import ArchSpec, get_space
from search_standins import StandInEvaluator

FINGERPRINT = Fingerprint("local", "stand-in cpu (fake device)", "none", "0", 1, "none")


class SlowFakeDevice:
    """Latency = a hash of the model bytes mapped to 1-3 ms; sleeps ``sleep_s`` per model."""

    def __init__(self, sleep_s: float) -> None:
        self.sleep_s, self.calls = sleep_s, 0

    def fingerprint(self) -> Fingerprint:
        return FINGERPRINT

    def measure(self, model_bytes: bytes, protocol: MeasureProtocol, timeout_s: float | None = None) -> Measurement:
        time.sleep(self.sleep_s)
        self.calls += 1
        ms = 1.0 + 2.0 * int(hashlib.sha256(model_bytes).hexdigest()[:8], 16) / 16**8
        return Measurement(ms, ms * 0.98, ms * 0.01, 0.01, protocol.min_runs, protocol.warmup_runs, 0.01, FINGERPRINT)


class BytesExporter:
    """Model 'bytes' are the spec's JSON: distinct per architecture, no conversion."""

    def archs(self, specs: Sequence[ArchSpec]):
        return iter([s.to_json().encode() for s in specs])

    def close(self) -> None:
        pass


class JsonEstimator:
    """LAT = scale * MACs / 1e8 with the scale fitted to its points; saved to ``path`` as JSON."""

    unit = "relative"

    def __init__(self, path: Path) -> None:
        self.path = path
        state = json.loads(path.read_text()) if path.exists() else {"ids": [], "y": [], "macs": []}
        self.ids, self.y, self.macs = state["ids"], state["y"], state["macs"]

    @property
    def scale(self) -> float:
        if not self.y:
            return 1.0
        x, y = np.asarray(self.macs) / 1e8, np.asarray(self.y)
        return float(x @ y / (x @ x))

    def predict(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        lat = np.array([self.scale * arch_macs(s) / 1e8 for s in specs])
        return lat, 0.1 * lat

    def add_points(self, specs: Sequence[ArchSpec], latencies: Sequence[float], ids: Sequence[str]) -> int:
        new = [(s, y, i) for s, y, i in zip(specs, latencies, ids) if i not in self.ids]
        for s, y, i in new:
            self.ids.append(i)
            self.y.append(float(y))
            self.macs.append(arch_macs(s))
        if new:
            write_atomic(self.path, json.dumps({"ids": self.ids, "y": self.y, "macs": self.macs}))
        return len(new)


def session(workdir: Path, sleep_s: float) -> DeviceSession:
    store = MeasurementStore.in_workdir(workdir)
    return DeviceSession(SlowFakeDevice(sleep_s), store, BytesExporter(), "fake",
                         MeasureProtocol(min_runs=5, min_seconds=0.0))


def run(workdir: Path, steps: int, sleep_s: float) -> dict[str, Any]:
    """A stand-in search with a calibration round after every step; returns what it used."""
    space = get_space("mnasnet", "fmnist")
    sess = session(workdir, sleep_s)
    store = sess.store
    estimator = JsonEstimator(workdir / "estimator.json")
    mine = lambda kind: [e.payload for e in store.events(kind)]  # noqa: E731
    calibrator = Calibrator(
        CalibrationPolicy(every=1, n_best=1, n_uncertain=1, n_random=1),
        estimator, lambda specs, tag: sess.measure_tagged(specs, tag, rounds=3),
        on_round=lambda r: store.append_event("calibration", r),
        on_refit=lambda r: store.append_event("calibration_refit", r),
        rounds=mine("calibration"), refits=mine("calibration_refit"))
    calibrator.sync()
    run_loop(run_id="cal", workdir=workdir, space=space,
             config=LoopConfig(steps=steps, batch_size=3, screen_factor=None, seed=0),
             reward=RewardConfig.preset("soft", 1.0), searcher=PPOSearcher(space.choices, PPOConfig(), seed=0),
             searcher_from_bytes=PPOSearcher.from_bytes, estimator=estimator, evaluator=StandInEvaluator(),
             calibrator=calibrator, append_sample=lambda p: store.append_event("sample", p),
             stored_samples=lambda rid: [e.payload for e in store.events("sample") if e.payload["run_id"] == rid])
    store.close()
    return {"device_calls": sess.device.calls}


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
