"""PPO for the controller, shaped like an optax transformation: `ppo(...) -> (init_fn, update_fn)`.

Each search step is a one-state bandit: the policy emits a whole architecture and gets one reward.
The advantage is the reward minus an exponential moving average of past rewards, divided by the
batch's reward std (see `compute_advantages`); the update runs several epochs of the clipped
surrogate (Schulman et al. 2017) over the batch plus an entropy bonus, with Adam after global-norm
gradient clipping. Children are expensive, so reusing each batch for several epochs matters more
than wall time here.

All functions are pure with explicit keys; `PPOState` holds everything needed to resume and
serialises with flax's msgpack (`state_to_bytes` / `state_from_bytes`), never pickle.
`PPOSearcher` wraps the pure functions in the ask/tell shape the search loop uses.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Callable, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnas_jax.controller.policy import (
    Params,
    PolicyConfig,
    check_choices,
    greedy,
    init_policy,
    log_prob_and_entropy,
    sample,
)
from mnas_jax.space.tokens import token_rows

__all__ = [
    "ADVANTAGE_NORMS",
    "PPOConfig",
    "PPOSearcher",
    "PPOState",
    "compute_advantages",
    "ppo",
    "ppo_loss",
    "state_from_bytes",
    "state_to_bytes",
]

ADVANTAGE_NORMS = ("std", "mean_std", "none")
_FORMAT = "mnas_jax.ppo_searcher/1"


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters; the defaults are the ones tuned by benchmarks/search.py part (a).

    advantage_norm: 'mean_std' (default) standardises the batch's rewards, which makes the EMA
    baseline cancel out (it is still tracked and reported); 'std' divides (reward - EMA baseline)
    by the batch's reward std, so the baseline decides the sign (a batch better than the running
    average is reinforced as a whole); 'none' keeps raw reward - baseline. On the synthetic
    benchmark 'std' needed several times more samples (benchmarks/reports/measured_earlier.md):
    while the policy improves, the lagging baseline makes most advantages positive and the
    policy collapses early onto a sub-optimal sequence.
    """

    learning_rate: float = 0.001
    epochs: int = 4
    clip_eps: float = 0.2
    entropy_coef: float = 0.0
    baseline_decay: float = 0.9
    max_grad_norm: float = 1.0
    advantage_norm: str = "mean_std"
    policy: PolicyConfig = PolicyConfig()

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ValueError(f"PPO learning_rate must be > 0, got {self.learning_rate!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"PPO epochs must be an int >= 1, got {self.epochs!r}")
        if not 0 < self.clip_eps < 1:
            raise ValueError(f"PPO clip_eps must lie in (0, 1), got {self.clip_eps!r}")
        if not self.entropy_coef >= 0:
            raise ValueError(f"PPO entropy_coef must be >= 0, got {self.entropy_coef!r}")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"PPO baseline_decay must lie in [0, 1), got {self.baseline_decay!r}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"PPO max_grad_norm must be > 0, got {self.max_grad_norm!r}")
        if self.advantage_norm not in ADVANTAGE_NORMS:
            raise ValueError(
                f"PPO advantage_norm {self.advantage_norm!r} unknown; use one of {ADVANTAGE_NORMS}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (the nested policy config too), for JSON checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PPOConfig:
        """Rebuild a config from `to_dict`'s output."""
        d = dict(d)
        d["policy"] = PolicyConfig(**d.get("policy", {}))
        return cls(**d)


class PPOState(NamedTuple):
    """Everything PPO needs to continue: params, Adam state, EMA baseline, update count, key."""

    params: Params
    opt_state: optax.OptState
    baseline: jax.Array  # float32 scalar: EMA of batch-mean rewards (valid once step > 0)
    step: jax.Array  # int32 scalar: number of updates done
    key: jax.Array  # raw uint32[2] PRNG key (typed keys do not serialise)


def _raw_key(key: jax.Array | int) -> jax.Array:
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return jnp.asarray(key, jnp.uint32)


def compute_advantages(
    rewards: jax.Array, baseline: jax.Array, norm: str = "std", eps: float = 1e-6
) -> jax.Array:
    """Advantages (n,) of a batch against a scalar baseline.

    'std': (r - b) / std(r); 'mean_std': (r - mean(r)) / std(r) (b cancels); 'none': r - b.
    A batch whose rewards are all equal (std <= eps, or n = 1) has no scale to normalise by, so
    it is divided by 1 instead of by ~0.
    """
    if norm not in ADVANTAGE_NORMS:
        raise ValueError(f"advantage norm {norm!r} unknown; use one of {ADVANTAGE_NORMS}")
    rewards = jnp.asarray(rewards, jnp.float32)
    if norm == "none":
        return rewards - baseline
    std = jnp.std(rewards)
    scale = jnp.where(std > eps, std, 1.0)
    centre = jnp.mean(rewards) if norm == "mean_std" else baseline
    return (rewards - centre) / scale


def ppo_loss(
    params: Params,
    tokens: jax.Array,
    old_log_probs: jax.Array,
    advantages: jax.Array,
    clip_eps: float,
    entropy_coef: float,
    *,
    choices: tuple[int, ...],
    policy: PolicyConfig = PolicyConfig(),
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped surrogate loss (to minimise) and diagnostics.

    loss = -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)) - entropy_coef * mean(H),
    ratio = exp(log_prob - old_log_prob), H the summed per-decision entropy of each sequence.
    """
    log_probs, entropy = log_prob_and_entropy(params, tokens, choices, policy)
    ratio = jnp.exp(log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    surrogate = jnp.minimum(unclipped, clipped)
    loss = -jnp.mean(surrogate) - entropy_coef * jnp.mean(entropy)
    aux = {
        "surrogate": jnp.mean(surrogate),
        "entropy": jnp.mean(entropy),
        "ratio_mean": jnp.mean(ratio),
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32)),
        "approx_kl": jnp.mean(old_log_probs - log_probs),
    }
    return loss, aux


def _optimizer(config: PPOConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate)
    )


def ppo(
    choices: tuple[int, ...], config: PPOConfig = PPOConfig()
) -> tuple[Callable[[jax.Array | int], PPOState], Callable[..., tuple[PPOState, dict[str, Any]]]]:
    """(init_fn, update_fn) for a decision structure.

    init_fn(key) -> PPOState. update_fn(state, tokens (n, D), old_log_probs (n,), rewards (n,))
    -> (state, metrics): advantages from the EMA baseline as it was before this batch (the first
    batch uses its own mean), `config.epochs` full-batch gradient steps, then the baseline moves.
    The pair is cached per (choices, config), so every searcher of one space shares one jitted
    update (compiled once per batch size).
    """
    return _ppo(check_choices(choices), config)


@functools.lru_cache(maxsize=32)
def _ppo(
    choices: tuple[int, ...], config: PPOConfig
) -> tuple[Callable[[jax.Array | int], PPOState], Callable[..., tuple[PPOState, dict[str, Any]]]]:
    tx = _optimizer(config)

    def init_fn(key: jax.Array | int) -> PPOState:
        key = _raw_key(key)
        key, init_key = jax.random.split(key)
        params = init_policy(init_key, choices, config.policy)
        return PPOState(params, tx.init(params), jnp.float32(0.0), jnp.int32(0), key)

    loss_fn = functools.partial(ppo_loss, choices=choices, policy=config.policy)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @jax.jit
    def update_fn(
        state: PPOState, tokens: jax.Array, old_log_probs: jax.Array, rewards: jax.Array
    ) -> tuple[PPOState, dict[str, jax.Array]]:
        rewards = jnp.asarray(rewards, jnp.float32)
        old_log_probs = jnp.asarray(old_log_probs, jnp.float32)
        batch_mean = jnp.mean(rewards)
        baseline = jnp.where(state.step > 0, state.baseline, batch_mean)
        advantages = compute_advantages(rewards, baseline, config.advantage_norm)

        def epoch(carry: Any, _: Any) -> tuple[Any, Any]:
            params, opt_state = carry
            (loss, aux), grads = grad_fn(
                params, tokens, old_log_probs, advantages, config.clip_eps, config.entropy_coef
            )
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), (loss, aux, optax.global_norm(grads))

        (params, opt_state), (losses, auxes, gnorms) = jax.lax.scan(
            epoch, (state.params, state.opt_state), None, length=config.epochs
        )
        new_baseline = config.baseline_decay * baseline + (1 - config.baseline_decay) * batch_mean
        metrics = {
            "loss": losses[0],
            "reward_mean": batch_mean,
            "reward_max": jnp.max(rewards),
            "baseline": baseline,
            "advantage_mean": jnp.mean(advantages),
            "grad_norm": gnorms[0],
            "entropy": auxes["entropy"][0],
            # ratio statistics of the last epoch: how far this update moved the policy
            "clip_fraction": auxes["clip_fraction"][-1],
            "approx_kl": auxes["approx_kl"][-1],
        }
        new_state = PPOState(params, opt_state, new_baseline, state.step + 1, state.key)
        return new_state, metrics

    return init_fn, update_fn


def state_to_bytes(state: PPOState) -> bytes:
    """msgpack bytes of a PPOState (flax.serialization)."""
    return flax.serialization.to_bytes(state)


def state_from_bytes(data: bytes, template: PPOState) -> PPOState:
    """Restore a PPOState; template is any state of the same structure (e.g. init_fn(0))."""
    return flax.serialization.from_bytes(template, data)


def on_cpu() -> Any:
    """A context in which new JAX arrays and computations land on the host CPU."""
    return jax.default_device(jax.devices("cpu")[0])


class PPOSearcher:
    """Ask/tell wrapper for the search loop; its only state is `self.state` (a PPOState).

    ask(n) samples n sequences with the current policy (advancing the key in the state);
    tell(tokens, rewards) runs one PPO update. Between an ask and its tell the params do not
    change, so tell recomputes the sampling log-probabilities itself: a search restored from a
    checkpoint between the two needs nothing else. The controller always runs on the CPU (its
    arrays, its compiled update): a search driver on a GPU or TPU host leaves the accelerators to
    the children.
    """

    def __init__(
        self,
        choices: tuple[int, ...],
        config: PPOConfig = PPOConfig(),
        seed: int = 0,
        state: PPOState | None = None,
    ) -> None:
        self.choices = check_choices(choices)
        self.config = config
        self._init_fn, self._update_fn = ppo(self.choices, config)
        with on_cpu():
            self.state = state if state is not None else self._init_fn(seed)

    def ask(self, n: int) -> np.ndarray:
        """Sample `n` token sequences from the policy, shape (n, D) int32; advances the PRNG key."""
        with on_cpu():
            return self._ask(n)

    def _ask(self, n: int) -> np.ndarray:
        key, sample_key = jax.random.split(self.state.key)
        tokens, _ = sample(self.state.params, sample_key, n, self.choices, self.config.policy)
        self.state = self.state._replace(key=key)
        return np.asarray(tokens)

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """Log-probability (n,) of each sequence under the current policy."""
        tokens = self._check_tokens(tokens)
        with on_cpu():
            log_p, _ = log_prob_and_entropy(self.state.params, tokens, self.choices, self.config.policy)
        return np.asarray(log_p)

    def greedy(self) -> np.ndarray:
        """The policy's step-by-step most likely sequence (D,)."""
        with on_cpu():
            return np.asarray(greedy(self.state.params, self.choices, self.config.policy)[0])

    def tell(
        self,
        tokens: np.ndarray,
        rewards: np.ndarray,
        old_log_probs: np.ndarray | None = None,
    ) -> dict[str, float]:
        """Take one PPO update on the sequences and their rewards; returns the update's metrics."""
        tokens = self._check_tokens(tokens)
        rewards = np.asarray(rewards, dtype=np.float32)
        if rewards.shape != (tokens.shape[0],) or not np.all(np.isfinite(rewards)):
            raise ValueError(
                f"rewards must be {tokens.shape[0]} finite numbers, one per sequence; "
                f"got shape {rewards.shape}"
            )
        if old_log_probs is None:
            old_log_probs = self.log_probs(tokens)
        with on_cpu():
            self.state, metrics = self._update_fn(self.state, tokens, old_log_probs, rewards)
        return {k: float(v) for k, v in metrics.items()}

    def _check_tokens(self, tokens: np.ndarray) -> np.ndarray:
        return token_rows(tokens, self.choices, min_rows=1).astype(np.int32)

    def to_bytes(self) -> bytes:
        """Self-describing msgpack: format tag, choices, config and the PPO state."""
        meta = {"format": _FORMAT, "choices": list(self.choices), "config": self.config.to_dict()}
        payload = {
            "meta": json.dumps(meta),
            "state": flax.serialization.to_state_dict(self.state),
        }
        return flax.serialization.msgpack_serialize(payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> PPOSearcher:
        """Restore a searcher from `to_bytes` output; ValueError if it is not such a checkpoint."""
        try:
            payload = flax.serialization.msgpack_restore(data)
            meta = json.loads(payload["meta"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"bytes are not a PPOSearcher checkpoint ({err})") from err
        if meta.get("format") != _FORMAT:
            raise ValueError(f"checkpoint format {meta.get('format')!r}, expected {_FORMAT!r}")
        searcher = cls(tuple(meta["choices"]), PPOConfig.from_dict(meta["config"]))
        with on_cpu():
            searcher.state = jax.device_put(flax.serialization.from_state_dict(searcher.state, payload["state"]))
        return searcher
