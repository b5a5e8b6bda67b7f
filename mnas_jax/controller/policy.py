"""The controller's policy: an LSTM that emits one token per decision of a search space.

Only the decision structure is needed: `choices[t]` is the number of options of decision t
(MnasNet: 42 decisions, FBNet: 22 decisions of 9). At step t the LSTM reads the embedding of the
previous token (a learned start embedding at t = 0) and a per-decision softmax head turns its
output into logits over that decision's options.

To run the whole sequence in one `jax.lax.scan`, the per-decision heads are stacked into one
(D, hidden, max_choices) kernel indexed by t, and the embeddings share one table with per-decision
offsets; logits past a decision's own number of options are masked with a large negative value
(finite, so that entropies and gradients stay free of NaN).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "PolicyConfig",
    "check_choices",
    "greedy",
    "init_policy",
    "log_prob_and_entropy",
    "sample",
]

Params = Any
_MASKED = -1e9


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Size and sampling shape of the controller.

    temperature divides the logits; tanh_constant C (if set) squashes them to C * tanh(logits),
    as in ENAS / the NAS-RL controllers, which keeps every option's probability above a floor and
    so keeps the search exploring (2.5 as in ENAS; None turns clipping off). init_scale bounds
    the uniform initialisation of the embeddings and heads, so the initial policy is close to
    uniform over each decision.
    """

    hidden: int = 64
    embed_dim: int = 32
    temperature: float = 1.0
    tanh_constant: float | None = 2.5
    init_scale: float = 0.1

    def __post_init__(self) -> None:
        for name in ("hidden", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"policy {name} must be a positive int, got {value!r}")
        if not self.temperature > 0:
            raise ValueError(f"policy temperature must be > 0, got {self.temperature!r}")
        if self.tanh_constant is not None and not self.tanh_constant > 0:
            raise ValueError(
                "policy tanh_constant must be > 0 or None (no clipping), "
                f"got {self.tanh_constant!r}"
            )
        if not self.init_scale > 0:
            raise ValueError(f"policy init_scale must be > 0, got {self.init_scale!r}")


def check_choices(choices: tuple[int, ...]) -> tuple[int, ...]:
    """Validate a decision structure: a non-empty tuple of option counts, each >= 1."""
    choices = tuple(choices)
    if not choices:
        raise ValueError("choices is empty: a search space needs at least one decision")
    for i, c in enumerate(choices):
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
            raise ValueError(
                f"choices[{i}] = {c!r}: every decision needs an int number of options >= 1"
            )
    return tuple(int(c) for c in choices)


def _symmetric_uniform(scale: float) -> Any:
    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class _Net(nn.Module):
    """One LSTM step plus the head of decision t; the scan over decisions lives outside."""

    num_decisions: int
    max_choices: int
    num_embeddings: int
    config: PolicyConfig

    def setup(self) -> None:
        init = _symmetric_uniform(self.config.init_scale)
        self.embed = nn.Embed(self.num_embeddings, self.config.embed_dim, embedding_init=init)
        self.cell = nn.OptimizedLSTMCell(self.config.hidden)
        shape = (self.num_decisions, self.config.hidden, self.max_choices)
        self.head_kernel = self.param("head_kernel", init, shape)
        self.head_bias = self.param(
            "head_bias", nn.initializers.zeros, (self.num_decisions, self.max_choices)
        )

    def __call__(self, carry: Any, index: jax.Array, t: jax.Array) -> tuple[Any, jax.Array]:
        carry, h = self.cell(carry, self.embed(index))
        return carry, h @ self.head_kernel[t] + self.head_bias[t]


@functools.lru_cache(maxsize=64)
def _structure(
    choices: tuple[int, ...], config: PolicyConfig
) -> tuple[_Net, np.ndarray, np.ndarray]:
    """The module, per-decision option counts and embedding offsets for one decision structure."""
    choices = check_choices(choices)
    counts = np.asarray(choices, dtype=np.int32)
    # index 0 is the start embedding; the tokens of decision t occupy 1 + offsets[t] + token.
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    net = _Net(len(choices), int(counts.max()), int(counts.sum()) + 1, config)
    return net, counts, offsets


def _zero_carry(n: int, config: PolicyConfig) -> tuple[jax.Array, jax.Array]:
    z = jnp.zeros((n, config.hidden), jnp.float32)
    return (z, z)


def _process_logits(logits: jax.Array, count: jax.Array, config: PolicyConfig) -> jax.Array:
    logits = logits / config.temperature
    if config.tanh_constant is not None:
        logits = config.tanh_constant * jnp.tanh(logits)
    valid = jnp.arange(logits.shape[-1]) < count
    return jnp.where(valid, logits, _MASKED)


def init_policy(
    key: jax.Array, choices: tuple[int, ...], config: PolicyConfig = PolicyConfig()
) -> Params:
    """Fresh controller parameters for a decision structure."""
    net, _, _ = _structure(tuple(choices), config)
    return net.init(key, _zero_carry(1, config), jnp.zeros((1,), jnp.int32), jnp.int32(0))


@functools.partial(jax.jit, static_argnames=("n", "choices", "config", "greedy_decode"))
def _decode(
    params: Params,
    key: jax.Array,
    n: int,
    choices: tuple[int, ...],
    config: PolicyConfig,
    greedy_decode: bool = False,
) -> tuple[jax.Array, jax.Array]:
    net, counts, offsets = _structure(choices, config)
    steps = jnp.arange(len(choices), dtype=jnp.int32)
    keys = jax.random.split(key, len(choices))
    rows = jnp.arange(n)

    def body(state: Any, xs: Any) -> tuple[Any, Any]:
        carry, index = state
        t, k = xs
        carry, logits = net.apply(params, carry, index, t)
        logits = _process_logits(logits, jnp.asarray(counts)[t], config)
        if greedy_decode:
            token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        else:
            token = jax.random.categorical(k, logits).astype(jnp.int32)
        log_p = jax.nn.log_softmax(logits)[rows, token]
        next_index = 1 + jnp.asarray(offsets)[t] + token
        return (carry, next_index), (token, log_p)

    init = (_zero_carry(n, config), jnp.zeros((n,), jnp.int32))
    _, (tokens, log_ps) = jax.lax.scan(body, init, (steps, keys))
    return tokens.T, log_ps.sum(axis=0)


def sample(
    params: Params,
    key: jax.Array,
    n: int,
    choices: tuple[int, ...],
    config: PolicyConfig = PolicyConfig(),
) -> tuple[jax.Array, jax.Array]:
    """Sample n token sequences: (tokens int32 (n, D), log-probability of each sequence (n,))."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"number of samples must be a positive int, got {n!r}")
    return _decode(params, key, n, check_choices(choices), config)


def greedy(
    params: Params, choices: tuple[int, ...], config: PolicyConfig = PolicyConfig()
) -> tuple[jax.Array, jax.Array]:
    """The step-by-step most likely sequence (D,) and its log-probability: the policy's 'mode'."""
    tokens, log_p = _decode(
        params, jax.random.PRNGKey(0), 1, check_choices(choices), config, greedy_decode=True
    )
    return tokens[0], log_p[0]


@functools.partial(jax.jit, static_argnames=("choices", "config"))
def log_prob_and_entropy(
    params: Params,
    tokens: jax.Array,
    choices: tuple[int, ...],
    config: PolicyConfig = PolicyConfig(),
) -> tuple[jax.Array, jax.Array]:
    """Teacher-forced log-probability (n,) of given sequences and the summed per-step entropy (n,).

    Differentiable in params; PPO calls it inside its loss. tokens must lie in range (the caller
    validates them: out-of-range tokens give meaningless values, not an error, under jit).
    """
    net, counts, offsets = _structure(choices, config)
    tokens = jnp.asarray(tokens, jnp.int32)
    n = tokens.shape[0]
    rows = jnp.arange(n)
    prev = jnp.concatenate(
        [jnp.zeros((n, 1), jnp.int32), 1 + jnp.asarray(offsets)[None, :-1] + tokens[:, :-1]],
        axis=1,
    )
    steps = jnp.arange(len(choices), dtype=jnp.int32)

    def body(carry: Any, xs: Any) -> tuple[Any, Any]:
        t, index, token = xs
        carry, logits = net.apply(params, carry, index, t)
        count = jnp.asarray(counts)[t]
        logits = _process_logits(logits, count, config)
        log_probs = jax.nn.log_softmax(logits)
        valid = jnp.arange(logits.shape[-1]) < count
        entropy = -jnp.sum(jnp.where(valid, jnp.exp(log_probs) * log_probs, 0.0), axis=-1)
        return carry, (log_probs[rows, token], entropy)

    _, (log_ps, entropies) = jax.lax.scan(body, _zero_carry(n, config), (steps, prev.T, tokens.T))
    return log_ps.sum(axis=0), entropies.sum(axis=0)
