"""Joining a multi-process JAX job at the start of the `mnas` command, before any JAX call.

jax refuses `jax.distributed.initialize` once its backend has started, so the CLI joins first.
The check here is cheap (environment variables, and Google's PCI vendor id for a Cloud TPU VM)
so that commands that never train do not pay for importing JAX; `join_job` decides.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

GOOGLE_PCI_VENDOR = "0x1ae0"  # TPU chips on a Cloud TPU VM
ASKING_VARIABLES = ("MNAS_COORDINATOR_ADDRESS", "MNAS_DISTRIBUTED")


def _google_pci_device() -> bool:
    for vendor in glob.glob("/sys/bus/pci/devices/*/vendor"):
        try:
            if Path(vendor).read_text().strip() == GOOGLE_PCI_VENDOR:
                return True
        except OSError:
            continue
    return False


def maybe_join_job() -> bool:
    """Join the job the environment describes, if any (see `mnas_jax.train.sharding.join_job`)."""
    if not (any(k in os.environ for k in ASKING_VARIABLES) or _google_pci_device()):
        return False
    from mnas_jax.train.sharding import join_job

    return join_job()


def is_primary() -> bool:
    """True in a single-process run and in process 0 of a job: the one that writes and prints."""
    import jax

    return jax.process_index() == 0
