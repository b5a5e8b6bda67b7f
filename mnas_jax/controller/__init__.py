"""The search controller: an LSTM policy over a space's decisions, trained with PPO."""

from mnas_jax.controller.policy import (
    PolicyConfig,
    check_choices,
    greedy,
    init_policy,
    log_prob_and_entropy,
    sample,
)
from mnas_jax.controller.ppo import (
    PPOConfig,
    PPOSearcher,
    PPOState,
    compute_advantages,
    ppo,
    ppo_loss,
    state_from_bytes,
    state_to_bytes,
)

__all__ = [
    "PPOConfig",
    "PPOSearcher",
    "PPOState",
    "PolicyConfig",
    "check_choices",
    "compute_advantages",
    "greedy",
    "init_policy",
    "log_prob_and_entropy",
    "ppo",
    "ppo_loss",
    "sample",
    "state_from_bytes",
    "state_to_bytes",
]
