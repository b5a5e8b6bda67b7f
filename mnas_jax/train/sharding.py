"""Data parallelism over every device of every process with jax.sharding.

One mesh axis, ``data``: batches are sharded along it, the train state is replicated. Inside the
jitted step XLA's SPMD partitioner adds the gradient all-reduce and, since BatchNorm reduces over
the (global) batch axis, synchronised batch statistics: 1 device and N devices compute the same
step up to float summation order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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
ENV_DISTRIBUTED = "MNAS_DISTRIBUTED"


class Placement(NamedTuple):
    """The mesh and the two shardings training uses."""

    mesh: Mesh
    data: NamedSharding  # batch axis split over devices
    replicated: NamedSharding

    @property
    def num_devices(self) -> int:
        """Number of devices in the mesh."""
        return self.mesh.size

    @property
    def platform(self) -> str:
        """The platform of the mesh's devices: 'cpu', 'gpu' or 'tpu'."""
        return self.mesh.devices.flat[0].platform

    @property
    def shard(self) -> Shard:
        """Which rows of each global batch this process loads."""
        return Shard(jax.process_index(), jax.process_count())


def distributed_from_env(environ: Mapping[str, str] | None = None) -> DistributedConfig | None:
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


def on_cloud_tpu() -> bool:
    """True on a Cloud TPU VM (TPU chips on the PCI bus); reads /sys only, starts no backend."""
    try:
        from jax._src.hardware_utils import num_available_tpu_chips_and_device_id
    except ImportError:  # moved in a later jax: fall back to asking for MNAS_DISTRIBUTED=auto
        return False
    return num_available_tpu_chips_and_device_id()[0] > 0


def join_job(environ: Mapping[str, str] | None = None) -> bool:
    """Join a multi-process JAX job as the environment says; call it before any JAX computation.

    Explicit: MNAS_COORDINATOR_ADDRESS / MNAS_NUM_PROCESSES / MNAS_PROCESS_ID. Otherwise jax's
    own cluster detection (Cloud TPU pods, GKE, SLURM, Open MPI) runs on a Cloud TPU VM or when
    MNAS_DISTRIBUTED=auto; MNAS_DISTRIBUTED=off never joins. Returns True if it joined a job.
    """
    env = os.environ if environ is None else environ
    mode = env.get(ENV_DISTRIBUTED, "")
    if mode not in ("", "auto", "off"):
        raise ValueError(f"{ENV_DISTRIBUTED}={mode!r}; use 'auto', 'off' or leave it unset")
    if mode == "off" or jax.distributed.is_initialized():
        return False
    config = distributed_from_env(env)
    if config is not None:
        log.info("joining %d-process job at %s as %d", config.num_processes, config.coordinator_address,
                 config.process_id)
        jax.distributed.initialize(config.coordinator_address, config.num_processes, config.process_id)
    elif mode == "auto" or on_cloud_tpu():
        log.info("joining the job jax detects (%s)", "MNAS_DISTRIBUTED=auto" if mode else "Cloud TPU")
        jax.distributed.initialize()
    else:
        return False
    return True  # jax writes its persistent compilation cache from process 0 only


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
