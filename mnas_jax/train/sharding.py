"""Data parallelism over every device of every process with jax.sharding.

One mesh axis, ``data``: batches are sharded along it, the train state is replicated. Inside the
jitted step XLA's SPMD partitioner adds the gradient all-reduce and, since BatchNorm reduces over
the (global) batch axis, synchronised batch statistics: 1 device and N devices compute the same
step up to float summation order.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mnas_jax.data.source import Shard
from mnas_jax.train.config import DistributedConfig

log = logging.getLogger(__name__)

ENV_COORDINATOR = "MNAS_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "MNAS_NUM_PROCESSES"
ENV_PROCESS_ID = "MNAS_PROCESS_ID"


class Placement(NamedTuple):
    """The mesh and the two shardings training uses."""

    mesh: Mesh
    data: NamedSharding  # batch axis split over devices
    replicated: NamedSharding

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    @property
    def shard(self) -> Shard:
        """Which rows of each global batch this process loads."""
        return Shard(jax.process_index(), jax.process_count())


def distributed_from_env(environ: dict[str, str] | None = None) -> DistributedConfig | None:
    """A DistributedConfig from MNAS_COORDINATOR_ADDRESS / _NUM_PROCESSES / _PROCESS_ID, if set."""
    env = os.environ if environ is None else environ
    if ENV_COORDINATOR not in env:
        return None
    try:
        return DistributedConfig(env[ENV_COORDINATOR], int(env[ENV_NUM_PROCESSES]), int(env[ENV_PROCESS_ID]))
    except (KeyError, ValueError) as err:
        raise ValueError(
            f"{ENV_COORDINATOR} is set, so {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} must be integers ({err})"
        ) from None


def maybe_initialize_distributed(config: DistributedConfig | None) -> bool:
    """Join a multi-host job (config, else environment) before any computation; idempotent."""
    config = config or distributed_from_env()
    if config is None or jax.distributed.is_initialized():
        return False
    log.info("joining %d-process job at %s as %d", config.num_processes, config.coordinator_address, config.process_id)
    jax.distributed.initialize(config.coordinator_address, config.num_processes, config.process_id)
    return True


def make_placement(devices: list[jax.Device] | None = None) -> Placement:
    """A 1-D ``data`` mesh over the given devices (default: all devices of all processes)."""
    devices = list(devices) if devices is not None else jax.devices()
    mesh = Mesh(np.asarray(devices), ("data",))
    return Placement(mesh, NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec()))


def check_batch_size(batch_size: int, placement: Placement) -> None:
    """The global batch must split evenly over devices (and so over processes)."""
    if batch_size % placement.num_devices:
        raise ValueError(
            f"batch size {batch_size} is not divisible by the {placement.num_devices} devices; "
            "use a multiple of the device count"
        )
