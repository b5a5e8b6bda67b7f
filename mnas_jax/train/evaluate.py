"""Evaluation of a trained child: BN recalibration and accuracy over a split."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from mnas_jax.data.pipeline import prefetch, put_sharded
from mnas_jax.data.source import DataSource
from mnas_jax.train.config import TrainConfig
from mnas_jax.train.sharding import Placement


def recalibrate_batch_stats(stats_fn: Callable, variables: dict[str, Any], data: DataSource, config: TrainConfig,
                            placement: Placement, seed: int) -> dict[str, Any]:
    """``variables`` with BN statistics averaged over a few un-augmented training batches (of the
    training batch size, whose shapes the training executables already have)."""
    n_batches = max(1, config.bn_recalibration_examples // config.batch_size)
    batches = data.train_batches(config.batch_size, seed=seed, epoch=1_000_000, limit=config.train_limit,
                                 augment=False, shard=placement.shard)
    put = functools.partial(put_sharded, sharding=placement.data)
    total, count = None, 0
    for batch in prefetch(itertools.islice(batches, n_batches), put, config.prefetch):
        stats = stats_fn(variables, batch)
        total = stats if total is None else jax.tree.map(jnp.add, total, stats)
        count += 1
    return {**variables, "batch_stats": jax.tree.map(lambda t: t / count, total)}


def evaluate(eval_fn: Callable, variables: dict[str, Any], data: DataSource, split: str, config: TrainConfig,
             placement: Placement, limit: int | None = None) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) over a split (or its first ``limit`` examples)."""
    batches = data.eval_batches(split, config.eval_batch_size, limit=limit, shard=placement.shard)
    sums = None
    for batch in prefetch(batches, functools.partial(put_sharded, sharding=placement.data), config.prefetch):
        out = eval_fn(variables, batch)
        sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    if sums is None:
        raise ValueError(f"split {split!r} is empty")
    sums = jax.device_get(sums)
    count = max(float(sums["count"]), 1.0)
    return float(sums["correct"]) / count, float(sums["loss"]) / count
