"""Host -> device prefetching so the accelerator (or XLA:CPU's threads) never waits for data.

A background thread prepares the next ``size`` batches (augmentation, normalisation) and starts
their transfer to the devices while the current step runs. With data parallelism each process
puts its local rows into one global array sharded along the batch axis.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import jax
import numpy as np

from mnas_jax.data.source import Batch

T = TypeVar("T")
_DONE = object()


def put_sharded(batch: Batch, sharding: jax.sharding.Sharding) -> Batch:
    """Assemble each process's local rows into global arrays sharded along the batch axis."""
    return Batch(*(jax.make_array_from_process_local_data(sharding, np.asarray(a)) for a in batch))


def prefetch(items: Iterator[T], transform: Callable[[T], T], size: int = 2) -> Iterator[T]:
    """Yield ``transform(item)`` for each item, computed ``size`` items ahead in a thread.

    Exceptions from the producer are re-raised in the consumer; closing the generator early
    (``break`` in the training loop) stops the producer thread.
    """
    if size <= 0:
        yield from (transform(item) for item in items)
        return
    buffer: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                out = transform(item)
                while not stop.is_set():
                    try:
                        buffer.put(out, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, not swallowed
            buffer.put(err)

    thread = threading.Thread(target=produce, name="mnas-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            out = buffer.get()
            if out is _DONE:
                return
            if isinstance(out, BaseException):
                raise out
            yield out
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)
