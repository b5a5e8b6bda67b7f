"""The sample-eval-update loop of MnasNet, latency-model first and resumable.

Per step (``search_step``): the controller samples candidates -> specs -> the latency estimator
gives LAT and its uncertainty -> candidates predicted above ``screen_factor * T`` are screened
-> the evaluator trains the first ``batch_size`` unscreened ones for ACC -> reward -> PPO update
-> every K steps a calibration round -> every sample appended to the store -> checkpoint.

Screening never changes a reward. A screened candidate is not trained, gets no reward and is left
out of the PPO batch; the controller draws again (``max_draws_factor`` x the batch at most) until
``batch_size`` candidates pass. So the update is PPO on the policy restricted to the unscreened
region (rejection sampling): every trained child gets exactly the configured reward, soft or
hard, and the soft reward is not turned into a hard cut at ``screen_factor * T`` (a reward of 0
for screened candidates would do that). Screened candidates are recorded as samples (status
'screened', reward None): they cost a prediction, not a training.

Resuming: the checkpoint holds the controller state after the last completed step; sampling is a
pure function of that state, so a resumed step draws the same candidates, and children whose
results are already in the store (from before the kill) are not trained again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mnas_jax.files import write_atomic
from mnas_jax.reward import RewardConfig
from mnas_jax.search.types import CalibrationHook, ChildResult, Evaluator, LatencyEstimator
from mnas_jax.space import ArchSpec, SearchSpace

log = logging.getLogger(__name__)

CHECKPOINT = "search_checkpoint.json"


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Steps, trained children per step, screening and the seed of the children's training."""

    steps: int
    batch_size: int
    screen_factor: float | None = 1.5  # None: train every candidate
    seed: int = 0
    max_draws_factor: int = 10  # a step draws at most this many x batch_size candidates

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps} and batch_size={self.batch_size} must be >= 1")
        if self.screen_factor is not None and self.screen_factor <= 0:
            raise ValueError(f"screen_factor={self.screen_factor} must be > 0 (or None)")
        if self.max_draws_factor < 1:
            raise ValueError(f"max_draws_factor={self.max_draws_factor} must be >= 1")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One sampled architecture of a step, with its predicted latency."""

    index: int  # order of drawing within the step
    tokens: np.ndarray
    spec: ArchSpec
    latency: float
    uncertainty: float
    screened: bool


def draw_candidates(searcher: Any, space: SearchSpace, estimator: LatencyEstimator, config: LoopConfig,
                    target: float) -> list[Candidate]:
    """Ask the controller until ``batch_size`` candidates pass screening or ``max_draws_factor x
    batch_size`` were drawn; returns every screened one drawn on the way and the passing ones."""
    out: list[Candidate] = []
    passing = 0
    while passing < config.batch_size and len(out) < config.max_draws_factor * config.batch_size:
        tokens = searcher.ask(config.batch_size)
        specs = [space.decode(t) for t in tokens]
        lat, unc = estimator.predict(specs)
        for t, spec, la, un in zip(tokens, specs, lat, unc):
            if passing == config.batch_size:
                break  # the rest of this draw is not used: neither trained nor recorded
            screened = config.screen_factor is not None and float(la) > config.screen_factor * target
            out.append(Candidate(len(out), np.asarray(t), spec, float(la), float(un), screened))
            passing += not screened
    return out


def child_seed(seed: int, step: int, index: int) -> int:
    """The training seed of one child, a pure function of where it was sampled."""
    return (seed * 1_000_003 + step * 1009 + index) % (2**31 - 1)


def save_checkpoint(workdir: Path, payload: dict[str, Any]) -> None:
    """Write the search's checkpoint atomically: a kill leaves the previous step's or this one."""
    write_atomic(workdir / CHECKPOINT, json.dumps(payload))


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
             estimator: LatencyEstimator, evaluator: Evaluator, calibrator: CalibrationHook | None,
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
        done = {(s["step"], s["index"]): s for s in stored_samples(run_id) if s["step"] == step}
        record = search_step(step, run_id, searcher, space, estimator, evaluator, reward, config, done,
                             append_sample)
        if calibrator is not None and calibrator.due(step):
            record["calibration"] = calibrator.run(step, stored_samples(run_id),
                                                   child_seed(config.seed, step, 10_000))
        save_checkpoint(workdir, {"run_id": run_id, "step": step + 1, "time": time.time(),
                                  "searcher": searcher.to_bytes().hex()})
        if on_step is not None:
            on_step(step, record)
    return searcher


def search_step(step: int, run_id: str, searcher: Any, space: SearchSpace, estimator: LatencyEstimator,
                evaluator: Evaluator, reward: RewardConfig, config: LoopConfig,
                done: dict[tuple[int, int], dict[str, Any]],
                append_sample: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """One step: draw and screen, train what passes (reusing results in ``done``), reward, PPO
    update on the trained candidates; returns the step's record."""
    cands = draw_candidates(searcher, space, estimator, config, reward.target)
    results: dict[int, ChildResult] = {}
    to_train = []
    for c in cands:
        prev = done.get((step, c.index))
        if prev is not None and prev["arch_id"] == c.spec.arch_id:
            results[c.index] = ChildResult(c.spec.arch_id, prev["status"], prev["accuracy"], prev["reason"],
                                           prev["train_seconds"])
        elif c.screened:
            results[c.index] = ChildResult(
                c.spec.arch_id, "screened", None,
                f"predicted latency {c.latency:.4g} > {config.screen_factor} x target {reward.target:.4g}")
            append_sample(_sample_payload(run_id, step, c, results[c.index], reward))
        else:
            to_train.append(c)

    def arrived(j: int, res: ChildResult) -> None:  # stored as it arrives: a kill loses only what trains
        results[to_train[j].index] = res
        append_sample(_sample_payload(run_id, step, to_train[j], res, reward))

    if to_train:
        evaluator.evaluate([c.spec for c in to_train], [child_seed(config.seed, step, c.index) for c in to_train],
                           arrived)
    trained = [c for c in cands if not c.screened]
    record: dict[str, Any] = {"step": step, "drawn": len(cands), "screened": len(cands) - len(trained)}
    if not trained:
        log.warning("step %d: all %d candidates drawn were screened; no controller update", step, len(cands))
        return {**record, "mean_reward": float("nan"), "max_reward": float("nan")}
    rewards = np.array([_reward_of(results[c.index], c.latency, reward) for c in trained])
    metrics = searcher.tell(np.stack([c.tokens for c in trained]), rewards)
    return {**record, "mean_reward": float(rewards.mean()), "max_reward": float(rewards.max()), **metrics}


def _reward_of(result: ChildResult | None, lat: float, reward: RewardConfig) -> float:
    if result is None or result.status != "ok" or result.accuracy is None:
        return 0.0
    return float(reward(result.accuracy, lat))


def _sample_payload(run_id: str, step: int, cand: Candidate, result: ChildResult,
                    reward: RewardConfig) -> dict[str, Any]:
    return {"run_id": run_id, "step": step, "index": cand.index, "tokens": [int(t) for t in cand.tokens],
            "arch_id": cand.spec.arch_id, "spec": cand.spec.to_string(), "status": result.status,
            "accuracy": result.accuracy, "reason": result.reason,
            "train_seconds": result.seconds, "predicted_latency": cand.latency,
            "uncertainty": cand.uncertainty,
            "reward": None if result.status == "screened" else _reward_of(result, cand.latency, reward),
            "measured_latency": None}
