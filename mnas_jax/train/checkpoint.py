"""Orbax checkpoints of full trainings (proxy children are short and never checkpoint).

One process: orbax saves and restores the (replicated) train state directly. A job of several
processes (data parallel, so the state is replicated on every device of every process): process 0
alone saves a host copy of it, into its own work directory, and on resume process 0 restores it
and broadcasts it to the others, so the hosts need no shared filesystem and process 1..N write
nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from mnas_jax.train.state import TrainState

log = logging.getLogger(__name__)


def _as_tree(state: TrainState) -> dict[str, Any]:
    """A dict without None leaves (orbax stores arrays, not Nones)."""
    return {k: v for k, v in state._asdict().items() if v is not None}


def _host_copy(tree: dict[str, Any]) -> dict[str, Any]:
    """This process's copy of a replicated tree, as numpy arrays."""
    def one(x: jax.Array) -> np.ndarray:
        if not x.sharding.is_fully_replicated:
            raise ValueError(f"a checkpoint of several processes needs a replicated state; got {x.sharding}")
        return np.asarray(x.addressable_data(0))
    return jax.tree.map(one, tree)


class Checkpointer:
    """Save every ``every_steps`` steps, keep the last ``keep``; restore the latest."""

    def __init__(self, directory: str | Path, every_steps: int, keep: int = 2) -> None:
        self.every_steps = max(1, every_steps)
        self.many = jax.process_count() > 1
        self.manager: ocp.CheckpointManager | None = None
        if jax.process_index() != 0:
            return  # process 0 alone keeps the checkpoints
        path = Path(directory).absolute()
        extra: dict[str, Any] = {}
        if self.many:  # a manager of process 0 alone; it cannot create its root itself
            path.mkdir(parents=True, exist_ok=True)
            extra["multiprocessing_options"] = ocp.options.MultiprocessingOptions(
                primary_host=0, active_processes={0})
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not self.many,
                                               enable_async_checkpointing=False, **extra)
        self.manager = ocp.CheckpointManager(path, options=options)

    def latest_step(self) -> int | None:
        """The step of the latest checkpoint (process 0's, told to every process), or None."""
        step = self.manager.latest_step() if self.manager is not None else None
        if self.many:
            step = int(multihost_utils.broadcast_one_to_all(np.int64(-1 if step is None else step)))
            step = None if step < 0 else step
        return step

    def restore(self, like: TrainState) -> TrainState:
        """Restore the latest checkpoint into arrays shaped and sharded like ``like``."""
        tree = _as_tree(like)
        if not self.many:
            step = self.manager.latest_step()
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
            restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
            log.info("restored checkpoint at step %d from %s", step, self.manager.directory)
            return like._replace(**restored)
        host = _host_copy(tree)
        if self.manager is not None:
            step = self.manager.latest_step()
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, host)
            host = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
            log.info("restored checkpoint at step %d from %s", step, self.manager.directory)
        host = multihost_utils.broadcast_one_to_all(host)  # process 0's values to every process
        placed = jax.tree.map(lambda h, x: jax.device_put(np.asarray(h), x.sharding), host, tree)
        return like._replace(**placed)

    def maybe_save(self, step: int, state: TrainState, *, force: bool = False) -> bool:
        """Save at every ``every_steps``-th step (or when forced); True where this process saved."""
        if not force and step % self.every_steps:
            return False
        tree = _host_copy(_as_tree(state)) if self.many else _as_tree(state)
        if self.manager is None or self.manager.latest_step() == step:
            return False
        saved = self.manager.save(step, args=ocp.args.StandardSave(tree), force=True)
        self.manager.wait_until_finished()
        return saved

    def close(self) -> None:
        """Release orbax's resources."""
        if self.manager is not None:
            self.manager.close()
