"""Layer-wise training: the network run stage by stage with executables shared across children.

The same arithmetic as the whole-network step (``steps.train_step``): forward through every
stage in training mode, the loss and its gradient at the tail, then backward through the stages
in reverse, each stage updating its own weights, optimiser state and EMA as its gradient
arrives (the update of a weight depends only on its own gradient, so updating per stage is the
same update). Only the compiled units differ: one per distinct stage instead of one per network,
so a proxy child whose layers were seen before compiles nothing (``stage_compile.StageCache``).

The state and the callables it returns have the shapes ``train_and_evaluate`` expects from
``compile.compile_child``, so the training loop, evaluation and BN recalibration are shared.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.data.source import Batch
from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.stages import Stage, StagePadder, merge_stage_trees, net_stages, stage_padder, stage_tree
from mnas_jax.space import ArchSpec
from mnas_jax.train.compile import Compiled
from mnas_jax.train.config import TrainConfig
from mnas_jax.train.optim import ema_decay_at, learning_rate_schedule, optimizer_parts
from mnas_jax.train.recipe import batch_statistics
from mnas_jax.train.sharding import Placement
from mnas_jax.train.stage_compile import StageCache, StageFns, StaticHyper
from mnas_jax.train.state import debiased_batch_stats


class LayerwiseState(NamedTuple):
    """Per-stage lists of weights, BN statistics, optimiser state and EMA (None: no EMA)."""

    step: int
    params: list
    stats: list
    opt: list
    ema: list | None
    initial_stats: list
    stages: tuple[Stage, ...]
    padders: tuple[StagePadder | None, ...] | None = None  # channel-padded stages: back to Net's shapes

    def _net(self, collection: str, trees: list) -> dict[str, Any]:
        if self.padders is not None:
            trees = [t if p is None else p.unpad(collection, t) for p, t in zip(self.padders, trees)]
        return merge_stage_trees(list(zip(self.stages, trees)))

    def raw_params(self) -> dict[str, Any]:
        """The trained weights themselves (not their EMA), Net-shaped."""
        return self._net("params", self.params)

    def eval_variables(self) -> dict[str, Any]:
        """Net-shaped variables to evaluate: the EMA when kept, BN averages debiased as in
        ``TrainState.eval_variables`` (recalibration replaces them when configured)."""
        params = self.params if self.ema is None else self.ema
        stats = [debiased_batch_stats(s, s0, jnp.asarray(self.step)) for s, s0 in zip(self.stats, self.initial_stats)]
        return {"params": self._net("params", params), "batch_stats": self._net("batch_stats", stats)}


def static_hyper(config: TrainConfig) -> StaticHyper:
    """The hyperparameters compiled into stage executables."""
    return StaticHyper(config.batch_size, config.eval_batch_size, config.weight_decay, config.rmsprop_decay,
                       config.rmsprop_epsilon, config.rmsprop_initial_scale, config.rmsprop_momentum,
                       config.ema_decay is not None, config.label_smoothing)


def _split(stages: tuple[Stage, ...], variables: dict[str, Any],
           padders: tuple[StagePadder | None, ...] | None = None) -> tuple[list, list]:
    params = [stage_tree(variables["params"], s) for s in stages]
    stats = [stage_tree(variables.get("batch_stats", {}), s) for s in stages]
    if padders is not None:  # Net's variables to the padded stages' shapes
        params = [t if p is None else p.pad("params", t) for p, t in zip(padders, params)]
        stats = [t if p is None else p.pad("batch_stats", t) for p, t in zip(padders, stats)]
    return params, stats


class StepInputs(NamedTuple):
    """The per-step scalars of a whole run, put on the device once (not three transfers a step)."""

    step: list[jax.Array]  # int32, the step index (the tail's dropout key)
    lr: list[jax.Array]
    decay: list[jax.Array]


def step_inputs(lrs: np.ndarray, decays: np.ndarray, replicated: jax.sharding.Sharding) -> StepInputs:
    """Every step's index, learning rate and EMA decay as device scalars, in one batched transfer:
    the values the step loop used to put one by one (same float32 values)."""
    steps = [np.int32(i) for i in range(len(lrs))]
    put = jax.device_put((steps, [np.float32(v) for v in lrs], [np.float32(v) for v in decays]), replicated)
    return StepInputs(*put)


@functools.partial(jax.jit, static_argnames="batch_size")
def step_metrics(loss: jax.Array, correct: jax.Array, norms: list[jax.Array], batch_size: int) -> dict:
    """A step's metrics in one dispatch (the same sums as one eager op per stage)."""
    return {"loss": loss, "accuracy": correct / batch_size, "grad_norm": jnp.sqrt(sum(norms))}


def stage_train_fn(fns: list[StageFns], key: jax.Array, inputs: StepInputs) -> Callable:
    """One training step: ~2 executables per stage and one for the metrics; no host transfers,
    no host syncs (metrics stay on the device until the loop fetches them)."""
    chain, tail = fns[:-1], fns[-1]
    forwards = [f.forward for f in chain]
    backwards = [f.backward for f in chain]
    tail_train = tail.train
    t = len(chain)

    def train(state: LayerwiseState, batch: Batch, _key: jax.Array) -> tuple[LayerwiseState, dict]:
        lr, decay = inputs.lr[state.step], inputs.decay[state.step]
        params, stats, opt = list(state.params), list(state.stats), list(state.opt)
        ema = state.ema
        emas = [None] * (t + 1) if ema is None else list(ema)
        x, vjps = batch.images, [None] * t
        for i in range(t):
            x, stats[i], vjps[i] = forwards[i](params[i], stats[i], x)
        dx, loss, correct, params[t], stats[t], opt[t], emas[t], sumsq = tail_train(
            params[t], stats[t], opt[t], emas[t], x, batch.labels, batch.mask, key, inputs.step[state.step], lr,
            decay)
        norms = [sumsq]
        for i in reversed(range(t)):
            dx, params[i], opt[i], emas[i], sq = backwards[i](vjps[i], dx, params[i], opt[i], emas[i], lr, decay)
            vjps[i] = None  # free the residuals as soon as they are used
            norms.append(sq)
        metrics = step_metrics(loss, correct, norms, batch.labels.shape[0])
        return state._replace(step=state.step + 1, params=params, stats=stats, opt=opt,
                              ema=None if ema is None else emas), metrics

    return train


def stage_evaluate(fns: list[StageFns], params: list, stats: list, batch: Batch) -> dict:
    """Evaluation sums of one batch through the stage programs (padded stage variables)."""
    x = batch.images
    for i, f in enumerate(fns[:-1]):
        x = f.evaluate(params[i], stats[i], x)
    return fns[-1].evaluate(params[-1], stats[-1], x, batch.labels, batch.mask)


def stage_batch_stats(fns: list[StageFns], params: list, zeros: list, images: jax.Array) -> list:
    """Each stage's BN batch statistics on ``images`` (training-mode forward from ``zeros``, BN
    averages of zero), one tree per stage."""
    x, out = images, []
    for i, f in enumerate(fns[:-1]):
        x, new, _ = f.forward(params[i], zeros[i], x)
        out.append(batch_statistics(new))
    out.append(fns[-1].batch_stats(params[-1], zeros[-1], x))
    return out


def _evaluate_fn(stages: tuple[Stage, ...], fns: list[StageFns], padders: tuple | None = None) -> Callable:
    def evaluate(variables: dict[str, Any], batch: Batch) -> dict:
        params, stats = _split(stages, variables, padders)
        return stage_evaluate(fns, params, stats, batch)

    return evaluate


def _batch_stats_fn(stages: tuple[Stage, ...], fns: list[StageFns], padders: tuple | None = None) -> Callable:
    """Each BN layer's statistics on one batch (training-mode forward from zero averages)."""

    def batch_stats(variables: dict[str, Any], batch: Batch) -> Any:
        params, stats = _split(stages, variables, padders)
        out = stage_batch_stats(fns, params, jax.tree.map(jnp.zeros_like, stats), batch.images)
        if padders is not None:
            out = [t if p is None else p.unpad("batch_stats", t) for p, t in zip(padders, out)]
        return merge_stage_trees(list(zip(stages, out)))

    return batch_stats


def compile_layerwise(spec: ArchSpec, impl: DepthwiseImpl, config: TrainConfig, variables: dict[str, Any],
                      placement: Placement, key: jax.Array, steps_per_epoch: int, total_steps: int,
                      cache: StageCache) -> Compiled:
    """The ``Compiled`` bundle of a child trained stage by stage, compiling only unseen stages."""
    start = time.perf_counter()
    stages = net_stages(spec, impl, pad=config.pad_channels)
    padders = tuple(stage_padder(s, variables) for s in stages) if any(s.padding for s in stages) else None
    parts = optimizer_parts(config)
    fns, _ = cache.prepare(stages, static_hyper(config), parts, spec.num_classes, placement.data,
                           placement.replicated)
    schedule = learning_rate_schedule(config, steps_per_epoch, total_steps)
    steps = jnp.arange(total_steps + 1)
    lrs = np.asarray(jax.vmap(schedule)(steps), np.float32)
    decays = np.asarray(ema_decay_at(config.ema_decay or 0.0, steps), np.float32)
    rep = placement.replicated

    def make_state(initial: dict[str, Any]) -> LayerwiseState:
        params, stats = _split(stages, initial, padders)
        params = jax.device_put(params, rep)
        stats = jax.device_put(stats, rep)
        opt = jax.device_put([(parts.before.init(p), parts.after.init(p)) for p in params], rep)
        ema = jax.tree.map(jnp.copy, params) if config.ema_decay is not None else None
        return LayerwiseState(0, params, stats, opt, ema, jax.tree.map(jnp.copy, stats), stages, padders)

    batch_stats = _batch_stats_fn(stages, fns, padders) if config.bn_recalibration_examples else None
    train = stage_train_fn(fns, key, step_inputs(lrs, decays, rep))
    return Compiled(make_state, train, _evaluate_fn(stages, fns, padders), batch_stats, time.perf_counter() - start)
