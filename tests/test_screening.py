"""Screening by the predictor never changes a reward (issue 14, item 4).

Stand-in accuracy and latency (tests/search_standins.py); the real loop, controller and PPO.
A screened candidate is recorded (status 'screened', reward None), never trained, and left out
of the PPO batch; the controller draws again until batch_size candidates pass.
"""

from __future__ import annotations

import numpy as np

from mnas_jax.controller.ppo import PPOConfig, PPOSearcher
from mnas_jax.reward import RewardConfig
from mnas_jax.search.loop import LoopConfig, run_loop
from mnas_jax.search.step import draw_candidates
from mnas_jax.space import get_space
from search_standins import MacsLatency, StandInEvaluator, standin_child

SPACE = get_space("mnasnet", "fmnist")
REWARD = RewardConfig.preset("soft", 8.0)  # T = 8 "ms" of the stand-in latency (MACs / 1e7)


class SpySearcher(PPOSearcher):
    """The real PPO searcher, remembering what each update was given."""

    told: list

    def tell(self, tokens, rewards, old_log_probs=None):
        self.told.append((np.asarray(tokens).copy(), np.asarray(rewards).copy()))
        return super().tell(tokens, rewards, old_log_probs)


class SeedFreeEvaluator(StandInEvaluator):
    """Stand-in accuracy that depends on the architecture only (not on the child's seed, which
    follows its position in the step): the same child trained in both searches gets the same
    accuracy, so any reward difference could only come from screening."""

    def evaluate(self, specs, seeds, on_result=None):
        return super().evaluate(specs, [0] * len(seeds), on_result)


def _search(tmp_path, screen_factor):
    samples: list[dict] = []
    searcher = SpySearcher(SPACE.choices, PPOConfig(), seed=0)
    searcher.told = []
    run_loop(run_id="s", workdir=tmp_path, space=SPACE,
             config=LoopConfig(steps=3, batch_size=4, screen_factor=screen_factor, seed=0),
             reward=REWARD, searcher=searcher, searcher_from_bytes=PPOSearcher.from_bytes,
             estimator=MacsLatency(), evaluator=SeedFreeEvaluator(), calibrator=None,
             append_sample=samples.append, stored_samples=lambda rid: [])
    return samples, searcher.told


def test_draw_keeps_screened_candidates_apart_and_fills_the_batch() -> None:
    searcher = PPOSearcher(SPACE.choices, PPOConfig(), seed=0)
    config = LoopConfig(steps=1, batch_size=4, screen_factor=1.0, seed=0)
    cands = draw_candidates(searcher, SPACE, MacsLatency(), config, target=REWARD.target)
    passing = [c for c in cands if not c.screened]
    assert len(passing) == 4 and any(c.screened for c in cands)
    assert all(c.latency > 1.0 * REWARD.target for c in cands if c.screened)
    assert [c.index for c in cands] == list(range(len(cands)))


def test_screening_on_and_off_give_every_trained_child_the_configured_reward(tmp_path) -> None:
    on, told_on = _search(tmp_path / "on", screen_factor=1.2)
    off, told_off = _search(tmp_path / "off", screen_factor=None)
    assert any(s["status"] == "screened" for s in on) and not any(s["status"] == "screened" for s in off)
    for s in on + off:
        if s["status"] == "screened":
            assert s["reward"] is None and s["accuracy"] is None  # never trained, never rewarded
            continue
        spec_lat = s["predicted_latency"]
        assert s["reward"] == float(REWARD(s["accuracy"], spec_lat))  # exactly the soft reward, no cut
    # an architecture both searches trained got the same reward in both
    rewards_off = {s["arch_id"]: s["reward"] for s in off}
    shared = [s for s in on if s["status"] == "ok" and s["arch_id"] in rewards_off]
    assert shared and all(s["reward"] == rewards_off[s["arch_id"]] for s in shared)
    # the controller's updates: batch_size trained candidates each, never a screened one
    screened_tokens = {tuple(s["tokens"]) for s in on if s["status"] == "screened"}
    for tokens, rewards in told_on:
        assert len(tokens) == 4 and np.all(rewards > 0)
        assert not screened_tokens & {tuple(int(t) for t in row) for row in tokens}


def test_soft_reward_above_the_screen_is_not_zero() -> None:
    """What a screened candidate would have scored had it been trained: well above 0 under the
    soft reward (so rewarding it 0, as before, was a hard cut at screen_factor * T)."""
    spec = SPACE.decode([0] * len(SPACE.choices))
    acc = standin_child(spec, 0).accuracy
    assert float(REWARD(acc, 1.6 * REWARD.target)) > 0.9 * acc


def _all_screened_step(searcher, step: int = 0):
    """One real search step in which every draw is screened (T far below every latency); returns
    the drawn tokens, their predicted latency and their log-probabilities before and after."""
    import copy

    from mnas_jax.search.step import search_step

    before = copy.copy(searcher)  # the state is immutable: the copy keeps the params of now

    def evaluate(step, cands, on_result):
        raise AssertionError("nothing may train in an all-screened step")

    out = search_step(step, searcher=searcher, space=SPACE, estimator=MacsLatency(),
                      reward=RewardConfig.preset("soft", 0.01), evaluate=evaluate,
                      config=LoopConfig(steps=1, batch_size=4, screen_factor=1.5, seed=0,
                                        max_draws_factor=3))
    assert all(c.screened for c in out.candidates) and len(out.candidates) == 12
    tokens = np.stack([c.tokens for c in out.candidates])
    latency = np.array([c.latency for c in out.candidates])
    assert out.record["screened_update"] < 0  # the rule: below every trained child's reward
    return latency, before.log_probs(tokens), searcher.log_probs(tokens)


def test_a_step_with_everything_screened_pushes_the_controller_toward_lower_latency() -> None:
    """PPO's default (a batch centred on its own mean): the update favours the screened
    candidates nearest the cut; their predicted latency ranks the change of log-probability."""
    latency, before, after = _all_screened_step(PPOSearcher(SPACE.choices, PPOConfig(), seed=0))
    change = after - before
    assert not np.allclose(change, 0.0)
    assert np.corrcoef(latency, change)[0, 1] < -0.5
    fast, slow = np.argsort(latency)[:4], np.argsort(latency)[-4:]
    assert change[fast].mean() > change[slow].mean()


def test_a_step_with_everything_screened_pushes_reinforce_away_from_them() -> None:
    """REINFORCE against a baseline of trained children's rewards: every screened candidate's
    reward is below it, so the step makes all of them less likely."""
    from mnas_jax.search.searchers import reinforce_config
    from mnas_jax.search.step import search_step

    searcher = PPOSearcher(SPACE.choices, reinforce_config(), seed=0)
    search_step(0, searcher=searcher, space=SPACE, estimator=MacsLatency(), reward=REWARD,
                config=LoopConfig(steps=1, batch_size=4, screen_factor=None, seed=0),
                evaluate=lambda step, cands, on_result: {c.index: standin_child(c.spec, 0)
                                                         for c in cands})
    assert float(searcher.state.baseline) > 0  # a baseline of real rewards
    _, before, after = _all_screened_step(searcher, step=1)
    assert np.all(after < before)
