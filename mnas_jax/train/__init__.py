"""Child-model training: the paper's recipe, proxy training for the search, data parallelism."""

from mnas_jax.train.config import (
    PRESETS,
    DistributedConfig,
    TrainConfig,
    get_preset,
    paper,
    proxy,
    smoke,
)
from mnas_jax.train.evaluate import evaluate
from mnas_jax.train.loop import resolve_dw_impl, train_and_evaluate
from mnas_jax.train.result import FAILED, OK, TrainResult

__all__ = [
    "FAILED",
    "OK",
    "PRESETS",
    "DistributedConfig",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "get_preset",
    "paper",
    "proxy",
    "resolve_dw_impl",
    "smoke",
    "train_and_evaluate",
]
