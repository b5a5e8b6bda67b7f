"""Executors train children for ACC(m): in-process (default) or on a Ray cluster.

Both honour one contract (`Evaluator`): results in input order, `on_result` called as each
arrives, a child that fails returns status 'failed' with the reason instead of raising.
`train_fn(spec_string, seed) -> ChildResult` must be a plain top-level function so Ray can ship
it to workers. Ray children request `resources` (e.g. {"GPU": 1} or {"TPU": 4}); Ray then shows
each child only the accelerators it was given (CUDA_VISIBLE_DEVICES, TPU_VISIBLE_CHIPS), and a
child holding accelerators gets a fresh worker process, since JAX picks its devices once per
process. Training never shares a core with a local CPU latency device: `train_cores` pins the
training process (local) or each Ray worker on the driver's machine to the cores the measuring
device leaves free; workers on other machines are not pinned.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable, Mapping, Sequence

from mnas_jax.search.types import ChildResult
from mnas_jax.space import ArchSpec

log = logging.getLogger(__name__)

TrainFn = Callable[[str, int], ChildResult]


def _guarded(train_fn: TrainFn, spec: ArchSpec, seed: int) -> ChildResult:
    started = time.time()
    try:
        return train_fn(spec.to_string(), seed)
    except Exception as e:  # a broken child is data, not the end of the search
        log.exception("child %s failed", spec.arch_id)
        return ChildResult(spec.arch_id, "failed", None, f"{type(e).__name__}: {e}",
                           time.time() - started)


class LocalExecutor:
    """Trains children one after another in this process."""

    def __init__(self, train_fn: TrainFn, train_cores: set[int] | None = None) -> None:
        self.train_fn, self.train_cores = train_fn, train_cores

    def evaluate(self, specs: Sequence[ArchSpec], seeds: Sequence[int],
                 on_result: Callable[[int, ChildResult], None] | None = None) -> list[ChildResult]:
        """Train the children one by one in this process; `on_result(i, result)` after each."""
        out = []
        saved = os.sched_getaffinity(0) if self.train_cores else None
        try:
            if self.train_cores:
                os.sched_setaffinity(0, self.train_cores)
            for i, (spec, seed) in enumerate(zip(specs, seeds)):
                out.append(_guarded(self.train_fn, spec, seed))
                if on_result is not None:
                    on_result(i, out[-1])
        finally:
            if saved is not None:
                os.sched_setaffinity(0, saved)
        return out


def _ray_child(train_fn: TrainFn, spec_string: str, seed: int, cores: list[int] | None,
               driver_node: str | None, resources: dict[str, float] | None = None) -> ChildResult:
    import ray

    from mnas_jax.train.runtime import platform_mismatch, prepare_process

    context = ray.get_runtime_context()
    given = {"resources": context.get_assigned_resources(),
             "accelerator_ids": {k: v for k, v in context.get_accelerator_ids().items() if v},
             "node_id": context.get_node_id()}
    platform = None
    if resources is not None:  # the check starts JAX's backend; unchecked children start their own
        prepare_process()  # XLA flags and the shared compilation cache before JAX starts its backend
        import jax

        platform = jax.default_backend()
        wrong = platform_mismatch(resources, platform)
        if wrong is not None:  # never train on the CPU when an accelerator was asked for
            return ChildResult(ArchSpec.from_string(spec_string).arch_id, "failed", None, wrong, 0.0,
                               {**given, "platform": platform})
    saved = None
    if cores and context.get_node_id() == driver_node:  # beside the local latency device
        saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, set(cores))
    try:
        result = _guarded(train_fn, ArchSpec.from_string(spec_string), seed)
    finally:
        if saved is not None:  # the worker process may serve other tasks next
            os.sched_setaffinity(0, saved)
    extra = {**result.extra, **given, **({"platform": platform} if platform else {})}
    return dataclasses.replace(result, extra=extra)


def remote_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray task options for a child requesting ``resources`` ({"CPU": 1}, {"GPU": 1}, {"TPU": 4}...)."""
    for name, amount in resources.items():
        if not isinstance(name, str) or not name or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"child resource {name!r}: {amount!r}; use a name and an amount >= 0, "
                             "e.g. {'GPU': 1}")
    custom = {k: float(v) for k, v in resources.items() if k not in ("CPU", "GPU")}
    options: dict[str, Any] = {"num_cpus": float(resources.get("CPU", 0)), "max_retries": 0}
    if "GPU" in resources:
        options["num_gpus"] = float(resources["GPU"])
    if custom:
        options["resources"] = custom
    if options.get("num_gpus") or custom:
        options["max_calls"] = 1  # a fresh process per child: JAX picks its devices once
    return options


class RayExecutor:
    """Trains children in parallel on a Ray cluster (`address=None` starts a local one, with
    ``num_cpus``/``num_gpus`` as its declared resources). Each child checks that JAX runs on the
    platform its resources asked for ({"GPU": 1}: a GPU) and fails in one line otherwise."""

    def __init__(self, train_fn: TrainFn, address: str | None = None, num_cpus: int | None = None,
                 resources: Mapping[str, float] | None = None,
                 train_cores: set[int] | None = None, num_gpus: int | None = None,
                 check_platform: bool = True) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("the Ray executor needs Ray: pip install 'mnas-jax[ray]'") from None
        self._ray = ray
        self.resources = dict({"CPU": 1.0} if resources is None else resources)
        # False only where accelerators are SIMULATED (a Ray cluster told it has GPUs it lacks)
        self.check_platform = check_platform
        options = remote_options(self.resources)
        if not ray.is_initialized():
            from mnas_jax.train.compile_cache import ENV

            # workers share the driver's compilation cache directory (a path on their host)
            env = {ENV: os.environ[ENV]} if os.environ.get(ENV) else {}
            ray.init(address=address, num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True, runtime_env={"env_vars": env} if env else None)
        self._remote = ray.remote(**options)(_ray_child)
        self.train_fn = train_fn
        self.cores = sorted(train_cores) if train_cores else None
        self.driver_node = ray.get_runtime_context().get_node_id()

    def evaluate(self, specs: Sequence[ArchSpec], seeds: Sequence[int],
                 on_result: Callable[[int, ChildResult], None] | None = None) -> list[ChildResult]:
        """Train the children as Ray tasks; results in input order, a dead worker's child failed."""
        ray = self._ray
        refs = [self._remote.remote(self.train_fn, s.to_string(), seed, self.cores, self.driver_node,
                                     self.resources if self.check_platform else None)
                for s, seed in zip(specs, seeds)]
        index = {r: i for i, r in enumerate(refs)}
        out: list[ChildResult | None] = [None] * len(refs)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                i = index[r]
                try:
                    out[i] = ray.get(r)
                except Exception as e:  # worker died: the child failed, the search goes on
                    out[i] = ChildResult(specs[i].arch_id, "failed", None,
                                         f"ray worker error: {type(e).__name__}: {e}")
                if on_result is not None:
                    on_result(i, out[i])
        return [r for r in out if r is not None]

    def shutdown(self) -> None:
        """Disconnect from the Ray cluster."""
        self._ray.shutdown()
