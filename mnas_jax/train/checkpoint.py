"""Orbax checkpoints of full trainings (proxy children are short and never checkpoint)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from mnas_jax.train.state import TrainState

log = logging.getLogger(__name__)


def _as_tree(state: TrainState) -> dict[str, Any]:
    """A dict without None leaves (orbax stores arrays, not Nones)."""
    return {k: v for k, v in state._asdict().items() if v is not None}


class Checkpointer:
    """Save every ``every_steps`` steps, keep the last ``keep``; restore the latest."""

    def __init__(self, directory: str | Path, every_steps: int, keep: int = 2) -> None:
        self.every_steps = max(1, every_steps)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, like: TrainState) -> TrainState:
        """Restore the latest checkpoint into arrays shaped and sharded like ``like``."""
        step = self.manager.latest_step()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_tree(like))
        tree = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        log.info("restored checkpoint at step %d from %s", step, self.manager.directory)
        return like._replace(**tree)

    def maybe_save(self, step: int, state: TrainState, *, force: bool = False) -> bool:
        if not force and step % self.every_steps:
            return False
        if self.manager.latest_step() == step:
            return False
        saved = self.manager.save(step, args=ocp.args.StandardSave(_as_tree(state)), force=True)
        self.manager.wait_until_finished()
        return saved

    def close(self) -> None:
        self.manager.close()
