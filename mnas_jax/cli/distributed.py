"""Joining a multi-process JAX job at the start of the `mnas` command, before any JAX call.

jax refuses `jax.distributed.initialize` once its backend has started, so the CLI joins first.
The check here is cheap (environment variables, and Google's PCI vendor id for a Cloud TPU VM)
so that commands that never train do not pay for importing JAX; `join_job` decides.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from collections.abc import Iterator
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


def wait_for_all(name: str, timeout_s: float = 900.0) -> None:
    """Wait until every process of the job reaches ``name`` (no-op in a single process).

    Processes drift apart while they import and load data, and the first collective gives up
    after 30 s on CPU (gloo); this barrier of jax's coordination service waits as long as it
    takes (up to ``timeout_s``).
    """
    import jax
    from jax._src import distributed  # the coordination client; no public barrier takes a timeout

    client = distributed.global_state.client
    if client is not None and jax.process_count() > 1:
        client.wait_at_barrier(f"mnas:{name}", int(timeout_s * 1000))


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to file descriptor 1 to stderr for a while.

    Native libraries print to stdout on their own (gloo announces its peers when the first
    collective runs); stdout must carry the command's result (--json) and nothing else.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
