"""This machine's CPU through the LiteRT interpreter (`ai-edge-litert`).

Times `Interpreter.invoke()` with perf_counter_ns on random inputs. Pinning puts the measuring
thread (and any interpreter threads it starts) on one core: timings are useless when another
job shares the core, and fine when each has its own.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np

from latency.devices.base import InvalidModelError, check_tflite_bytes
from latency.measurement import Fingerprint, Measurement
from latency.protocol import (MeasureProtocol, RunStats, measure_with_retries, summarize,
                              time_runs, to_measurement)


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """CPU model from /proc/cpuinfo (x86 'model name', ARM 'Hardware'), else platform's guess."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


@contextlib.contextmanager
def pinned_to_core(core: int | None) -> Iterator[None]:
    """Pin the calling thread to `core` (Linux affinity is per thread) and restore it after."""
    if core is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def random_inputs(details: list[dict], rng: np.random.Generator) -> list[np.ndarray]:
    """One random array per input, of the interpreter's dtype and shape (non-zero values)."""
    arrays = []
    for d in details:
        shape, dtype = tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            low, high = max(int(info.min), -128), min(int(info.max), 127)
            arrays.append(rng.integers(low, high, size=shape, endpoint=True).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:
            raise InvalidModelError(f"model input {d.get('name')!r} has unsupported dtype {dtype}")
    return arrays


class LocalDevice:
    """LiteRT on this machine: `threads` interpreter threads, XNNPACK on or off, optional core."""

    def __init__(self, threads: int = 1, xnnpack: bool = True, core: int | None = None) -> None:
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r}: use a positive integer")
        if core is not None:
            if not hasattr(os, "sched_setaffinity"):
                raise ValueError(f"core={core}: CPU pinning needs Linux (os.sched_setaffinity)")
            allowed = sorted(os.sched_getaffinity(0))
            if core not in allowed:
                raise ValueError(f"core={core} is not available to this process; "
                                 f"use one of {allowed}")
        self.threads, self.xnnpack, self.core = threads, xnnpack, core
        self._lock = threading.Lock()
        self._fingerprint: Fingerprint | None = None

    def fingerprint(self) -> Fingerprint:
        """This host's fingerprint (CPU, LiteRT version, threads, delegate, core), built once."""
        if self._fingerprint is None:
            extra = {"host": socket.gethostname()}
            if self.core is not None:
                extra["core"] = str(self.core)
            self._fingerprint = Fingerprint(
                kind="local", cpu_model=cpu_model_name(), runtime="litert",
                runtime_version=metadata.version("ai-edge-litert"), threads=self.threads,
                delegate="xnnpack" if self.xnnpack else "none", extra=tuple(extra.items()))
        return self._fingerprint

    def _interpreter(self, model_bytes: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = (OpResolverType.AUTO if self.xnnpack
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        try:
            interp = Interpreter(model_content=bytes(model_bytes), num_threads=self.threads,
                                 experimental_op_resolver_type=resolver)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise InvalidModelError(f"LiteRT cannot load the model: {e}") from None
        return interp

    def measure(self, model_bytes: bytes, protocol: MeasureProtocol,
                timeout_s: float | None = None) -> Measurement:
        """Time the model; InvalidModelError for bytes LiteRT cannot load."""
        check_tflite_bytes(model_bytes)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock, pinned_to_core(self.core):
            interp = self._interpreter(model_bytes)
            details = interp.get_input_details()
            inputs = random_inputs(details, np.random.default_rng(protocol.seed))
            for d, array in zip(details, inputs):
                interp.set_tensor(d["index"], array)

            def attempt() -> RunStats:
                return summarize(time_runs(interp.invoke, protocol, deadline))

            stats, retries = measure_with_retries(attempt, protocol)
        return to_measurement(stats, self.fingerprint(), protocol.warmup_runs, retries)
