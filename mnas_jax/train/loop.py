"""``train_and_evaluate``: train one child on a data source and measure it.

The shape of Flax's imagenet example: a row of small named steps (place, init, compile, train,
evaluate), each in its own module; this one runs them and turns failures into data.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from mnas_jax.data.pipeline import prefetch, put_sharded
from mnas_jax.data.source import DataSource
from mnas_jax.models import build_model, init_variables
from mnas_jax.models.depthwise import DepthwiseImpl, default_impl
from mnas_jax.space import ArchSpec
from mnas_jax.train.checkpoint import Checkpointer
from mnas_jax.train.compile_cache import enable_compile_cache
from mnas_jax.train.config import TrainConfig, trains_stage_by_stage
from mnas_jax.train.optim import make_optimizer
from mnas_jax.train.result import FAILED, OK, TrainResult
from mnas_jax.train.sharding import Placement, check_batch_size, make_placement
from mnas_jax.train.compile import compile_child
from mnas_jax.train.layerwise import compile_layerwise
from mnas_jax.train.stage_compile import StageCache, process_cache
from mnas_jax.train.evaluate import evaluate, recalibrate_batch_stats
from mnas_jax.train.state import TrainState

log = logging.getLogger(__name__)

# Called after every training step with (step, total steps, mean loss of the last logging window
# or None between windows); e.g. a progress bar. It must not block: it runs inside the step loop.
StepCallback = Callable[[int, int, "float | None"], None]


class NonFiniteLoss(Exception):
    """Internal: the loss or gradient norm became NaN/inf (turned into a failed result)."""


def resolve_dw_impl(name: str) -> DepthwiseImpl:
    """'auto' picks the fastest depthwise implementation for the default backend."""
    return default_impl() if name == "auto" else DepthwiseImpl(name)


def _check_data(spec: ArchSpec, data: DataSource) -> None:
    want = (spec.input_size, spec.input_size, spec.input_channels)
    if tuple(data.image_shape) != want:
        raise ValueError(f"data gives images of shape {data.image_shape} but {spec.arch_id} expects {want}")
    if data.num_classes != spec.num_classes:
        raise ValueError(f"data has {data.num_classes} classes but {spec.arch_id} has {spec.num_classes}")


def _check_finite(pending: list[tuple[int, dict[str, jax.Array]]]) -> float:
    """Fetch queued step metrics; raise NonFiniteLoss at the first bad step; return mean loss."""
    losses = []
    for step, metrics in jax.device_get(pending):
        loss, norm = float(metrics["loss"]), float(metrics["grad_norm"])
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise NonFiniteLoss(f"non-finite training loss at step {step} (loss={loss}, grad_norm={norm})")
        losses.append(loss)
    return float(np.mean(losses)) if losses else float("nan")


def _run_steps(train_fn: Callable, state: TrainState, key: jax.Array, data: DataSource, config: TrainConfig,
               placement: Placement, seed: int, steps_per_epoch: int, total_steps: int,
               checkpointer: Checkpointer | None, curve: list[tuple[int, float]],
               on_step: StepCallback | None = None) -> TrainState:
    """The training loop proper; appends (step, mean loss of the window) to ``curve``."""
    put = functools.partial(put_sharded, sharding=placement.data)
    step = int(jax.device_get(state.step))
    pending: list[tuple[int, dict[str, jax.Array]]] = []
    while step < total_steps:
        epoch, skip = divmod(step, steps_per_epoch)
        batches = data.train_batches(config.batch_size, seed=seed, epoch=epoch, limit=config.train_limit,
                                     augment=config.augment, shard=placement.shard)
        for i, batch in enumerate(prefetch(batches, put, config.prefetch)):
            if i < skip:
                continue  # resuming inside an epoch
            state, metrics = train_fn(state, batch, key)
            step += 1
            pending.append((step, metrics))
            if step % config.log_every == 0 or step == total_steps:
                curve.append((step, _check_finite(pending)))
                pending = []
                log.info("step %d/%d loss %.4f", step, total_steps, curve[-1][1])
                if on_step is not None:
                    on_step(step, total_steps, curve[-1][1])
            elif on_step is not None:
                on_step(step, total_steps, None)
            if checkpointer is not None:
                checkpointer.maybe_save(step, state, force=step == total_steps)
            if step >= total_steps:
                break
    jax.block_until_ready(state)
    return state


def train_and_evaluate(spec: ArchSpec, config: TrainConfig, key: jax.Array,
                       data: DataSource, *,
                       on_step: StepCallback | None = None,
                       stage_cache: StageCache | None = None,
                       on_trained: Callable[[Any, dict[str, Any]], None] | None = None) -> TrainResult:
    """Train ``spec`` with ``config`` and report validation (and optionally test) accuracy.

    A loss or gradient that becomes NaN/inf, or running out of memory, ends the child with
    ``status='failed'`` and the reason, so a search can carry on with the next child.
    ``on_step`` sees every step (see `StepCallback`), e.g. to draw a progress bar.
    With ``config.layerwise`` the child trains stage by stage with executables from
    ``stage_cache`` (this process's cache when None), compiling only stages it has not seen; on more
    than one device, or on an accelerator, it trains as one network (the per-stage executables are
    single-device, and stage by stage pays only where compiling dominates: the CPU).
    With ``config.input_size`` the same architecture trains at that input resolution.
    ``on_trained(state, evaluated_variables)`` sees the final training state (its
    ``raw_params()``, its ``eval_variables()`` from BN's moving averages) and the variables that
    are evaluated (EMA when kept, recalibrated BN), e.g. to check that they agree.
    """
    arch_id = spec.arch_id
    if config.input_size is not None and config.input_size != spec.input_size:
        spec = dataclasses.replace(spec, input_size=config.input_size)
    if config.compile_cache_dir:
        enable_compile_cache(config.compile_cache_dir)
    _check_data(spec, data)
    placement = make_placement()
    check_batch_size(config.batch_size, placement)
    check_batch_size(config.eval_batch_size, placement)
    impl = resolve_dw_impl(config.dw_impl)
    n_train = data.num_examples("train") if config.train_limit is None else min(config.train_limit, data.num_examples("train"))
    steps_per_epoch = n_train // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{n_train} training examples do not fill one batch of {config.batch_size}")
    total_steps = config.max_steps or max(1, round(config.epochs * steps_per_epoch))
    base = dict(arch_id=arch_id, config_name=config.name, num_devices=placement.num_devices, dw_impl=impl.value)

    model = build_model(spec, impl)
    tx = make_optimizer(config, steps_per_epoch, total_steps)
    init_key, dropout_key, data_key = jax.random.split(key, 3)
    seed = int(jax.random.randint(data_key, (), 0, 2**31 - 1))
    start = time.perf_counter()
    init_seed = int(jax.random.randint(init_key, (), 0, 2**31 - 1))
    # numpy-seeded, so every process builds the same values before they are replicated
    variables = jax.device_put(init_variables(model, (1, *data.image_shape), seed=init_seed), placement.replicated)
    if trains_stage_by_stage(config.layerwise, placement.num_devices, placement.platform):
        compiled = compile_layerwise(spec, impl, config, variables, placement, dropout_key, steps_per_epoch,
                                     total_steps, stage_cache if stage_cache is not None else process_cache())
    else:
        compiled = compile_child(model, tx, config, spec, variables, data, placement, dropout_key)
    state = compiled.make_state(variables)
    compile_seconds = time.perf_counter() - start
    checkpointer = None
    if config.checkpoint_dir:
        every = max(1, round(config.checkpoint_every_epochs * steps_per_epoch))
        checkpointer = Checkpointer(config.checkpoint_dir, every)
        if checkpointer.latest_step() is not None:
            state = checkpointer.restore(state)
    train_fn, eval_fn, stats_fn = compiled.train, compiled.evaluate, compiled.batch_stats
    start_step = int(jax.device_get(state.step))
    start = time.perf_counter()
    curve: list[tuple[int, float]] = []
    try:
        state = _run_steps(train_fn, state, dropout_key, data, config, placement, seed,
                           steps_per_epoch, total_steps, checkpointer, curve, on_step)
    except NonFiniteLoss as err:
        log.warning("%s failed: %s", spec.arch_id, err)
        return TrainResult(status=FAILED, reason=str(err), compile_seconds=compile_seconds,
                           train_seconds=time.perf_counter() - start, loss_curve=tuple(curve), **base)
    except jax.errors.JaxRuntimeError as err:
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        return TrainResult(status=FAILED, reason=f"out of memory: {str(err).splitlines()[0]}",
                           compile_seconds=compile_seconds, **base)
    finally:
        if checkpointer is not None:
            checkpointer.close()
    train_seconds = time.perf_counter() - start
    steps = total_steps - start_step
    variables = state.eval_variables()
    if stats_fn is not None:
        variables = recalibrate_batch_stats(stats_fn, variables, data, config, placement, seed)
    if on_trained is not None:
        on_trained(state, variables)
    val_acc, val_loss = evaluate(eval_fn, variables, data, "validation", config, placement, config.val_limit)
    test_acc = evaluate(eval_fn, variables, data, "test", config, placement)[0] if config.evaluate_test else None
    if not math.isfinite(val_loss):
        return TrainResult(status=FAILED, reason=f"non-finite validation loss ({val_loss})", steps=total_steps,
                           train_seconds=train_seconds, compile_seconds=compile_seconds, **base)
    return TrainResult(
        status=OK, val_accuracy=val_acc, test_accuracy=test_acc, val_loss=val_loss,
        final_loss=curve[-1][1] if curve else None, loss_curve=tuple(curve),
        steps=total_steps, train_seconds=train_seconds, compile_seconds=compile_seconds,
        images_per_second=steps * config.batch_size / max(train_seconds, 1e-9), **base,
    )
