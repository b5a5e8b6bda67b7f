"""Training the supernet's shared weights one sampled child path per step (SPOS; TuNAS once a
controller supplies the paths), without a one-program supernet step.

A step: sample a child (`sample_path`), gather its channel-padded stage variables and optimiser
slices from the shared weights (`oneshot_paths`), run ONE step of the layer-wise trainer's
recipe on them with the cached padded stage programs (`layerwise`'s step itself: loss, RMSProp,
BN, dropout key), and scatter the updated slices back. The programs are the ~340 padded stage
programs the proxy shares (`stage_compile.process_cache`), so the supernet compiles only the
stages its paths have not met yet, and no convolution gradient ever sits in a conditional
(../shared/notes/switch-spike.md). Weights off the path are neither read nor written; a shared
step on a path is the stand-alone layer-wise step of that child from its cut weights
(tests/test_oneshot_train.py).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.data.pipeline import prefetch, put_sharded
from mnas_jax.data.source import Batch, DataSource
from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.init import fill_host_variables
from mnas_jax.models.supernet import Supernet
from mnas_jax.models.supernet_layout import SupernetLayout, encode_path, supernet_layout
from mnas_jax.progress import Progress
from mnas_jax.space import get_space
from mnas_jax.space.spec import ArchSpec
from mnas_jax.train.checkpoint import Checkpointer
from mnas_jax.train.config import TrainConfig
from mnas_jax.train.layerwise import LayerwiseState, StepInputs, stage_train_fn, static_hyper
from mnas_jax.train.oneshot import abstract_variables
from mnas_jax.train.oneshot_paths import (ChildPlan, SharedWeights, StageVariables, child_plan, fresh_weights,
                                          gather_child, scatter_child, tree_weights, weights_tree)
from mnas_jax.train.optim import OptimizerParts, learning_rate_schedule, optimizer_parts
from mnas_jax.train.sharding import Placement, make_placement
from mnas_jax.train.stage_compile import StageCache, StageFns

SamplePath = Callable[[jax.Array], ArchSpec]  # a PRNG key -> the child whose path trains next



def uniform_paths(space: Any, input_size: int | None = None) -> SamplePath:
    """Every decision uniform and independent (SPOS); `input_size`: the children's resolution."""
    choices = jnp.asarray(space.choices, jnp.int32)

    def sample(key: jax.Array) -> ArchSpec:
        tokens = np.asarray(jax.random.randint(key, choices.shape, 0, choices)).tolist()
        spec = space.decode(tokens)
        return spec if input_size is None else dataclasses.replace(spec, input_size=input_size)

    return sample


@dataclasses.dataclass
class PathRunner:
    """What runs any child's path: the layout, the recipe, the stage programs (compiled on first
    use into `cache`) and each child's plan (kept for children seen again)."""

    layout: SupernetLayout
    config: TrainConfig
    impl: DepthwiseImpl
    cache: StageCache
    placement: Placement
    parts: OptimizerParts
    compile_seconds: float = 0.0  # spent compiling stages so far
    _plans: dict = dataclasses.field(default_factory=dict, repr=False)
    _opt_layouts: dict = dataclasses.field(default_factory=dict, repr=False)

    def plan(self, weights: SharedWeights, spec: ArchSpec) -> ChildPlan:
        """The child's plan (cached; a few hundred kept)."""
        if spec not in self._plans:
            if len(self._plans) > 512:
                self._plans.clear()
            self._plans[spec] = child_plan(self.layout, spec, self.impl, weights, self.parts, self._opt_layouts)
        return self._plans[spec]

    @property
    def dropped(self) -> int:
        """Stages its cache dropped to keep within the process's memory maps."""
        return self.cache.dropped

    def stage_fns(self, plan: ChildPlan) -> list[StageFns]:
        """The child's stage programs, compiling the missing ones."""
        fns, seconds = self.cache.prepare(plan.stages, static_hyper(self.config), self.parts,
                                          self.layout.num_classes, self.placement.data, self.placement.replicated)
        self.compile_seconds += seconds
        return fns


def path_runner(layout: SupernetLayout, config: TrainConfig, impl: DepthwiseImpl,
                cache: StageCache | None = None, placement: Placement | None = None) -> PathRunner:
    """A runner for `layout`'s children trained with `config`; its own stage cache by default
    (kept within the process's memory maps: see `stage_compile.MAP_SHARE`)."""
    if config.ema_decay is not None:
        raise ValueError("the one-shot trainer keeps no EMA of the shared weights; use a config with "
                         "ema_decay=None (the proxy preset)")
    return PathRunner(layout, config, impl, cache if cache is not None else StageCache(),
                      placement if placement is not None else make_placement(), optimizer_parts(config))


def init_weights(layout: SupernetLayout, parts: OptimizerParts, seed: int) -> SharedWeights:
    """Shared weights filled from `seed` by a child's rules (`models.init`), fresh optimiser state."""
    return fresh_weights(fill_host_variables(supernet_shapes(layout), seed), parts)


@functools.lru_cache(maxsize=4)
def supernet_shapes(layout: SupernetLayout) -> Any:
    """The abstract variables of `layout`'s supernet (traced once per layout: seconds)."""
    space = get_space(layout.space, layout.setting)
    path = jax.tree.map(jnp.asarray, encode_path(layout, space.decode([0] * len(space.choices))))
    return abstract_variables(Supernet(layout), path)


def train_step(runner: PathRunner, weights: SharedWeights, spec: ArchSpec, batch: Batch, key: jax.Array,
               lr: float) -> tuple[SharedWeights, dict[str, jax.Array]]:
    """One step of the shared weights on `spec`'s path: the layer-wise recipe's step of the child
    on its slices, written back. `weights` is updated in place (see `oneshot_paths`); `key` is the
    dropout key of the run (folded with the step, as a stand-alone child's)."""
    plan = runner.plan(weights, spec)
    fns = runner.stage_fns(plan)
    rep = runner.placement.replicated
    dev = jax.device_put(gather_child(weights, plan), rep)
    step, lr_, decay = jax.device_put((np.int32(weights.step), np.float32(lr), np.float32(0.0)), rep)
    state = LayerwiseState(0, dev.params, dev.stats, dev.opt, None, [], plan.stages)
    new, metrics = stage_train_fn(fns, key, StepInputs([step], [lr_], [decay]))(state, batch, key)
    scatter_child(weights, plan, StageVariables(new.params, new.stats, new.opt))
    return weights._replace(step=weights.step + 1), metrics


@dataclasses.dataclass(frozen=True)
class SupernetRun:
    """A supernet training's outcome: the weights, the loss per step, and where time went."""

    weights: SharedWeights
    losses: tuple[float, ...]
    step_seconds: tuple[float, ...]  # wall time of each step, compiling included
    step_compile_seconds: tuple[float, ...]  # of which compiling (or reloading) stage programs
    step_stage_misses: tuple[int, ...]  # stage programs each step did not find compiled
    compile_seconds: float
    stages_compiled: int  # stage programs in the runner's cache at the end


def train_supernet(layout: SupernetLayout, data: DataSource, config: TrainConfig, key: jax.Array, steps: int, *,
                   sample_path: SamplePath, runner: PathRunner | None = None, weights: SharedWeights | None = None,
                   checkpoint_dir: str | None = None, checkpoint_every: int = 100,
                   progress: bool = True) -> SupernetRun:
    """Train the shared weights up to step `steps` (from `weights`, or fresh ones from `key`), one
    path from `sample_path` per step, on `data`'s training split with `config`'s recipe (its
    batch size, learning-rate schedule over `steps`, augmentation, `train_limit`).

    With `checkpoint_dir`: saved every `checkpoint_every` steps and at the end, and resumed from
    there when it holds a checkpoint. A step's path, batch and dropout mask are functions of
    `key` and the step, so a resumed run repeats exactly what the lost steps would have done."""
    want = (layout.input_size, layout.input_size, layout.input_channels)
    if tuple(data.image_shape) != want:
        raise ValueError(f"data gives images of shape {tuple(data.image_shape)} but the supernet takes {want}; "
                         "open the data at the supernet's input size")
    impl = DepthwiseImpl.SHIFT if jax.default_backend() == "cpu" else DepthwiseImpl.XLA
    runner = runner or path_runner(layout, config, impl)
    init_key, path_key, dropout_key, data_key = jax.random.split(key, 4)
    if weights is None:
        weights = init_weights(layout, runner.parts, int(jax.random.randint(init_key, (), 0, 2**31 - 1)))
    checkpointer = Checkpointer(checkpoint_dir, checkpoint_every) if checkpoint_dir else None
    if checkpointer is not None and checkpointer.latest_step() is not None:
        weights = tree_weights(checkpointer.restore(weights_tree(weights)))
    seed = int(jax.random.randint(data_key, (), 0, 2**31 - 1))
    lrs, log = _learning_rates(config, data, steps), _RunLog([], [], [], [])
    try:
        with Progress("supernet", steps, enabled=progress) as bar:
            bar.update(weights.step)
            for batch in _batches(data, config, runner.placement, seed, weights.step, steps):
                weights = _logged_step(runner, weights, sample_path(jax.random.fold_in(path_key, weights.step)), batch,
                                       dropout_key, float(lrs[weights.step]), log)
                bar.update(weights.step, note=f"loss {np.mean(log.losses[-20:]):.3f}")
                if checkpointer is not None:
                    checkpointer.maybe_save(weights.step, weights_tree(weights), force=weights.step == steps)
    finally:
        if checkpointer is not None:
            checkpointer.close()
    return SupernetRun(weights, tuple(log.losses), tuple(log.seconds), tuple(log.compile_seconds),
                       tuple(log.misses), runner.compile_seconds, len(runner.cache))


class _RunLog(NamedTuple):
    losses: list[float]
    seconds: list[float]
    compile_seconds: list[float]
    misses: list[int]


def _logged_step(runner: PathRunner, weights: SharedWeights, spec: ArchSpec, batch: Batch, key: jax.Array,
                 lr: float, log: _RunLog) -> SharedWeights:
    start, compiled, misses = time.perf_counter(), runner.compile_seconds, runner.cache.misses
    weights, metrics = train_step(runner, weights, spec, batch, key, lr)
    loss = float(metrics["loss"])
    if not np.isfinite(loss):
        raise FloatingPointError(f"non-finite supernet loss at step {weights.step} on {spec.arch_id}")
    log.losses.append(loss)
    log.seconds.append(time.perf_counter() - start)
    log.compile_seconds.append(runner.compile_seconds - compiled)
    log.misses.append(runner.cache.misses - misses)
    return weights


def _steps_per_epoch(data: DataSource, config: TrainConfig) -> int:
    n = data.num_examples("train")
    return (n if config.train_limit is None else min(config.train_limit, n)) // config.batch_size


def _learning_rates(config: TrainConfig, data: DataSource, steps: int) -> np.ndarray:
    """The schedule's rate at every step of a run of `steps`."""
    schedule = learning_rate_schedule(config, _steps_per_epoch(data, config), steps)
    return np.asarray(jax.vmap(schedule)(jnp.arange(steps + 1)), np.float32)


def _batches(data: DataSource, config: TrainConfig, placement: Placement, seed: int, start: int,
             steps: int) -> Iterator[Batch]:
    """The device batches of steps `start`..`steps` - 1: epoch e's order is a function of
    (seed, e), so a resumed run reads the batches the lost steps would have."""
    per_epoch = _steps_per_epoch(data, config)
    put = functools.partial(put_sharded, sharding=placement.data)
    step = start
    while step < steps:
        epoch, skip = divmod(step, per_epoch)
        batches = data.train_batches(config.batch_size, seed=seed, epoch=epoch, limit=config.train_limit,
                                     augment=config.augment, shard=placement.shard)
        for batch in prefetch(itertools.islice(batches, skip, None), put, config.prefetch):
            yield batch
            step += 1
            if step >= steps:
                return


def default_layout(space: Any, config: TrainConfig) -> SupernetLayout:
    """The supernet of `space` at `config`'s input size (the proxy's 16x16 by default)."""
    layout = supernet_layout(space)
    return layout if config.input_size is None else dataclasses.replace(layout, input_size=config.input_size)
