"""Convert ahead in a separate process while the device measures.

Conversion is CPU heavy and the local device measures on one core: a converter process pinned to
the other core(s) keeps the device busy and never shares its core (timings stay clean).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mnas_jax.space import ArchSpec, LayerSpec

_EXPORTER: Any = None  # one per converter process, created by _init


def _exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    """End this worker as soon as the process that started it is gone (a SIGKILLed search must
    not leave a converter holding gigabytes, nor, through it, multiprocessing's resource
    tracker). Polling the parent id works whichever thread started the worker."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="mnas-parent-watch", daemon=True).start()


def _init(cache_dir: str | None, cores: list[int] | None, parent: int) -> None:
    global _EXPORTER
    _exit_with_parent(parent)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if cores:
        os.sched_setaffinity(0, set(cores))
    if not os.environ.get("MNAS_CONVERTER_LOGS"):
        # TensorFlow's C++ converter writes warnings straight to fd 2; failures still come
        # back as exceptions through the future.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
    from latency.export import Exporter

    _EXPORTER = Exporter(cache_dir)


def _convert(kind: str, payload: dict[str, Any]) -> bytes:
    if kind == "layer":
        return _EXPORTER.export_layer(LayerSpec.from_dict(payload))
    return _EXPORTER.export(ArchSpec.from_dict(payload))


class PrefetchExporter:
    """`layers(seq)` / `archs(seq)` yield .tflite bytes in order, converting `ahead` items early."""

    def __init__(self, cache_dir: str | Path | None = None, cores: set[int] | None = None,
                 ahead: int = 6) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pool = cf.ProcessPoolExecutor(
            max_workers=1, mp_context=ctx, initializer=_init,
            initargs=(str(cache_dir) if cache_dir else None, sorted(cores) if cores else None, os.getpid()))
        self.ahead = ahead

    def _run(self, kind: str, payloads: Sequence[dict[str, Any]]) -> Iterator[bytes]:
        queue: deque[cf.Future[bytes]] = deque()
        items = iter(payloads)
        for p in items:
            queue.append(self._pool.submit(_convert, kind, p))
            if len(queue) >= self.ahead:
                break
        while queue:
            data = queue.popleft().result()
            nxt = next(items, None)
            if nxt is not None:
                queue.append(self._pool.submit(_convert, kind, nxt))
            yield data

    def layers(self, layers: Sequence[LayerSpec]) -> Iterator[bytes]:
        """The .tflite bytes of each layer in order, converted ahead in worker processes."""
        return self._run("layer", [x.to_dict() for x in layers])

    def archs(self, specs: Sequence[ArchSpec]) -> Iterator[bytes]:
        """The .tflite bytes of each architecture in order, converted ahead in worker processes."""
        return self._run("arch", [s.to_dict() for s in specs])

    def close(self) -> None:
        """Stop the worker pool without waiting, dropping conversions not yet started."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> PrefetchExporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_cores(measure_core: int | None) -> tuple[int | None, set[int] | None]:
    """(core for the measuring device, cores for converting/training) on this machine."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    m = cores[-1] if measure_core is None else measure_core
    return m, {c for c in cores if c != m}
