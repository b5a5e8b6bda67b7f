"""Stand-ins for the calibration tests: a slow fake device and a small refittable estimator.

NOT the real device: it returns a deterministic latency per model after a short sleep (so a
test can kill a process in the middle of a round). The estimator is either a one-parameter model
saved as JSON (`json`, with the PPO controller) or the search's own (`xgboost`: `PredictorEstimator`, an XGBoost
predictor of a 20-layer slice with a synthetic lookup table, refitted and saved with
`save_predictor` in every round; random search, which compiles nothing). Everything else is real: the DeviceSession's resumable tagged
measuring, the SQLite store, the Calibrator, the search loop and its checkpoints.
Run as a script: `python tests/calibration_standins.py WORKDIR STEPS SLEEP_S [json|xgboost]`.
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
from latency.lut import LatencyTable
from latency.store import MeasurementStore
from mnas_jax.controller.ppo import PPOConfig, PPOSearcher
from mnas_jax.costs import arch_macs
from mnas_jax.files import write_atomic
from mnas_jax.reward import RewardConfig
from mnas_jax.search.loop import LoopConfig, run_loop
from mnas_jax.search.searchers import RandomSearch, searcher_from_bytes
from mnas_jax.space import ArchSpec, SearchSpace, get_space, sample_specs
from search_standins import StandInEvaluator

FINGERPRINT = Fingerprint("local", "stand-in cpu (fake device)", "none", "0", 1, "none")
SLICE = "mnasnet@op=2,kernel=0,se=0,skip=1,filters=1"  # 20 table layers
PREDICTOR_DIR = "predictor"
FIRST_FIT = 8  # archs the first XGBoost predictor is fitted on


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


def slice_table(space: SearchSpace) -> LatencyTable:
    """A synthetic lookup table of the slice (relative entries grow with the layer's work)."""
    rel = {layer.key: 0.01 + 1e-6 * layer.in_size ** 2 * layer.out_channels
           for layer in space.table_layers()}
    return LatencyTable(space=space.name, setting=space.setting,
                        fingerprint=FINGERPRINT.to_dict(), device_id=FINGERPRINT.device_id,
                        reference="mobilenetv2", reference_ms=1.0, entries_ms=rel,
                        entries_relative=rel)


def first_fit_specs(space: SearchSpace) -> list[ArchSpec]:
    """The archs the first XGBoost predictor is fitted on (its training ids before any round)."""
    return sample_specs(space, FIRST_FIT, 123)


def xgboost_estimator(workdir: Path, space: SearchSpace) -> Any:
    """The search's estimator (`PredictorEstimator`) over an XGBoost predictor of the slice in
    WORKDIR/predictor: fitted and saved (with its table) when missing, else loaded, as
    `mnas search` does."""
    from mnas_jax.search.pipeline import PredictorEstimator
    from predictor.io import load_predictor, save_predictor, table_info_of
    from predictor.model import PredictorConfig, fit_predictor

    pdir = workdir / PREDICTOR_DIR
    if pdir.exists():
        return PredictorEstimator(load_predictor(pdir), pdir)
    table = slice_table(space)
    specs = first_fit_specs(space)
    pred = fit_predictor(specs, [1.2 * table.sum_relative(s) for s in specs],
                         space_name=space.name, setting=space.setting,
                         table=table.entries_relative, ids=[s.arch_id for s in specs],
                         unit="relative", device_fingerprint=FINGERPRINT.to_dict(),
                         table_info=table_info_of(table), seed=0,
                         config=PredictorConfig(ensemble=2, grid=((2, 1.0),), max_rounds=60))
    save_predictor(pred, pdir, table=table)
    return PredictorEstimator(pred, pdir)


def run(workdir: Path, steps: int, sleep_s: float, estimator_kind: str = "json") -> dict[str, Any]:
    """A stand-in search with a calibration round after every step; returns what it used."""
    space = get_space("mnasnet", "fmnist") if estimator_kind == "json" else get_space(SLICE, "fmnist")
    sess = session(workdir, sleep_s)
    store = sess.store
    estimator = (JsonEstimator(workdir / "estimator.json") if estimator_kind == "json"
                 else xgboost_estimator(workdir, space))
    mine = lambda kind: [e.payload for e in store.events(kind)]  # noqa: E731
    calibrator = Calibrator(
        CalibrationPolicy(every=1, n_best=1, n_uncertain=1, n_random=1),
        estimator, lambda specs, tag: sess.measure_tagged(specs, tag, rounds=3),
        on_round=lambda r: store.append_event("calibration", r),
        on_refit=lambda r: store.append_event("calibration_refit", r),
        rounds=mine("calibration"), refits=mine("calibration_refit"))
    calibrator.sync()
    # the xgboost run's searcher needs no compiling (each killed process would pay ~20 s of it)
    searcher = (PPOSearcher(space.choices, PPOConfig(), seed=0) if estimator_kind == "json"
                else RandomSearch(space.choices, seed=0))
    run_loop(run_id="cal", workdir=workdir, space=space,
             config=LoopConfig(steps=steps, batch_size=3, screen_factor=None, seed=0),
             reward=RewardConfig.preset("soft", 1.0), searcher=searcher,
             searcher_from_bytes=searcher_from_bytes, estimator=estimator, evaluator=StandInEvaluator(),
             calibrator=calibrator, append_sample=lambda p: store.append_event("sample", p),
             stored_samples=lambda rid: [e.payload for e in store.events("sample") if e.payload["run_id"] == rid])
    store.close()
    return {"device_calls": sess.device.calls}


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), *sys.argv[4:5])
