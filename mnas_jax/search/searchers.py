"""Searchers to compare PPO with, over token sequences: random search and regularised evolution.

They share the PPO searcher's ask/tell shape so the search loop and the benchmarks can swap
them: `ask(n) -> tokens (n, D) int32`, `tell(tokens, rewards) -> metrics`, and `to_bytes()` /
`from_bytes()` for checkpoints (here UTF-8 JSON, numpy's generator state included, so a restored
searcher continues exactly where the saved one stopped).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import numpy as np

from mnas_jax.controller.policy import check_choices
from mnas_jax.space.tokens import token_rows

__all__ = ["SEARCHER_NAMES", "RandomSearch", "RegularizedEvolution", "Searcher", "make_searcher",
           "reinforce_config", "searcher_from_bytes"]


class Searcher(Protocol):
    """What the search loop needs of a searcher."""

    def ask(self, n: int) -> np.ndarray:
        """Propose `n` token sequences, shape (n, D) int32."""

    def tell(self, tokens: np.ndarray, rewards: np.ndarray) -> dict[str, float]:
        """Learn from the rewards of sequences it proposed; returns metrics of the update."""

    def to_bytes(self) -> bytes:
        """The searcher's full state as bytes, for a checkpoint."""


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of samples must be a positive int, got {n!r}")
    return int(n)


def _check_rewards(rewards: Any, n: int) -> np.ndarray:
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.shape != (n,) or not np.all(np.isfinite(rewards)):
        raise ValueError(f"rewards must be {n} finite numbers, one per sequence; got {rewards!r}")
    return rewards


def _generator(state: dict[str, Any] | None, seed: int) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    if state is not None:
        rng.bit_generator.state = state
    return rng


def _load(data: bytes | str, kind: str) -> dict[str, Any]:
    try:
        d = json.loads(data)
    except ValueError as err:
        raise ValueError(f"not a {kind} checkpoint: invalid JSON ({err})") from err
    if not isinstance(d, dict) or d.get("kind") != kind:
        got = d.get("kind") if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"checkpoint is of kind {got!r}, expected {kind!r}")
    return d


def _batch_metrics(rewards: np.ndarray, best: float) -> dict[str, float]:
    return {"reward_mean": float(rewards.mean()), "reward_max": float(rewards.max()), "best": best}


class _JsonState:
    """Checkpoints as UTF-8 JSON text: the common fields plus each searcher's own `_fields()`;
    subclasses read them back in `from_json`."""

    kind: str
    choices: tuple[int, ...]
    seed: int
    rng: np.random.Generator
    best: float

    def _fields(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> str:
        """The searcher's whole state as JSON text (random generator included)."""
        return json.dumps({"kind": self.kind, "choices": list(self.choices), **self._fields(),
                           "seed": self.seed, "rng": self.rng.bit_generator.state,
                           "best": self.best if np.isfinite(self.best) else None})

    def to_bytes(self) -> bytes:
        """The searcher's whole state, for a checkpoint."""
        return self.to_json().encode()


class RandomSearch(_JsonState):
    """Uniform sampling of every decision; remembers only the best reward seen."""

    kind = "random_search"

    def __init__(self, choices: tuple[int, ...], seed: int = 0) -> None:
        self.choices = check_choices(choices)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.best = float("-inf")

    def ask(self, n: int) -> np.ndarray:
        """`n` token sequences (n, D) to evaluate next."""
        n = _check_n(n)
        return self.rng.integers(0, self.choices, size=(n, len(self.choices))).astype(np.int32)

    def tell(self, tokens: np.ndarray, rewards: np.ndarray) -> dict[str, float]:
        """Learn from the rewards of evaluated token sequences; metrics of the batch."""
        tokens = token_rows(tokens, self.choices, min_rows=1)
        rewards = _check_rewards(rewards, tokens.shape[0])
        self.best = max(self.best, float(rewards.max()))
        return _batch_metrics(rewards, self.best)

    @classmethod
    def from_json(cls, data: bytes | str) -> RandomSearch:
        """The searcher saved by `to_json`/`to_bytes`, continuing exactly where it stopped."""
        d = _load(data, cls.kind)
        searcher = cls(tuple(d["choices"]), d["seed"])
        searcher.rng = _generator(d["rng"], d["seed"])
        searcher.best = float("-inf") if d["best"] is None else float(d["best"])
        return searcher

    from_bytes = from_json


class RegularizedEvolution(_JsonState):
    """Aging evolution (Real et al. 2019): tournament of `sample_size`, mutate the winner's one
    decision, the newest child joins and the oldest member leaves.

    Until `population_size` rewards have been told, ask() returns uniform random sequences (the
    initial population). A batch ask draws each child from an independent tournament over the
    current population, as in the paper's asynchronous workers.
    """

    kind = "regularized_evolution"

    def __init__(
        self,
        choices: tuple[int, ...],
        population_size: int = 32,
        sample_size: int = 8,
        seed: int = 0,
    ) -> None:
        self.choices = check_choices(choices)
        if not isinstance(population_size, int) or population_size < 1:
            raise ValueError(f"population_size must be an int >= 1, got {population_size!r}")
        if not isinstance(sample_size, int) or not 1 <= sample_size:
            raise ValueError(f"sample_size must be an int >= 1, got {sample_size!r}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        # oldest first: (tokens, reward)
        self.population: list[tuple[list[int], float]] = []
        self.best = float("-inf")
        self._mutable = np.flatnonzero(np.asarray(self.choices) > 1)

    def ask(self, n: int) -> np.ndarray:
        """`n` token sequences (n, D) to evaluate next."""
        n = _check_n(n)
        d = len(self.choices)
        if len(self.population) < self.population_size:
            return self.rng.integers(0, self.choices, size=(n, d)).astype(np.int32)
        rewards = np.asarray([r for _, r in self.population])
        children = np.empty((n, d), dtype=np.int32)
        for i in range(n):
            contenders = self.rng.integers(0, len(self.population), size=self.sample_size)
            winner = contenders[np.argmax(rewards[contenders])]
            children[i] = self._mutate(np.asarray(self.population[winner][0]))
        return children

    def _mutate(self, parent: np.ndarray) -> np.ndarray:
        child = parent.copy()
        if self._mutable.size == 0:
            return child
        pos = int(self.rng.choice(self._mutable))
        # a different value, uniformly among the other options of that decision
        shift = int(self.rng.integers(1, self.choices[pos]))
        child[pos] = (child[pos] + shift) % self.choices[pos]
        return child

    def tell(self, tokens: np.ndarray, rewards: np.ndarray) -> dict[str, float]:
        """Learn from the rewards of evaluated token sequences; metrics of the batch."""
        tokens = token_rows(tokens, self.choices, min_rows=1)
        rewards = _check_rewards(rewards, tokens.shape[0])
        for row, r in zip(tokens, rewards):
            self.population.append(([int(t) for t in row], float(r)))
        del self.population[: max(0, len(self.population) - self.population_size)]
        self.best = max(self.best, float(rewards.max()))
        return _batch_metrics(rewards, self.best)

    def _fields(self) -> dict[str, Any]:
        return {"population_size": self.population_size, "sample_size": self.sample_size,
                "population": self.population}

    @classmethod
    def from_json(cls, data: bytes | str) -> RegularizedEvolution:
        """The searcher saved by `to_json`/`to_bytes`, continuing exactly where it stopped."""
        d = _load(data, cls.kind)
        searcher = cls(tuple(d["choices"]), d["population_size"], d["sample_size"], d["seed"])
        searcher.rng = _generator(d["rng"], d["seed"])
        searcher.population = [([int(t) for t in toks], float(r)) for toks, r in d["population"]]
        searcher.best = float("-inf") if d["best"] is None else float(d["best"])
        return searcher

    from_bytes = from_json


# -- the searchers by name ------------------------------------------------------------------------

#: Names `make_searcher` knows, in the order reports list them.
SEARCHER_NAMES = ("ppo", "reinforce", "evolution", "random")


def reinforce_config(learning_rate: float = 0.05, baseline_decay: float = 0.95,
                     entropy_coef: float = 0.0, policy: Any = None) -> Any:
    """REINFORCE with an exponential-moving-average baseline (TuNAS's controller update) as a
    PPOConfig: one gradient step per batch (at the sampling policy PPO's clipped ratio is 1, so
    its gradient is exactly A * grad log p) on A = reward - baseline, no normalisation."""
    from mnas_jax.controller.policy import PolicyConfig
    from mnas_jax.controller.ppo import PPOConfig

    return PPOConfig(learning_rate=learning_rate, epochs=1, entropy_coef=entropy_coef,
                     baseline_decay=baseline_decay, advantage_norm="none",
                     policy=policy if policy is not None else PolicyConfig())


def make_searcher(name: str, choices: tuple[int, ...], seed: int, *, ppo: Any = None,
                  population_size: int = 32, sample_size: int = 8) -> Searcher:
    """The searcher called `name` (one of SEARCHER_NAMES) over `choices`; `ppo` is the
    controller's PPOConfig for 'ppo' and 'reinforce' (their defaults when None)."""
    from mnas_jax.controller.ppo import PPOConfig, PPOSearcher

    if name == "ppo":
        return PPOSearcher(choices, ppo if ppo is not None else PPOConfig(), seed)
    if name == "reinforce":
        return PPOSearcher(choices, ppo if ppo is not None else reinforce_config(), seed)
    if name == "evolution":
        return RegularizedEvolution(choices, population_size, sample_size, seed)
    if name == "random":
        return RandomSearch(choices, seed)
    raise ValueError(f"unknown searcher {name!r}; choose one of {list(SEARCHER_NAMES)}")


def searcher_from_bytes(data: bytes) -> Searcher:
    """Any searcher `make_searcher` builds, restored from its `to_bytes()`."""
    from mnas_jax.controller.ppo import PPOSearcher

    if data[:1] == b"{":
        kind = json.loads(data).get("kind")
        for cls in (RandomSearch, RegularizedEvolution):
            if cls.kind == kind:
                return cls.from_json(data)
        raise ValueError(f"searcher checkpoint of unknown kind {kind!r}")
    return PPOSearcher.from_bytes(data)
