"""Training one child for ACC(m): a top-level function Ray can ship to its workers.

The data source is part of the search's configuration (`SearchConfig.data`, `data_dir`): each
process opens it once, shaped for the setting's input; `check_data` opens it on the driver first,
so a search whose data cannot feed its setting stops in one line before any table is built.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from mnas_jax.search.types import ChildResult
from mnas_jax.space import ArchSpec, get_setting


@functools.lru_cache(maxsize=2)
def _data(data: str, data_dir: str | None, input_size: int, channels: int, num_classes: int) -> Any:
    """The data source, opened once per process (a pure function of its arguments)."""
    from mnas_jax.data.spec import DataSpec, open_data

    return open_data(DataSpec.parse(data, data_dir), input_size=input_size, channels=channels,
                     num_classes=num_classes)


def check_data(data: str, data_dir: str | None, setting: str) -> None:
    """Open ``data`` for ``setting``; ValueError in one line (naming --data/--data-dir) if it can't."""
    s = get_setting(setting)
    _data(data, data_dir, s.input_size, s.input_channels, s.num_classes)


def train_config(preset: str, overrides: dict[str, Any]) -> Any:
    """The preset with ``overrides``; ``batch_per_device`` becomes a global batch for this host."""
    from mnas_jax.train.config import get_preset

    overrides = dict(overrides)
    per_device = overrides.pop("batch_per_device", None)
    if per_device is not None:
        import jax

        overrides.setdefault("batch_size", int(per_device) * jax.device_count())
        overrides.setdefault("eval_batch_size", int(per_device) * jax.device_count())
    return dataclasses.replace(get_preset(preset), **overrides)


def train_child(spec_string: str, seed: int, preset: str = "proxy",
                overrides: tuple[tuple[str, Any], ...] = (), data: str = "fmnist",
                data_dir: str | None = None) -> ChildResult:
    """Proxy-train `spec_string` on `data` and return its validation accuracy as ACC(m)."""
    from mnas_jax.train.runtime import prepare_process

    prepare_process()  # XLA flags and the shared compilation cache, before the first JAX computation
    import jax

    from mnas_jax.train.loop import train_and_evaluate

    spec = ArchSpec.from_string(spec_string)
    config = train_config(preset, dict(overrides))
    size = config.input_size or spec.input_size
    source = _data(data, data_dir, size, spec.input_channels, spec.num_classes)
    res = train_and_evaluate(spec, config, jax.random.key(seed), source)  # this process's stage cache
    return ChildResult(spec.arch_id, "ok" if res.ok else "failed", res.val_accuracy, res.reason,
                       res.train_seconds + res.compile_seconds,
                       {"compile_seconds": res.compile_seconds, "steps": res.steps,
                        "devices": res.num_devices, "test_accuracy": res.test_accuracy})
