"""Scoring a child by its path through the trained shared weights, with its own padded stage
programs (forward only): the child's compute, not the masked supernet's full width.

ACC(m) as TuNAS takes it: the child's weights cut out of the shared ones, its BN statistics
recomputed on a few hundred training images (the shared BN averages belong to no child),
then its accuracy on the search's validation images. The programs are the training's cached
stage programs, so a child whose stages the supernet training met compiles nothing. The
statistics are averaged over batches of the training batch size, as a stand-alone proxy
child's recalibration (`evaluate.recalibrate_batch_stats`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.data.pipeline import put_sharded
from mnas_jax.data.source import Batch, DataSource
from mnas_jax.models.supernet_slices import gather
from mnas_jax.space.spec import ArchSpec
from mnas_jax.train.layerwise import stage_batch_stats, stage_evaluate
from mnas_jax.train.oneshot_paths import SharedWeights
from mnas_jax.train.oneshot_train import PathRunner


def evaluation_batches(data: DataSource, runner: PathRunner, calibration: int, validation: int,
                       seed: int = 0) -> tuple[list[Batch], list[Batch]]:
    """Device batches to score every child on: `calibration` un-augmented training images (in
    batches of the training batch size) and the first `validation` validation images."""
    config, sharding = runner.config, runner.placement.data
    n_cal = max(1, calibration // config.batch_size)
    train = data.train_batches(config.batch_size, seed=seed, epoch=1_000_000, limit=config.train_limit,
                               augment=False, shard=runner.placement.shard)
    cal = [put_sharded(b, sharding) for b in itertools.islice(train, n_cal)]
    val = [put_sharded(b, sharding) for b in data.eval_batches("validation", config.eval_batch_size,
                                                               limit=validation, shard=runner.placement.shard)]
    return cal, val


def evaluate_child(runner: PathRunner, weights: SharedWeights, spec: ArchSpec, calibration: Sequence[Batch],
                   validation: Sequence[Batch]) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `spec`'s path on `validation`, BN statistics recomputed
    on `calibration` first. Reads `weights`, changes nothing."""
    plan = runner.plan(weights, spec)
    fns = runner.stage_fns(plan)
    params = [jax.tree_util.tree_unflatten(s.treedefs["params"], gather(weights.params, s.leaves["params"]))
              for s in plan.slices]
    zeros = [jax.tree_util.tree_unflatten(s.treedefs["batch_stats"],
                                          [np.zeros(leaf.shape, np.float32) for leaf in s.leaves["batch_stats"]])
             for s in plan.slices]
    params, zeros = jax.device_put((params, zeros), runner.placement.replicated)
    total = None
    for batch in calibration:
        stats = stage_batch_stats(fns, params, zeros, batch.images)
        total = stats if total is None else jax.tree.map(jnp.add, total, stats)
    stats = jax.tree.map(lambda t: t / len(calibration), total)
    sums = [stage_evaluate(fns, params, stats, batch) for batch in validation]
    sums = jax.device_get(jax.tree.map(lambda *a: sum(a), *sums))
    count = max(float(sums["count"]), 1.0)
    return float(sums["correct"]) / count, float(sums["loss"]) / count
