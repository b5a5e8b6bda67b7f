"""An Android phone over ADB, SIMULATED: no phone can exist here, so `tests/fakes/adb` serves
a temporary directory as the phone (push, shell, rm, getprop) and `tests/fakes/benchmark_model`
runs the pushed .tflite through the real LiteRT interpreter on this machine and prints
benchmark_model's output in each format the parser accepts (op profiles included, their per-op
split simulated). Everything else is real: the ADB device class with its real subprocess
runner, `mnas device serve` over HTTP on 127.0.0.1, exports, the SQLite store.

The whole chain through the server (serve -> build-lut -> predictor fit -> validate -> profile)
runs in the default suite: 260 s beside the other tests under `pytest -n 2` on 2 cores, which
is why this module is collected first (tests/conftest.py); the other tests here measure through
the server, every output format, unplugging and op profiles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_latency import tflite_models  # noqa: F401 (fixture)

from latency.devices import open_device
from latency.devices.adb import AdbDevice, subprocess_runner
from latency.devices.base import DeviceError, DeviceUnreachable
from latency.devices.remote import RemoteDevice
from latency.lut import LatencyTable
from latency.protocol import MeasureProtocol

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"
TOKEN = "fake-phone-token-0123456789abcdef"
QUICK = MeasureProtocol(warmup_runs=0, min_runs=10, min_seconds=0.0, max_seconds=10.0,
                        max_retries=0)
SLICE = "mnasnet@op=2,kernel=0,se=0,skip=1,filters=1"


def phone_env(phone: Path, **extra: str) -> dict[str, str]:
    """The environment the simulated phone runs in (python3 of this interpreter first on PATH,
    so the fakes' `#!/usr/bin/env python3` finds ai-edge-litert)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "MNAS_FAKE_PHONE": str(phone), "PYTHONPATH": str(ROOT),
            "MNAS_BENCHMARK_MODEL": str(FAKES / "benchmark_model"),
            "MNAS_DEVICE_TOKEN": TOKEN, **extra}


@pytest.fixture
def phone(tmp_path, monkeypatch) -> Path:
    """An empty simulated phone; this process's environment points the fakes at it."""
    root = tmp_path / "phone"
    root.mkdir()
    for name, value in phone_env(root).items():
        monkeypatch.setenv(name, value)
    return root


def fake_device(spec_options: str = "") -> AdbDevice:
    device = open_device(f"adb:FAKE,adb={FAKES / 'adb'}{spec_options}")
    assert isinstance(device, AdbDevice) and device._run is subprocess_runner
    return device


# -- the simulated phone directly ---------------------------------------------------------------
@pytest.mark.parametrize("fmt, stat, ok", [
    ("percentiles", "median", True), ("logcat", "median", True),
    ("no-percentiles", "median", False), ("no-percentiles", "min", True),
    ("legacy", "avg", True), ("legacy", "median", False),
])
def test_every_output_format(phone, monkeypatch, tflite_models, fmt, stat, ok):
    monkeypatch.setenv("MNAS_FAKE_BENCHMARK_FORMAT", fmt)
    device = fake_device(f",stat={stat}")
    fp = device.fingerprint()
    assert fp.kind == "adb" and dict(fp.extra)["statistic"] == stat
    assert dict(fp.extra)["model"].startswith("Simulated phone")
    if not ok:
        with pytest.raises(DeviceError, match="no percentiles .*stat=min"):
            device.measure(tflite_models["small"], QUICK)
        return
    m = device.measure(tflite_models["small"], QUICK)  # warm-up 0: "count=0" accepted
    assert m.warmup == 0 and m.runs >= QUICK.min_runs and 0 < m.min_ms <= m.median_ms
    if stat == "min":
        assert m.median_ms == m.min_ms
    assert (phone / "data/local/tmp/mnas/model.tflite").read_bytes() == tflite_models["small"]


def test_one_run_and_all_same_lines(phone, tflite_models):
    """One timed run prints 'count=1 curr=X' (no min/avg): parsed as that one time."""
    m = fake_device().measure(tflite_models["tiny"], MeasureProtocol(
        warmup_runs=1, min_runs=1, min_seconds=0.0, max_seconds=5.0, max_retries=0))
    assert m.runs == 1 and m.median_ms == m.min_ms > 0 and m.iqr_ms == 0.0


def test_unplugged_phone_and_unknown_serial(phone, tflite_models):
    (phone / "unplugged").touch()
    with pytest.raises(DeviceUnreachable, match="FAKE"):
        fake_device().fingerprint()
    (phone / "unplugged").unlink()
    other = open_device(f"adb:R58M123,adb={FAKES / 'adb'}")
    with pytest.raises(DeviceUnreachable, match="R58M123"):
        other.fingerprint()


# -- through the real server ---------------------------------------------------------------------
def start_server(tmp_path: Path, phone: Path, device: str) -> tuple[subprocess.Popen, str]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnas_jax.cli.main", "device", "serve", "--device", device,
         "--port", "0", "--token-file", str(token_file), "--json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=phone_env(phone))
    line = proc.stdout.readline()
    assert line.startswith("{"), line + proc.stderr.read()
    return proc, json.loads(line)["url"]


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    assert proc.wait(10) == 0


def test_measure_through_the_server_and_unplug(tmp_path, phone, tflite_models):
    proc, url = start_server(tmp_path, phone, f"adb:FAKE,adb={FAKES / 'adb'}")
    try:
        remote = RemoteDevice(url, TOKEN)
        fp = remote.fingerprint()
        assert fp.kind == "adb" and fp.cpu_model == "simulated-litert"
        m = remote.measure(tflite_models["medium"], QUICK)
        assert m.fingerprint == fp and m.runs >= QUICK.min_runs and m.median_ms > 0
        (phone / "unplugged").touch()  # the phone is pulled out: 503, the server lives on
        with pytest.raises(DeviceUnreachable, match="FAKE"):
            remote.measure(tflite_models["tiny"], QUICK)
        assert remote.health()["queue"] == 0
        (phone / "unplugged").unlink()
        assert remote.measure(tflite_models["tiny"], QUICK).median_ms > 0
    finally:
        stop_server(proc)


# -- op profiles ---------------------------------------------------------------------------------
def smallest_slice_arch() -> str:
    from mnas_jax.space import get_space, sample_tokens

    space = get_space(SLICE, "fmnist")
    specs = [space.decode(t) for t in sample_tokens(space.choices, 0, 200)]
    return min(specs, key=lambda s: len(s.layers())).to_string()


def run_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnas_jax.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_profile_per_layer_beside_the_table(tmp_path, phone):
    """`mnas latency profile`: benchmark_model's per-op times summed per layer, beside the
    entries of a table of the same device (here one written for the test)."""
    from mnas_jax.space import ArchSpec

    arch = smallest_slice_arch()
    spec_text = f"adb:FAKE,xnnpack=0,adb={FAKES / 'adb'}"
    fp = open_device(spec_text).fingerprint()
    layers = ArchSpec.from_string(arch).layers()
    entries = {x.key: 0.01 * (i + 1) for i, x in enumerate(layers)}
    table = LatencyTable("mnasnet", "fmnist", fp.to_dict(), fp.device_id, "mobilenetv2", 1.0,
                         entries, entries)
    table.save(tmp_path / "work/tables" / f"{SLICE}-fmnist-{fp.device_id}.json")
    proc = run_cli(["latency", "profile", arch, "--device", spec_text, "--workdir", "work",
                    "--json"], tmp_path, phone_env(phone))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    per_layer, totals = rows[:-1], rows[-1]
    assert len(per_layer) == len(layers) and all(r["profiled_ms"] >= 0 for r in per_layer)
    assert all(r["profiled_ms"] > 0 for r in per_layer if r["op"] in ("conv", "mbconv"))
    assert [r["table_ms"] for r in per_layer] == [entries[x.key] for x in layers]
    assert totals["profiled_ms"] == pytest.approx(sum(r["profiled_ms"] for r in per_layer))
    assert totals["table_ms"] == pytest.approx(sum(entries[x.key] for x in layers))
    # with XNNPACK on the delegate is one node: no per-op times, one clear line
    proc = run_cli(["latency", "profile", arch, "--device", f"adb:FAKE,adb={FAKES / 'adb'}",
                    "--workdir", "work"], tmp_path, phone_env(phone))
    assert proc.returncode == 2 and "xnnpack=0" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# -- the whole chain ------------------------------------------------------------------------------
def test_new_phone_chain_through_the_server(tmp_path, phone):
    """serve adb:FAKE -> build-lut (a slice of the space) -> predictor fit -> validate, every
    measurement through the HTTP server; stdout carries JSON only, progress goes to stderr."""
    device = f"adb:FAKE,xnnpack=0,adb={FAKES / 'adb'}"
    proc, url = start_server(tmp_path, phone, device)
    env = phone_env(phone)
    common = ["--setting", "fmnist", "--device", url, "--workdir", "work", "--json"]
    try:
        # one interleaved round per measurement (default 4): the chain, not the labels' noise
        steps = [["latency", "build-lut", "--space", SLICE, "--passes", "1", *common],
                 ["predictor", "fit", "--space", SLICE, "--n", "5", "--rounds", "1", *common],
                 ["predictor", "validate", "--space", SLICE, "--n", "3", "--rounds", "1", *common]]
        results = []
        for args in steps:
            done = run_cli(args, tmp_path, env)
            assert done.returncode == 0, done.stderr[-3000:]
            (line,) = done.stdout.splitlines()  # the result only; progress went to stderr
            results.append(json.loads(line))
    finally:
        stop_server(proc)
    table, fit, validate = results
    fp = open_device(device).fingerprint()
    assert table["layers"] == 20 and table["device"] == fp.device_id
    assert fit["n_train"] == 5 and fit["device"] == fp.device_id
    assert validate["n_test"] == 3 and validate["device"] == fp.device_id
    assert set(validate["methods"]) >= {"predictor", "table_scale", "macs_linear"}
    assert Path(tmp_path / validate["plot"]).stat().st_size > 0
    # the served phone's table sits beside per-op times of the same layers (ADB directly)
    arch = smallest_slice_arch()
    done = run_cli(["latency", "profile", arch, "--device", device, "--workdir", "work",
                    "--json"], tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(r["table_ms"] > 0 for r in rows[:-1]) and rows[-1]["table"] == f"{SLICE}/fmnist"
