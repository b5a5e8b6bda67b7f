"""The sample-eval-update loop of MnasNet, latency-model first and resumable.

Per step: the controller samples a batch of token sequences -> specs -> the latency estimator
gives LAT and its uncertainty -> candidates predicted above `screen_factor * T` are not trained
(recorded as 'screened') -> the evaluator trains the rest for ACC -> reward -> PPO update ->
every K steps a calibration round -> every sample appended to the store -> checkpoint.

Resuming: the checkpoint holds the controller state after the last completed step; sampling is a
pure function of that state, so a resumed step draws the same candidates, and children whose
results are already in the store (from before the kill) are not trained again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mnas_jax.reward import RewardConfig
from mnas_jax.search.types import Calibrator, ChildResult, Evaluator, LatencyEstimator
from mnas_jax.space import ArchSpec, SearchSpace

log = logging.getLogger(__name__)

CHECKPOINT = "search_checkpoint.json"


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    steps: int
    batch_size: int
    screen_factor: float | None = 1.5  # None: train every candidate
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps} and batch_size={self.batch_size} must be >= 1")
        if self.screen_factor is not None and self.screen_factor <= 0:
            raise ValueError(f"screen_factor={self.screen_factor} must be > 0 (or None)")


def child_seed(seed: int, step: int, index: int) -> int:
    """The training seed of one child, a pure function of where it was sampled."""
    return (seed * 1_000_003 + step * 1009 + index) % (2**31 - 1)


def save_checkpoint(workdir: Path, payload: dict[str, Any]) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=workdir, prefix=CHECKPOINT, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, workdir / CHECKPOINT)


def load_checkpoint(workdir: Path) -> dict[str, Any] | None:
    path = workdir / CHECKPOINT
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ValueError(f"search checkpoint {str(path)!r} is unreadable; remove it to restart "
                         "the search (samples stay in the store)") from None


def run_loop(*, run_id: str, workdir: Path, space: SearchSpace, config: LoopConfig,
             reward: RewardConfig, searcher: Any, searcher_from_bytes: Callable[[bytes], Any],
             estimator: LatencyEstimator, evaluator: Evaluator, calibrator: Calibrator | None,
             append_sample: Callable[[dict[str, Any]], None],
             stored_samples: Callable[[str], list[dict[str, Any]]],
             on_step: Callable[[int, dict[str, Any]], None] | None = None) -> Any:
    """Run (or resume) the search until `config.steps` steps are complete; returns the searcher."""
    ckpt = load_checkpoint(workdir)
    start = 0
    if ckpt is not None:
        if ckpt["run_id"] != run_id:
            raise ValueError(f"the work directory holds search {ckpt['run_id']!r}, not {run_id!r}; "
                             "use another --workdir or resume that search")
        searcher = searcher_from_bytes(bytes.fromhex(ckpt["searcher"]))
        start = ckpt["step"]
        log.info("resuming search %s at step %d", run_id, start)
    for step in range(start, config.steps):
        tokens = searcher.ask(config.batch_size)
        specs = [space.decode(t) for t in tokens]
        lat, unc = estimator.predict(specs)
        done = {(s["step"], s["index"]): s for s in stored_samples(run_id) if s["step"] == step}
        results: list[ChildResult | None] = [None] * len(specs)
        to_train = []
        for i, spec in enumerate(specs):
            prev = done.get((step, i))
            if prev is not None and prev["arch_id"] == spec.arch_id:
                results[i] = ChildResult(spec.arch_id, prev["status"], prev["accuracy"],
                                         prev["reason"], prev["train_seconds"])
            elif config.screen_factor is not None and lat[i] > config.screen_factor * reward.target:
                results[i] = ChildResult(
                    spec.arch_id, "screened", None,
                    f"predicted latency {lat[i]:.4g} > {config.screen_factor} x target "
                    f"{reward.target:.4g}")
            else:
                to_train.append(i)
        # each result is appended as it arrives, so a kill loses only children still training
        def arrived(j: int, res: ChildResult) -> None:
            i = to_train[j]
            results[i] = res
            append_sample(_sample_payload(run_id, step, i, tokens[i], specs[i], res, lat[i],
                                          unc[i], reward))

        if to_train:
            evaluator.evaluate([specs[i] for i in to_train],
                               [child_seed(config.seed, step, i) for i in to_train], arrived)
        for i, res in enumerate(results):
            if (step, i) not in done and i not in to_train:
                append_sample(_sample_payload(run_id, step, i, tokens[i], specs[i], res, lat[i],
                                              unc[i], reward))
        rewards = np.array([_reward_of(r, lat[i], reward) for i, r in enumerate(results)])
        metrics = searcher.tell(tokens, rewards)
        record: dict[str, Any] = {"step": step, "mean_reward": float(rewards.mean()),
                                  "max_reward": float(rewards.max()), **metrics}
        if calibrator is not None and calibrator.due(step):
            record["calibration"] = calibrator.run(step, stored_samples(run_id),
                                                   child_seed(config.seed, step, 10_000))
        save_checkpoint(workdir, {"run_id": run_id, "step": step + 1, "time": time.time(),
                                  "searcher": searcher.to_bytes().hex()})
        if on_step is not None:
            on_step(step, record)
    return searcher


def _reward_of(result: ChildResult | None, lat: float, reward: RewardConfig) -> float:
    if result is None or result.status != "ok" or result.accuracy is None:
        return 0.0
    return float(reward(result.accuracy, lat))


def _sample_payload(run_id: str, step: int, index: int, tokens: np.ndarray, spec: ArchSpec,
                    result: ChildResult | None, lat: float, unc: float,
                    reward: RewardConfig) -> dict[str, Any]:
    assert result is not None
    return {"run_id": run_id, "step": step, "index": index, "tokens": [int(t) for t in tokens],
            "arch_id": spec.arch_id, "spec": spec.to_string(), "status": result.status,
            "accuracy": result.accuracy, "reason": result.reason,
            "train_seconds": result.seconds, "predicted_latency": float(lat),
            "uncertainty": float(unc), "reward": _reward_of(result, lat, reward),
            "measured_latency": None}
