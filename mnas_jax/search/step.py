"""One search step as a pure function of its parts: ask -> estimate -> screen -> evaluate ->
reward -> tell.

Screening never changes a reward. A screened candidate is not trained, gets no reward and is left
out of the PPO batch; the controller draws again (up to ``max_draws_factor x batch_size``
candidates a step) until ``batch_size`` candidates pass. So the update is PPO on the policy
restricted to the unscreened region (rejection sampling): every trained child gets exactly the
configured reward, soft or hard, and the soft reward is not turned into a hard cut at
``screen_factor * T`` (a reward of 0 for screened candidates would do that).

A step whose every draw was screened (``max_draws_factor x batch_size`` of them) trains nothing,
and a controller that is never told about them would stay where it drifted. Then, and only then,
the controller is told the screened candidates with `screened_reward`: minus how far each one's
predicted latency lies beyond the screening cut, ``-(LAT / (screen_factor * T) - 1)``, which is
below 0 and so below every trained child's reward (>= 0). Every advantage rule pushes away from
them: against a baseline of real rewards all are negative, and a batch centred on its own mean
(PPO's default) still favours the screened candidates nearest the cut, i.e. lower latency. These
rewards are the controller's only; the candidates' samples keep no reward (they trained no
child).

The step knows nothing of stores or checkpoints: `mnas_jax.search.loop` gives it an `evaluate`
that reuses stored results and an `on_result` that stores each result as it arrives; a benchmark
gives it a stand-in accuracy.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Sequence

import numpy as np

from mnas_jax.reward import RewardConfig
from mnas_jax.search.types import ChildResult, LatencyEstimator
from mnas_jax.space import ArchSpec, SearchSpace

log = logging.getLogger(__name__)


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


OnResult = Callable[[Candidate, ChildResult], None]
#: (step, candidates to train, on_result) -> result per candidate index; calls on_result for
#: each result it newly obtains, as it arrives.
Evaluate = Callable[[int, Sequence[Candidate], OnResult], dict[int, ChildResult]]


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """What one step drew, what each candidate got, and the step's record."""

    candidates: list[Candidate]
    results: dict[int, ChildResult]
    rewards: np.ndarray  # per trained (unscreened) candidate, in drawing order
    record: dict[str, Any]


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


def reward_of(result: ChildResult | None, lat: float, reward: RewardConfig) -> float:
    """The reward of a trained child (0 where training gave no accuracy)."""
    if result is None or result.status != "ok" or result.accuracy is None:
        return 0.0
    return float(reward(result.accuracy, lat))


def screened_reward(latency: float, screen_factor: float, target: float) -> float:
    """The controller's reward for a screened candidate of a step in which every candidate was
    screened (module doc): minus how far its predicted latency lies beyond the cut (< 0)."""
    return -(latency / (screen_factor * target) - 1.0)


def screened_result(cand: Candidate, config: LoopConfig, target: float) -> ChildResult:
    """The result of a screened candidate: no training, the reason recorded."""
    return ChildResult(cand.spec.arch_id, "screened", None,
                       f"predicted latency {cand.latency:.4g} > {config.screen_factor} x target "
                       f"{target:.4g}")


def search_step(step: int, *, searcher: Any, space: SearchSpace, estimator: LatencyEstimator,
                reward: RewardConfig, config: LoopConfig, evaluate: Evaluate,
                on_result: OnResult = lambda c, r: None) -> StepOutcome:
    """ask -> estimate -> screen (draw_candidates) -> evaluate the unscreened -> reward -> tell;
    `on_result` sees each screened candidate at once and each trained one as it arrives."""
    cands = draw_candidates(searcher, space, estimator, config, reward.target)
    results: dict[int, ChildResult] = {}
    for c in cands:
        if c.screened:
            results[c.index] = screened_result(c, config, reward.target)
            on_result(c, results[c.index])
    trained = [c for c in cands if not c.screened]
    if trained:
        results.update(evaluate(step, trained, on_result))
    record: dict[str, Any] = {"step": step, "drawn": len(cands), "screened": len(cands) - len(trained)}
    if not trained:  # the controller learns from the screened candidates' predicted latency
        assert config.screen_factor is not None  # nothing is screened without a factor
        told = np.array([screened_reward(c.latency, config.screen_factor, reward.target) for c in cands])
        log.warning("step %d: all %d candidates drawn were screened; the controller is told their "
                    "predicted latency beyond the cut (mean reward %.3g)", step, len(cands), told.mean())
        metrics = searcher.tell(np.stack([c.tokens for c in cands]), told)
        return StepOutcome(cands, results, np.zeros(0),
                           {**record, "mean_reward": float("nan"), "max_reward": float("nan"),
                            "screened_update": float(told.mean()), **metrics})
    rewards = np.array([reward_of(results[c.index], c.latency, reward) for c in trained])
    metrics = searcher.tell(np.stack([c.tokens for c in trained]), rewards)
    return StepOutcome(cands, results, rewards, {**record, "mean_reward": float(rewards.mean()),
                                                 "max_reward": float(rewards.max()), **metrics})
