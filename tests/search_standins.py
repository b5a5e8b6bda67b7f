"""Stand-ins for a fast test of the search loop's mechanics (resume, bookkeeping).

These are NOT the real trainer and predictor: accuracy and latency are cheap deterministic
functions of the architecture, so a test can run many steps and kill the process at will. The
real components are tested in their own files and together in the smoke search.
Run as a script: `python tests/search_standins.py WORKDIR STEPS CHILD_SLEEP_S`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from latency.store import MeasurementStore
from mnas_jax.controller.ppo import PPOConfig, PPOSearcher
from mnas_jax.costs import arch_macs
from mnas_jax.reward import RewardConfig
from mnas_jax.search.loop import LoopConfig, run_loop
from mnas_jax.search.types import ChildResult
from mnas_jax.space import get_space


def standin_child(spec, seed) -> ChildResult:
    acc = 0.5 + 0.4 * np.tanh(arch_macs(spec) / 2e7) + 1e-3 * (seed % 7)
    return ChildResult(spec.arch_id, "ok", float(acc), None, 0.0)


class StandInEvaluator:
    def __init__(self, sleep_s: float = 0.0) -> None:
        self.sleep_s, self.calls = sleep_s, 0

    def evaluate(self, specs, seeds, on_result=None):
        out = []
        for i, (spec, seed) in enumerate(zip(specs, seeds)):
            time.sleep(self.sleep_s)
            self.calls += 1
            out.append(standin_child(spec, seed))
            if on_result is not None:
                on_result(i, out[-1])
        return out


class MacsLatency:
    unit = "ms"

    def predict(self, specs):
        lat = np.array([arch_macs(s) / 1e7 for s in specs])
        return lat, 0.05 * lat


def run(workdir: Path, steps: int, sleep_s: float, evaluator=None) -> None:
    space = get_space("mnasnet", "fmnist")
    store = MeasurementStore.in_workdir(workdir)
    run_loop(
        run_id="test", workdir=workdir, space=space,
        config=LoopConfig(steps=steps, batch_size=4, screen_factor=2.0, seed=0),
        reward=RewardConfig.preset("soft", 3.0),
        searcher=PPOSearcher(space.choices, PPOConfig(), seed=0),
        searcher_from_bytes=PPOSearcher.from_bytes,
        estimator=MacsLatency(), evaluator=evaluator or StandInEvaluator(sleep_s), calibrator=None,
        append_sample=lambda p: store.append_event("sample", p),
        stored_samples=lambda rid: [e.payload for e in store.events("sample")
                                    if e.payload["run_id"] == rid],
    )
    store.close()


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
