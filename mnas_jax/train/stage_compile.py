"""Compiled executables of one network stage, and a cache that reuses them across children.

A stage (stem, one searchable layer, or the tail: see ``mnas_jax.models.stages``) compiles to a
few small executables: a training forward that keeps what the backward needs, a backward fused
with the optimiser and EMA update, an evaluation forward (and, for the tail, the loss and its
gradient in one). Their code depends only on the stage's key, the batch shape and the static
hyperparameters, never on the weights, so a process compiles each distinct stage once and every
later child containing it starts training at once. A search's children share a good part of
their distinct layers early on and more as the controller converges (how much:
benchmarks/reports/measured_earlier.md).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mnas_jax.models.stages import Stage
from mnas_jax.train.compile import cpu_only
from mnas_jax.train.optim import OptimizerParts
from mnas_jax.train.recipe import (batch_statistics, correct_count, ema_update, eval_sums, example_count,
                                   masked_loss, rmsprop_update, smoothed_targets, squared_norm,
                                   step_dropout_key)

log = logging.getLogger(__name__)

# XLA's backend optimisation level 1: the compile is ~15% faster than level 3 at the same step
# time (see compile.py); level 0 would slow the training steps down by ~1.7x.
_OPTIONS = {"xla_backend_optimization_level": 1}


@dataclasses.dataclass(frozen=True)
class StaticHyper:
    """Everything besides the stage itself that is compiled into its executables."""

    batch_size: int
    eval_batch_size: int
    weight_decay: float
    rmsprop_decay: float
    rmsprop_epsilon: float
    rmsprop_initial_scale: float
    rmsprop_momentum: float
    ema: bool
    label_smoothing: float


class StageFns(NamedTuple):
    """The executables of one stage (``train``/``batch_stats`` only for the tail)."""

    forward: Callable | None  # (params, stats, x) -> (y, new_stats, vjp)
    backward: Callable | None  # (vjp, dy, params, opt, ema, lr, decay) -> (dx, params, opt, ema, sumsq)
    evaluate: Callable  # chain: (params, stats, x) -> y; tail: (params, stats, x, labels, mask) -> sums
    train: Callable | None = None  # tail: (params, stats, opt, ema, x, labels, mask, key, step, lr, decay)
    batch_stats: Callable | None = None  # tail: (params, stats, x) -> BN batch statistics


def _chain_forward(stage: Stage, first: bool) -> Callable:
    module = stage.module

    def forward(params: Any, stats: Any, x: jax.Array) -> tuple:
        def apply(p: Any, v: jax.Array) -> tuple[jax.Array, Any]:
            y, upd = module.apply({"params": p, "batch_stats": stats}, v, True, mutable=["batch_stats"])
            return y, upd["batch_stats"]

        if first:  # the input needs no gradient
            y, vjp, new_stats = jax.vjp(lambda p: apply(p, x), params, has_aux=True)
        else:
            y, vjp, new_stats = jax.vjp(apply, params, x, has_aux=True)
        return y, new_stats, vjp

    return forward


def _chain_backward(parts: OptimizerParts, first: bool) -> Callable:
    def backward(vjp: Any, dy: jax.Array, params: Any, opt: tuple, ema: Any, lr: jax.Array,
                 decay: jax.Array) -> tuple:
        grads = vjp(dy)
        dparams, dx = (grads[0], None) if first else grads
        new_params, opt = rmsprop_update(parts, dparams, opt, params, lr)
        return dx, new_params, opt, ema_update(ema, new_params, decay), squared_norm(dparams)

    return backward


def _chain_evaluate(stage: Stage) -> Callable:
    def evaluate(params: Any, stats: Any, x: jax.Array) -> jax.Array:
        return stage.module.apply({"params": params, "batch_stats": stats}, x, False)

    return evaluate


def _tail_train(stage: Stage, parts: OptimizerParts, hyper: StaticHyper, num_classes: int) -> Callable:
    module = stage.module

    def train(params: Any, stats: Any, opt: tuple, ema: Any, x: jax.Array, labels: jax.Array,
              mask: jax.Array, key: jax.Array, step: jax.Array, lr: jax.Array, decay: jax.Array) -> tuple:
        targets = smoothed_targets(labels, num_classes, hyper.label_smoothing)
        count = example_count(mask)
        rngs = {"dropout": step_dropout_key(key, step)}

        def loss_fn(p: Any, v: jax.Array) -> tuple[jax.Array, tuple]:
            logits, upd = module.apply({"params": p, "batch_stats": stats}, v, True, mutable=["batch_stats"],
                                       rngs=rngs)
            return masked_loss(logits, targets, mask, count), (logits, upd.get("batch_stats", {}))

        (loss, (logits, new_stats)), (dparams, dx) = jax.value_and_grad(loss_fn, (0, 1), has_aux=True)(params, x)
        new_params, opt = rmsprop_update(parts, dparams, opt, params, lr)
        correct = correct_count(logits, labels, mask)
        return dx, loss, correct, new_params, new_stats, opt, ema_update(ema, new_params, decay), squared_norm(dparams)

    return train


def _tail_evaluate(stage: Stage) -> Callable:
    def evaluate(params: Any, stats: Any, x: jax.Array, labels: jax.Array, mask: jax.Array) -> dict:
        return eval_sums(stage.module.apply({"params": params, "batch_stats": stats}, x, False), labels, mask)

    return evaluate


def _tail_batch_stats(stage: Stage) -> Callable:
    def batch_stats(params: Any, stats: Any, x: jax.Array) -> Any:
        zeros = jax.tree.map(jnp.zeros_like, stats)
        _, upd = stage.module.apply({"params": params, "batch_stats": zeros}, x, True, mutable=["batch_stats"],
                                    rngs={"dropout": jax.random.key(0)})
        return batch_statistics(upd.get("batch_stats", {}))

    return batch_stats


def _sds(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def _abstract_variables(stage: Stage, batch: int) -> dict:
    x = jax.ShapeDtypeStruct((batch, *stage.in_shape), jnp.float32)
    return jax.eval_shape(lambda v: stage.module.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                                      v, True), x)


def compile_stage(stage: Stage, first: bool, hyper: StaticHyper, parts: OptimizerParts, num_classes: int,
                  data_sharding: jax.sharding.Sharding, replicated: jax.sharding.Sharding) -> StageFns:
    """Lower and compile one stage's executables against abstract shapes."""
    options = cpu_only(_OPTIONS, next(iter(data_sharding.device_set)).platform)
    variables = _abstract_variables(stage, hyper.batch_size)
    params = _sds(variables["params"], replicated)
    stats = _sds(variables.get("batch_stats", {}), replicated)
    opt = _sds(jax.eval_shape(lambda p: (parts.before.init(p), parts.after.init(p)), variables["params"]), replicated)
    ema = params if hyper.ema else None
    scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated)
    x = jax.ShapeDtypeStruct((hyper.batch_size, *stage.in_shape), jnp.float32, sharding=data_sharding)
    x_eval = jax.ShapeDtypeStruct((hyper.eval_batch_size, *stage.in_shape), jnp.float32, sharding=data_sharding)
    if stage.tail:
        labels = jax.ShapeDtypeStruct((hyper.batch_size,), jnp.int32, sharding=data_sharding)
        mask = jax.ShapeDtypeStruct((hyper.batch_size,), jnp.float32, sharding=data_sharding)
        labels_e = jax.ShapeDtypeStruct((hyper.eval_batch_size,), jnp.int32, sharding=data_sharding)
        mask_e = jax.ShapeDtypeStruct((hyper.eval_batch_size,), jnp.float32, sharding=data_sharding)
        key = jax.eval_shape(lambda: jax.random.key(0))
        key = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=replicated)
        step = jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated)
        train = jax.jit(_tail_train(stage, parts, hyper, num_classes), donate_argnums=(0, 2, 3)).lower(
            params, stats, opt, ema, x, labels, mask, key, step, scalar, scalar).compile(options)
        evaluate = jax.jit(_tail_evaluate(stage), out_shardings=replicated).lower(
            params, stats, x_eval, labels_e, mask_e).compile(options)
        batch_stats = jax.jit(_tail_batch_stats(stage), out_shardings=replicated).lower(params, stats, x).compile(options)
        return StageFns(None, None, evaluate, train, batch_stats)
    forward_fn = jax.jit(_chain_forward(stage, first))
    forward = forward_fn.lower(params, stats, x).compile(options)
    y, _, vjp = jax.eval_shape(forward_fn, params, stats, x)
    dy = jax.ShapeDtypeStruct(y.shape, y.dtype, sharding=data_sharding)
    backward = jax.jit(_chain_backward(parts, first), donate_argnums=(2, 3, 4)).lower(
        vjp, dy, params, opt, ema, scalar, scalar).compile(options)
    evaluate = jax.jit(_chain_evaluate(stage)).lower(params, stats, x_eval).compile(options)
    return StageFns(forward, backward, evaluate)


# XLA:CPU maps each compiled kernel into memory on its own: a padded stage's three programs take
# ~250 memory maps (regular convs) to ~480 (5x5 inverted bottlenecks, shift-and-add depthwise),
# and Linux allows a process 65,530 by default (vm.max_map_count). A process that kept every
# stage of the fmnist space it met died after ~30 supernet steps with "LLVM compilation error:
# Cannot allocate memory". So after compiling, a stage cache whose process holds
# more than MAP_SHARE of its allowed maps drops its least recently used stages until it holds
# less than MAP_TARGET; a dropped stage met again is recompiled (~2 s) or, with JAX's persistent
# compilation cache on (`compile_cache`), reloaded (~0.16 s).
MAP_SHARE, MAP_TARGET = 0.8, 0.65


def memory_maps() -> tuple[int, int] | None:
    """(memory maps this process holds, the most it may hold), where Linux tells; else None."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f), limit
    except (OSError, ValueError):
        return None


def keep_within_maps(cache: StageCache, keep: int) -> int:
    """Drop `cache`'s least recently used stages (never its `keep` newest) while this process
    holds more than MAP_TARGET of its allowed memory maps, once it holds more than MAP_SHARE;
    returns how many were dropped."""
    maps = memory_maps()
    if maps is None or maps[0] < MAP_SHARE * maps[1]:
        return 0
    dropped = 0
    while maps is not None and maps[0] > MAP_TARGET * maps[1] and len(cache) > keep:
        count = min(max(1, len(cache) // 10), len(cache) - keep)
        cache.drop_oldest(count)
        dropped += count
        before, maps = maps, memory_maps()
        if maps is not None and maps[0] >= before[0]:
            gc.collect()  # executables caught in reference cycles
            maps = memory_maps()
    return dropped


class StageCache:
    """Compiled stages of this process, least recently used dropped beyond ``capacity`` or when
    the process nears its memory-map limit (`keep_within_maps`).

    Thread-safe; ``prepare`` compiles the missing stages of a child two at a time (XLA releases
    the GIL while compiling, so two compiles keep both cores of a small machine busy).
    """

    def __init__(self, capacity: int = 4096, workers: int = 2) -> None:
        self.capacity, self.workers = capacity, workers
        self._fns: OrderedDict[tuple, StageFns] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self.dropped = 0  # stages dropped to keep within the process's memory maps

    def __len__(self) -> int:
        return len(self._fns)

    def drop_oldest(self, count: int) -> None:
        """Forget the ``count`` least recently used stages (their executables, and the memory
        XLA mapped for them, are freed once no running step holds them)."""
        with self._lock:
            for _ in range(min(count, len(self._fns))):
                self._fns.popitem(last=False)

    def prepare(self, stages: Sequence[Stage], hyper: StaticHyper, parts: OptimizerParts, num_classes: int,
                data_sharding: jax.sharding.Sharding, replicated: jax.sharding.Sharding) -> tuple[list[StageFns], float]:
        """Executables for every stage (compiled now where missing), and the seconds spent compiling."""
        placement_id = (tuple(d.id for d in data_sharding.device_set), str(data_sharding.spec))
        keys = [(s.key, s.in_shape, i == 0, hyper, num_classes, placement_id) for i, s in enumerate(stages)]
        start = time.perf_counter()
        with self._lock:
            missing = {k: s for k, s in zip(keys, stages) if k not in self._fns}
            self.hits += len(set(keys)) - len(missing)
            self.misses += len(missing)
        if missing:
            job = functools.partial(compile_stage, hyper=hyper, parts=parts, num_classes=num_classes,
                                    data_sharding=data_sharding, replicated=replicated)
            with concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="mnas-stage") as pool:
                futures = {k: pool.submit(job, s, k[2]) for k, s in missing.items()}
                built = {k: f.result() for k, f in futures.items()}
            with self._lock:
                self._fns.update(built)
        with self._lock:
            fns = []
            for k in keys:
                self._fns.move_to_end(k)
                fns.append(self._fns[k])
            while len(self._fns) > self.capacity:
                self._fns.popitem(last=False)
        if missing:
            self.dropped += keep_within_maps(self, len(set(keys)))
        return fns, time.perf_counter() - start


@functools.lru_cache(maxsize=1)
def process_cache() -> StageCache:
    """This process's compiled stages: every child trained here without a cache of its own
    reuses the stages it shares with children trained before it."""
    return StageCache()
