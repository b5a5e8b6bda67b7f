"""Commands a device runs (`adb`, and through it `benchmark_model`) end with the measurement
that started them: a timeout, an exception, SIGINT, SIGTERM or the process exiting.

Each command starts in a process group of its own, so ending it ends what it started too (the
simulated phone's `adb` runs `benchmark_model` as its child; a real `adb` client's exit closes
its shell on the phone). Ended: on a timeout or any exception in the waiting thread (SIGINT's
KeyboardInterrupt included); on SIGTERM while the main thread waits (the default SIGTERM, which
would kill this process and leave the group running, is turned into SystemExit for the wait);
and at interpreter exit, for commands still running in other threads (the device server
measures in a daemon thread that exit does not wait for). SIGKILL of this process cannot be
caught: its commands run on until they finish.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from latency.protocol import MeasurementTimeout

_RUNNING: set[subprocess.Popen] = set()  # the process's own running commands (ended at exit)
_LOCK = threading.Lock()


def run_command(argv: Sequence[str], timeout_s: float | None) -> tuple[int, str]:
    """(exit status, stdout+stderr) of `argv`, run in its own process group, which is killed on
    a timeout (MeasurementTimeout), an exception or a signal (module doc)."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    with _LOCK:
        _RUNNING.add(proc)
    try:
        with _sigterm_exits():
            out, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise MeasurementTimeout(f"{shlex.join(argv)} did not finish in {timeout_s} s") from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        with _LOCK:
            _RUNNING.discard(proc)


def end_running_commands() -> int:
    """Kill the process group of every command still running; how many there were."""
    with _LOCK:
        running = list(_RUNNING)
    for proc in running:
        _kill_group(proc)
    return len(running)


atexit.register(end_running_commands)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group's id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """In the main thread under the default SIGTERM: SIGTERM raises SystemExit(143) instead of
    killing the process, so that the waiting command is ended first."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def exit_143(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_143)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
