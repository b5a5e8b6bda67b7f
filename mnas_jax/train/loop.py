"""``train_and_evaluate``: train one child on a data source and measure it.

The shape of Flax's imagenet example: the loop is a row of small named steps (place, init,
compile, train, evaluate). Every batch has a fixed shape and both steps are compiled ahead of
time, so compile time is measured separately from training time and nothing recompiles.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.data.fashion_mnist import load_fashion_mnist
from mnas_jax.data.pipeline import prefetch, put_sharded
from mnas_jax.data.source import Batch, DataSource
from mnas_jax.models import build_model
from mnas_jax.models.depthwise import DepthwiseImpl, default_impl
from mnas_jax.space import ArchSpec
from mnas_jax.train.checkpoint import Checkpointer
from mnas_jax.train.compile_cache import enable_compile_cache
from mnas_jax.train.config import TrainConfig
from mnas_jax.train.optim import make_optimizer
from mnas_jax.train.result import FAILED, OK, TrainResult
from mnas_jax.train.sharding import Placement, check_batch_size, make_placement, maybe_initialize_distributed
from mnas_jax.train.state import TrainState, create_train_state, init_variables
from mnas_jax.train.steps import eval_step, train_step

log = logging.getLogger(__name__)


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


def _abstract_batch(batch_size: int, data: DataSource, sharding: jax.sharding.Sharding) -> Batch:
    def sds(shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

    return Batch(
        sds((batch_size, *data.image_shape), jnp.float32),
        sds((batch_size,), jnp.int32),
        sds((batch_size,), jnp.float32),
    )


def _init_state(model, tx, config: TrainConfig, key: jax.Array, data: DataSource, placement: Placement):
    """Variables + optimiser state, replicated over the mesh; returns (state, compile seconds)."""
    variables, seconds = init_variables(model, key, data.image_shape, placement.replicated)
    make = jax.jit(functools.partial(create_train_state, tx=tx, ema=config.ema_decay is not None),
                   out_shardings=placement.replicated)
    start = time.perf_counter()
    compiled = make.lower(variables).compile({"xla_backend_optimization_level": 0})
    seconds += time.perf_counter() - start
    return compiled(variables), seconds


def _compile_steps(model, tx, config: TrainConfig, spec: ArchSpec, state: TrainState, data: DataSource,
                   placement: Placement, key: jax.Array) -> tuple[Callable, Callable, float]:
    """AOT-compile the train step (state donated) and the eval step."""
    step = functools.partial(train_step, model=model, tx=tx, num_classes=spec.num_classes,
                             label_smoothing=config.label_smoothing, ema_decay=config.ema_decay)
    start = time.perf_counter()
    train_fn = jax.jit(step, donate_argnums=0, out_shardings=placement.replicated).lower(
        state, _abstract_batch(config.batch_size, data, placement.data), key).compile()
    eval_fn = jax.jit(functools.partial(eval_step, model=model), out_shardings=placement.replicated).lower(
        state.eval_variables(), _abstract_batch(config.eval_batch_size, data, placement.data)).compile()
    return train_fn, eval_fn, time.perf_counter() - start


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
               checkpointer: Checkpointer | None) -> tuple[TrainState, float]:
    """The training loop proper; returns the final state and the mean loss of the last window."""
    put = functools.partial(put_sharded, sharding=placement.data)
    step = int(jax.device_get(state.step))
    pending: list[tuple[int, dict[str, jax.Array]]] = []
    last_loss = float("nan")
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
                last_loss = _check_finite(pending)
                pending = []
                log.info("step %d/%d loss %.4f", step, total_steps, last_loss)
            if checkpointer is not None:
                checkpointer.maybe_save(step, state, force=step == total_steps)
            if step >= total_steps:
                break
    jax.block_until_ready(state)
    return state, last_loss


def train_and_evaluate(spec: ArchSpec, config: TrainConfig, key: jax.Array,
                       data: DataSource | None = None) -> TrainResult:
    """Train ``spec`` with ``config`` and report validation (and optionally test) accuracy.

    A loss or gradient that becomes NaN/inf, or running out of memory, ends the child with
    ``status='failed'`` and the reason, so a search can carry on with the next child.
    """
    maybe_initialize_distributed(config.distributed)
    if config.compile_cache_dir:
        enable_compile_cache(config.compile_cache_dir)
    data = data if data is not None else load_fashion_mnist(input_size=spec.input_size)
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
    base = dict(arch_id=spec.arch_id, config_name=config.name, num_devices=placement.num_devices, dw_impl=impl.value)

    model = build_model(spec, impl)
    tx = make_optimizer(config, steps_per_epoch, total_steps)
    init_key, dropout_key, data_key = jax.random.split(key, 3)
    seed = int(jax.random.randint(data_key, (), 0, 2**31 - 1))
    state, compile_seconds = _init_state(model, tx, config, init_key, data, placement)
    checkpointer = None
    if config.checkpoint_dir:
        every = max(1, round(config.checkpoint_every_epochs * steps_per_epoch))
        checkpointer = Checkpointer(config.checkpoint_dir, every)
        if checkpointer.latest_step() is not None:
            state = checkpointer.restore(state)
    train_fn, eval_fn, seconds = _compile_steps(model, tx, config, spec, state, data, placement, dropout_key)
    compile_seconds += seconds
    start_step = int(jax.device_get(state.step))
    start = time.perf_counter()
    try:
        state, final_loss = _run_steps(train_fn, state, dropout_key, data, config, placement, seed,
                                       steps_per_epoch, total_steps, checkpointer)
    except NonFiniteLoss as err:
        log.warning("%s failed: %s", spec.arch_id, err)
        return TrainResult(status=FAILED, reason=str(err), compile_seconds=compile_seconds,
                           train_seconds=time.perf_counter() - start, **base)
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
    val_acc, val_loss = evaluate(eval_fn, variables, data, "validation", config, placement, config.val_limit)
    test_acc = evaluate(eval_fn, variables, data, "test", config, placement)[0] if config.evaluate_test else None
    if not math.isfinite(val_loss):
        return TrainResult(status=FAILED, reason=f"non-finite validation loss ({val_loss})", steps=total_steps,
                           train_seconds=train_seconds, compile_seconds=compile_seconds, **base)
    return TrainResult(
        status=OK, val_accuracy=val_acc, test_accuracy=test_acc, val_loss=val_loss, final_loss=final_loss,
        steps=total_steps, train_seconds=train_seconds, compile_seconds=compile_seconds,
        images_per_second=steps * config.batch_size / max(train_seconds, 1e-9), **base,
    )
