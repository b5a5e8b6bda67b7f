"""A signal during an ADB measurement ends its `adb` and `benchmark_model` processes (issue 22,
item 4), on the SIMULATED phone (tests/fakes: `adb` runs the pushed `benchmark_model` as its
child): a `mnas`-like process measuring in its main thread (SIGTERM, SIGINT), and `mnas device
serve`, which measures in a daemon thread, stopped by SIGTERM mid-measurement."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest_latency import tflite_models  # noqa: F401 (fixture)
from latency.devices.remote import RemoteDevice
from latency.protocol import MeasureProtocol
from test_fake_phone import FAKES, TOKEN, phone_env, start_server

# benchmark_model runs for a minute unless something ends it
LONG = MeasureProtocol(warmup_runs=0, min_runs=10, min_seconds=60.0, max_seconds=90.0,
                       max_retries=0)
# into the timed phase, which prints nothing until its end: a process left running there is not
# stopped by a broken pipe, only by being killed
INSIDE_S = 3.0
# Ctrl-C's SIGINT as a user's shell delivers it: a test run started in the background of a
# non-interactive shell (nohup ... &) inherits SIGINT ignored, which Python then keeps ignored
MEASURE = f"""
import signal
import sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from latency.devices import open_device
from latency.protocol import MeasureProtocol
device = open_device("adb:FAKE,adb={FAKES / 'adb'}")
device.fingerprint()
print("measuring", flush=True)
device.measure(open(sys.argv[1], "rb").read(), MeasureProtocol(**{LONG.to_dict()!r}))
"""


def _phone_processes(phone: Path) -> list[int]:
    """Pids of the processes whose command line names the phone directory (adb,
    benchmark_model)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in (entry / "status").read_text().splitlines()
                          if line.startswith("State:")), "")
        except OSError:
            continue
        if str(phone) in cmdline and "benchmark_model" in cmdline and "zombie" not in state:
            pids.append(int(entry.name))
    return pids


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def phone(tmp_path) -> Path:
    root = tmp_path / "phone"
    root.mkdir()
    return root


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_measurement_ends_adb_and_benchmark_model(tmp_path, phone, tflite_models,
                                                                signum):
    model = tmp_path / "model.tflite"
    model.write_bytes(tflite_models["small"])
    proc = subprocess.Popen([sys.executable, "-c", MEASURE, str(model)], env=phone_env(phone),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "measuring"
        _wait_for(lambda: _phone_processes(phone), 60, "benchmark_model to start")
        time.sleep(INSIDE_S)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) != 0  # generous: the machine may be busy (CI beside a training job)
        _wait_for(lambda: not _phone_processes(phone), 5,
                  f"adb/benchmark_model to end after {signum.name}")
    finally:
        proc.kill()
        proc.wait()
        for pid in _phone_processes(phone):  # a failed test leaves nothing running either
            os.kill(pid, signal.SIGKILL)


def test_sigterm_to_the_device_server_mid_measurement_ends_them(tmp_path, phone, tflite_models):
    proc, url = start_server(tmp_path, phone, f"adb:FAKE,adb={FAKES / 'adb'}")
    errors: list[BaseException] = []

    def measure() -> None:
        try:
            RemoteDevice(url, TOKEN).measure(tflite_models["small"], LONG)
        except BaseException as err:  # noqa: BLE001 - the server goes away mid-request
            errors.append(err)

    client = threading.Thread(target=measure, daemon=True)
    client.start()
    try:
        _wait_for(lambda: _phone_processes(phone), 60, "benchmark_model to start")
        time.sleep(INSIDE_S)
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        _wait_for(lambda: not _phone_processes(phone), 5, "adb/benchmark_model to end")
    finally:
        proc.kill()
        proc.wait()
        for pid in _phone_processes(phone):
            os.kill(pid, signal.SIGKILL)
    client.join(timeout=30)
    assert errors  # the request was cut off, not answered
