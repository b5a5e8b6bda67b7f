"""Fingerprints, the protocol's statistics, LiteRT measurements, spec parsing, ADB commands."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest_latency import tflite_models  # noqa: F401 (fixture)

from latency.devices import open_device
from latency.devices.adb import (AdbDevice, RunResult, parse_benchmark_output, parse_getprop,
                                 run_stats)
from latency.devices.base import (Device, DeviceError, DeviceUnreachable, InvalidModelError,
                                  check_tflite_bytes)
from latency.devices.local import LocalDevice, cpu_model_name
from latency.devices.remote import RemoteDevice
from latency.measurement import Fingerprint, Measurement, model_hash
from latency.protocol import (NORMAL_IQR, MeasureProtocol, MeasurementTimeout, RunStats,
                              measure_with_retries, summarize, time_runs)

FAST = MeasureProtocol(warmup_runs=2, min_runs=20, min_seconds=0.02, max_seconds=5.0)


def _fingerprint(**changes) -> Fingerprint:
    base = dict(kind="local", cpu_model="AMD EPYC", runtime="litert", runtime_version="2.3.0",
                threads=1, delegate="xnnpack", extra={"host": "vm"})
    return Fingerprint(**{**base, **changes})


# -- data types ---------------------------------------------------------------------------------
def test_fingerprint_round_trip_and_stable_id():
    fp = _fingerprint(extra={"serial": "x", "host": "vm"})
    assert Fingerprint.from_json(fp.to_json()) == fp
    assert fp.extra == (("host", "vm"), ("serial", "x"))
    assert fp.device_id == _fingerprint(extra={"host": "vm", "serial": "x"}).device_id
    assert len(fp.device_id) == 12
    assert fp.device_id != _fingerprint(threads=2).device_id
    assert fp.device_id != _fingerprint(delegate="none").device_id
    assert hash(fp) == hash(Fingerprint.from_json(fp.to_json()))


def test_fingerprint_rejects_bad_values():
    with pytest.raises(ValueError, match="kind 'gpu'"):
        _fingerprint(kind="gpu")
    with pytest.raises(ValueError, match="threads"):
        _fingerprint(threads=0)
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        Fingerprint.from_dict({**_fingerprint().to_dict(), "colour": "red"})


def test_measurement_round_trip():
    m = Measurement(1.25, 1.1, 0.05, 0.03, 50, 5, 0.07, _fingerprint(), retries=1)
    assert Measurement.from_json(m.to_json()) == m
    assert Measurement.from_dict(m.to_dict()) == m


def test_protocol_dict_round_trip_and_validation():
    p = MeasureProtocol(min_runs=10, max_cv=0.1)
    assert MeasureProtocol.from_dict(p.to_dict()) == p
    assert MeasureProtocol.from_dict({"min_runs": "7"}) == MeasureProtocol(min_runs=7)
    with pytest.raises(ValueError, match="unknown fields \\['runs'\\]"):
        MeasureProtocol.from_dict({"runs": 3})
    with pytest.raises(ValueError, match="min_runs"):
        MeasureProtocol(min_runs=0)
    with pytest.raises(ValueError, match="max_seconds"):
        MeasureProtocol(min_seconds=2.0, max_seconds=1.0)
    with pytest.raises(ValueError, match="bad MeasureProtocol value"):
        MeasureProtocol.from_dict({"min_runs": "many"})


# -- protocol statistics ------------------------------------------------------------------------
def test_summarize_closed_form():
    stats = summarize([0.005, 0.001, 0.003, 0.002, 0.004])
    assert stats.median_ms == pytest.approx(3.0)
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.iqr_ms == pytest.approx(2.0)  # quartiles 2 and 4 (linear interpolation)
    assert stats.cv == pytest.approx(2.0 / NORMAL_IQR / 3.0)
    assert stats.runs == 5 and stats.seconds == pytest.approx(0.015)


def test_summarize_cv_ignores_a_single_outlier():
    times = [0.001] * 49 + [0.5]
    assert summarize(times).cv == 0.0
    assert summarize(times).median_ms == pytest.approx(1.0)


def test_summarize_cv_matches_std_over_mean_for_normal_noise():
    times = np.random.default_rng(0).normal(1e-3, 2e-5, 20000)
    assert summarize(times).cv == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("bad", [[], [0.001, -1.0], [float("nan")]])
def test_summarize_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_time_runs_counts_warmup_and_min_runs():
    calls = []
    times = time_runs(lambda: calls.append(1), MeasureProtocol(warmup_runs=3, min_runs=10,
                                                               min_seconds=0.0))
    assert len(times) == 10 and len(calls) == 13


def test_time_runs_past_deadline_raises():
    import time

    with pytest.raises(MeasurementTimeout):
        time_runs(lambda: None, MeasureProtocol(min_seconds=5.0, max_seconds=10.0),
                  deadline=time.monotonic() + 0.05)


@pytest.mark.parametrize("cvs, max_retries, want_cv, want_retries", [
    ([0.01], 2, 0.01, 0),
    ([0.2, 0.1, 0.01], 2, 0.01, 2),
    ([0.2, 0.1, 0.01], 1, 0.1, 1),
    ([0.2, 0.3, 0.25], 2, 0.2, 2),
])
def test_measure_with_retries_keeps_the_steadiest(cvs, max_retries, want_cv, want_retries):
    it = iter(cvs)
    stats, retries = measure_with_retries(
        lambda: RunStats(1.0, 1.0, 0.0, next(it), 10, 0.01),
        MeasureProtocol(max_cv=0.05, max_retries=max_retries))
    assert (stats.cv, retries) == (want_cv, want_retries)


# -- local LiteRT -------------------------------------------------------------------------------
def test_local_device_measures_a_real_model(tflite_models):
    device = LocalDevice()
    assert isinstance(device, Device)
    m = device.measure(tflite_models["medium"], FAST)
    assert m.runs >= FAST.min_runs and m.warmup == FAST.warmup_runs
    assert 0 < m.min_ms <= m.median_ms < 1000
    assert m.iqr_ms >= 0 and m.cv >= 0
    # `seconds` is the time inside the timed runs; min_seconds bounds the wall time, which on a busy
    # machine also holds the gaps between runs, so only the runs themselves bound `seconds`
    assert m.seconds >= m.runs * m.min_ms / 1000 * 0.999
    fp = m.fingerprint
    assert fp == device.fingerprint()
    assert (fp.kind, fp.runtime, fp.threads, fp.delegate) == ("local", "litert", 1, "xnnpack")
    assert fp.runtime_version == "2.3.0" and fp.cpu_model == cpu_model_name()


def test_local_device_without_xnnpack(tflite_models):
    off = LocalDevice(xnnpack=False)
    m = off.measure(tflite_models["small"], FAST)
    assert m.fingerprint.delegate == "none" and m.median_ms > 0
    assert off.fingerprint().device_id != LocalDevice().fingerprint().device_id


def test_local_device_two_threads(tflite_models):
    m = LocalDevice(threads=2).measure(tflite_models["tiny"], FAST)
    assert m.fingerprint.threads == 2 and m.median_ms > 0


def test_local_device_pins_and_restores_affinity(tflite_models):
    before = os.sched_getaffinity(0)
    core = max(before)
    m = LocalDevice(core=core).measure(tflite_models["tiny"], FAST)
    assert dict(m.fingerprint.extra)["core"] == str(core)
    assert os.sched_getaffinity(0) == before


def test_local_device_rejects_unavailable_core():
    with pytest.raises(ValueError, match="core=4096 is not available"):
        LocalDevice(core=4096)


@pytest.mark.parametrize("bad, message", [
    (b"definitely not a model", "not a TFLite model"),
    (b"", "not a TFLite model"),
])
def test_local_device_rejects_garbage(bad, message):
    with pytest.raises(InvalidModelError, match=message):
        LocalDevice().measure(bad, FAST)


def test_local_device_rejects_truncated_model(tflite_models):
    truncated = tflite_models["small"][:200]
    check_tflite_bytes(truncated)  # the header is fine, the flatbuffer is not
    with pytest.raises(ValueError, match="LiteRT cannot load the model"):
        LocalDevice().measure(truncated, FAST)


def test_model_hash_is_sha256(tflite_models):
    import hashlib

    b = tflite_models["tiny"]
    assert model_hash(b) == hashlib.sha256(b).hexdigest()


# -- device specs -------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, threads, xnnpack, core", [
    ("local", 1, True, None),
    ("local:threads=2", 2, True, None),
    ("local:xnnpack=0", 1, False, None),
    ("local:core=0", 1, True, 0),
    ("local:threads=2,xnnpack=0,core=0", 2, False, 0),
])
def test_open_local_specs(spec, threads, xnnpack, core):
    d = open_device(spec, env={})
    assert isinstance(d, LocalDevice)
    assert (d.threads, d.xnnpack, d.core) == (threads, xnnpack, core)


@pytest.mark.parametrize("spec, message", [
    ("gpu", "unknown device kind"),
    ("", "unknown device kind"),
    ("local:threads=two", "threads='two' is not an integer"),
    ("local:speed=1", "bad option 'speed=1'"),
    ("local:xnnpack=maybe", "must be 0 or 1"),
    ("adb:", "missing the ADB serial"),
    ("adb:threads=2", "missing the ADB serial"),
    ("adb:R58M123", "no benchmark_model binary"),
])
def test_open_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        open_device(spec, env={})
    assert f"device spec {spec!r}" in str(err.value) and "http://HOST:PORT" in str(err.value)


def test_open_http_spec_takes_the_token_from_env_or_file(tmp_path):
    with pytest.raises(ValueError, match="MNAS_DEVICE_TOKEN"):
        open_device("http://127.0.0.1:8470", env={})
    d = open_device("http://127.0.0.1:8470", env={"MNAS_DEVICE_TOKEN": "t" * 20})
    assert isinstance(d, RemoteDevice) and d.url == "http://127.0.0.1:8470"
    token_file = tmp_path / "token"
    token_file.write_text("s" * 20 + "\n")
    d = open_device("http://127.0.0.1:8470/", env={"MNAS_DEVICE_TOKEN_FILE": str(token_file)})
    assert d._token == "s" * 20 and d.url == "http://127.0.0.1:8470"


def test_open_adb_spec(tmp_path):
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    with pytest.raises(FileNotFoundError, match="adb binary '/nonexistent/adb' not found"):
        open_device(f"adb:R58M123,benchmark={binary},adb=/nonexistent/adb", env={})
    with pytest.raises(FileNotFoundError, match="benchmark_model binary"):
        open_device("adb:R58M123", env={"MNAS_BENCHMARK_MODEL": str(tmp_path / "missing")})


# -- ADB (no phone here: command lines and parser on benchmark_model's output format) ----------
# Output in benchmark_model's format (TFLite 2.1x: "INFO: " prefixes, p5/median/p95 fields).
NEW_FORMAT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [50]
INFO: Min runs duration (seconds): [0.1]
INFO: Max runs duration (seconds): [30]
INFO: Num threads: [1]
INFO: Min warmup runs: [5]
INFO: Min warmup runs duration (seconds): [0]
INFO: Graph: [/data/local/tmp/mnas/model.tflite]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/mnas/model.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 3.49
INFO: Initialized session in 21.7ms.
INFO: Running benchmark for at least 5 iterations and at least 0 seconds but terminate if exceeding 30 seconds.
INFO: count=5 first=24811 curr=18420 min=18377 max=24811 avg=19711.2 std=2551 p5=18377 median=18431 p95=24811

INFO: Running benchmark for at least 50 iterations and at least 0.1 seconds but terminate if exceeding 30 seconds.
INFO: count=54 first=18466 curr=18392 min=18305 max=19620 avg=18502.6 std=236 p5=18322 median=18447 p95=19010

INFO: Inference timings in us: Init: 21700, First inference: 24811, Warmup (avg): 19711.2, Inference (avg): 18502.6
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=6.3 overall=13.9
"""

# Older builds: no prefixes, no percentiles, large averages in scientific notation.
OLD_FORMAT = """\
STARTING!
Min num runs: [50]
Num threads: [1]
Graph: [/data/local/tmp/mnas/model.tflite]
Loaded model /data/local/tmp/mnas/model.tflite
resolved reporter
Initialized session in 4.18ms
Running benchmark for at least 1 iterations and at least 0.5 seconds
count=1 curr=1337512

Running benchmark for at least 50 iterations and at least 1 seconds
count=50 first=1296110 curr=1294805 min=1290214 max=1301977 avg=1.29563e+06 std=2410

Average inference timings in us: Warmup: 1337512, Init: 4183, no stats: 1.29563e+06
"""

GETPROP = """\
[ro.board.platform]: [msm8998]
[ro.product.model]: [Pixel 2]
[ro.soc.model]: [SDM835]
[ro.build.version.sdk]: [30]
"""


def test_parse_new_format():
    warm, timed = parse_benchmark_output(NEW_FORMAT)
    assert warm.count == 5 and timed.count == 54
    stats = run_stats(timed)
    assert stats.median_ms == pytest.approx(18.447)
    assert stats.min_ms == pytest.approx(18.305)
    assert stats.iqr_ms == pytest.approx((19010 - 18322) / 3.2897 * NORMAL_IQR / 1e3)
    assert stats.cv == pytest.approx(stats.iqr_ms / NORMAL_IQR / stats.median_ms)
    assert stats.runs == 54 and stats.seconds == pytest.approx(54 * 18502.6e-6)


def test_parse_old_format_stores_the_named_statistic():
    """Without percentiles there is no median: avg or min, as the device's `stat` names."""
    warm, timed = parse_benchmark_output(OLD_FORMAT)
    assert warm.count == 1 and warm.min_us == 1337512
    stats = run_stats(timed, "avg")
    assert stats.median_ms == pytest.approx(1295.63)
    assert stats.iqr_ms == pytest.approx(2410 * NORMAL_IQR / 1e3)
    assert stats.runs == 50
    assert run_stats(timed, "min").median_ms == pytest.approx(1290.214)
    with pytest.raises(DeviceError, match="no percentiles .* stat=min"):
        run_stats(timed)


def test_parse_no_warmup_and_all_same_runs():
    """benchmark_model's Stat lines for 0 runs ("count=0", --warmup_runs=0) and for runs that
    all took the same time ("count=N curr=X(all same)", no min/avg)."""
    text = NEW_FORMAT.replace(
        "count=5 first=24811 curr=18420 min=18377 max=24811 avg=19711.2 std=2551 p5=18377 "
        "median=18431 p95=24811", "count=0 p5=0 median=0 p95=0").replace(
        "count=54 first=18466 curr=18392 min=18305 max=19620 avg=18502.6 std=236 p5=18322 "
        "median=18447 p95=19010", "count=3 curr=18392(all same) p5=18392 median=18392 p95=18392")
    warm, timed = parse_benchmark_output(text)
    assert warm.count == 0 and timed.count == 3
    stats = run_stats(timed)
    assert stats.median_ms == stats.min_ms == pytest.approx(18.392) and stats.iqr_ms == 0.0
    with pytest.raises(DeviceError, match="no timed runs"):
        parse_benchmark_output(text.replace("count=3 curr=18392(all same)", "count=0"))


def test_parse_logcat_prefixed_output():
    logcat = "\n".join(f"07-14 13:14:52.859 22838 22838 I tflite  : {line}"
                       for line in NEW_FORMAT.splitlines())
    assert run_stats(parse_benchmark_output(logcat)[1]).median_ms == pytest.approx(18.447)


@pytest.mark.parametrize("output", [
    "", "ERROR: Could not open '/data/local/tmp/mnas/model.tflite'.\nBenchmarking failed.",
    NEW_FORMAT.split("INFO: Running benchmark for at least 50")[0],
])
def test_parse_failed_output(output):
    with pytest.raises(DeviceError, match="no timed runs"):
        parse_benchmark_output(output)


def test_parse_getprop():
    assert parse_getprop(GETPROP)["ro.product.model"] == "Pixel 2"


class FakeAdb:
    """Records every command line and answers like adb + benchmark_model would."""

    def __init__(self, outputs: list[str] | None = None, fail: str | None = None) -> None:
        self.calls: list[tuple[list[str], float | None]] = []
        self.outputs = outputs or [NEW_FORMAT]
        self.fail = fail

    def __call__(self, argv, timeout_s):
        self.calls.append((list(argv), timeout_s))
        if self.fail is not None:
            return RunResult(1, self.fail)
        if argv[3:] == ["shell", "getprop"]:
            return RunResult(0, GETPROP)
        if "benchmark_model --graph" in argv[-1]:
            return RunResult(0, self.outputs.pop(0) if len(self.outputs) > 1 else self.outputs[0])
        return RunResult(0, "1 file pushed.\n")


@pytest.fixture
def benchmark_binary(tmp_path) -> Path:
    path = tmp_path / "benchmark_model"
    path.write_bytes(b"\x7fELF not really")
    return path


def test_adb_command_lines(benchmark_binary, tflite_models):
    fake = FakeAdb()
    device = AdbDevice("R58M123", benchmark_binary, threads=2, xnnpack=False, cpu_mask="f0",
                       runner=fake)
    protocol = MeasureProtocol(warmup_runs=5, min_runs=50, min_seconds=0.1, max_seconds=30)
    m = device.measure(tflite_models["tiny"], protocol)
    argvs = [argv for argv, _ in fake.calls]
    adb = ["adb", "-s", "R58M123"]
    assert argvs[0] == adb + ["shell", "getprop"]
    assert argvs[1] == adb + ["shell", "mkdir -p /data/local/tmp/mnas"]
    assert argvs[2] == adb + ["push", str(benchmark_binary), "/data/local/tmp/mnas/benchmark_model"]
    assert argvs[3] == adb + ["shell", "chmod 755 /data/local/tmp/mnas/benchmark_model"]
    assert argvs[4][:4] == adb + ["push"] and argvs[4][5] == "/data/local/tmp/mnas/model.tflite"
    assert argvs[5] == adb + ["shell", (
        "taskset f0 /data/local/tmp/mnas/benchmark_model "
        "--graph=/data/local/tmp/mnas/model.tflite --num_threads=2 --warmup_runs=5 "
        "--warmup_min_secs=0 --num_runs=50 --min_secs=0.1 --max_secs=30 --use_xnnpack=false")]
    assert len(argvs) == 6
    assert m.median_ms == pytest.approx(18.447) and m.warmup == 5 and m.retries == 0
    fp = m.fingerprint
    assert (fp.kind, fp.cpu_model, fp.threads, fp.delegate) == ("adb", "SDM835", 2, "none")
    assert dict(fp.extra) == {"serial": "R58M123", "model": "Pixel 2", "cpu_mask": "f0",
                              "statistic": "median"}
    assert fp.runtime == "tflite-benchmark_model" and fp.runtime_version.startswith("sha256:")

    device.measure(tflite_models["tiny"], protocol)  # binary pushed once, model every time
    again = [argv for argv, _ in fake.calls[6:]]
    assert [a[3] for a in again] == ["push", "shell"]


def test_adb_remeasures_when_cv_is_high(benchmark_binary, tflite_models):
    noisy = NEW_FORMAT.replace("p5=18322 median=18447 p95=19010", "p5=12000 median=18447 p95=30000")
    fake = FakeAdb(outputs=[noisy, NEW_FORMAT])
    m = AdbDevice("R58M123", benchmark_binary, runner=fake).measure(tflite_models["tiny"],
                                                                    MeasureProtocol(max_cv=0.05))
    runs = [argv for argv, _ in fake.calls if "benchmark_model --graph" in argv[-1]]
    assert len(runs) == 2 and m.retries == 1 and m.cv < 0.05
    assert "--use_xnnpack=true" in runs[0][-1] and not runs[0][-1].startswith("taskset")


def test_adb_unreachable_and_failing(benchmark_binary, tflite_models):
    gone = FakeAdb(fail="adb: device 'R58M123' not found\n")
    with pytest.raises(DeviceUnreachable, match="R58M123"):
        AdbDevice("R58M123", benchmark_binary, runner=gone).fingerprint()
    broken = FakeAdb(outputs=["ERROR: Failed to apply XNNPACK delegate.\nBenchmarking failed.\n"])
    with pytest.raises(DeviceError, match="no timed runs"):
        AdbDevice("R58M123", benchmark_binary, runner=broken).measure(tflite_models["tiny"], FAST)
    with pytest.raises(InvalidModelError):
        AdbDevice("R58M123", benchmark_binary, runner=FakeAdb()).measure(b"garbage!", FAST)
