"""Training one child for ACC(m): a top-level function Ray can ship to its workers."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from mnas_jax.search.types import ChildResult
from mnas_jax.space import ArchSpec


@functools.lru_cache(maxsize=2)
def _data(input_size: int) -> Any:
    """Fashion-MNIST, loaded once per process (a pure function of its argument)."""
    from mnas_jax.data.fashion_mnist import load_fashion_mnist

    return load_fashion_mnist(input_size=input_size)


@functools.lru_cache(maxsize=1)
def _stage_cache() -> Any:
    """This process's compiled stages: every child trained here reuses the stages it shares."""
    from mnas_jax.train.stage_compile import StageCache

    return StageCache()


def train_config(preset: str, overrides: dict[str, Any]) -> Any:
    from mnas_jax.train.config import get_preset

    return dataclasses.replace(get_preset(preset), **overrides)


def train_child(spec_string: str, seed: int, preset: str = "proxy",
                overrides: tuple[tuple[str, Any], ...] = ()) -> ChildResult:
    """Proxy-train `spec_string` and return its validation accuracy as ACC(m)."""
    from mnas_jax.train.xla_cpu import configure_xla_cpu

    configure_xla_cpu()  # before this process's first JAX computation (no-op after it)
    import jax

    from mnas_jax.train.loop import train_and_evaluate

    spec = ArchSpec.from_string(spec_string)
    config = train_config(preset, dict(overrides))
    data = _data(config.input_size or spec.input_size)
    res = train_and_evaluate(spec, config, jax.random.key(seed), data, stage_cache=_stage_cache())
    return ChildResult(spec.arch_id, "ok" if res.ok else "failed", res.val_accuracy, res.reason,
                       res.train_seconds + res.compile_seconds,
                       {"compile_seconds": res.compile_seconds, "steps": res.steps})
