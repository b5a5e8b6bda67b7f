"""An Android phone over ADB, timed by TFLite's `benchmark_model` binary.

UNTESTED ON HARDWARE: no phone was reachable while this was written. The command lines and the
output parser are tested against benchmark_model's output formats (the "count=... first=...
curr=... min=... max=... avg=... std=... [p5=... median=... p95=...]" lines of its Stat
classes, times in microseconds) and end to end against a SIMULATED phone (tests/fakes/adb and
tests/fakes/benchmark_model, which runs the model through LiteRT here); run `mnas device info
--device adb:SERIAL` and one measurement by hand before trusting a new phone.

benchmark_model reports summary statistics only, not per-run times, so:
- the statistic stored as the measurement's `median_ms` is named by the device option
  `stat` and recorded in the fingerprint (extra `statistic`): `median` (the default) is the
  `median=` field, printed by builds whose statistics have percentiles; builds without
  percentiles have no median, and measuring with `stat=median` fails with a message saying so:
  choose `stat=min` (the fastest run, robust to runs the OS preempted) or `stat=avg`;
- IQR is estimated from p5/p95 assuming normal noise ((p95 - p5) * 1.349 / 3.29), or from
  std when the percentiles are missing; CV is IQR / 1.349 / the statistic, as for local devices.
A warm-up phase of 0 runs ("count=0") is accepted; a timed phase of 0 runs is an error.
`profile` runs benchmark_model with `--enable_op_profiling=true` and returns its output (parsed
by latency.profile).
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from latency.devices.base import DeviceError, DeviceUnreachable, check_tflite_bytes
from latency.devices.children import run_command
from latency.measurement import Fingerprint, Measurement
from latency.protocol import (NORMAL_IQR, MeasureProtocol, RunStats,
                              measure_with_retries, to_measurement)

#: Distance between the 5th and 95th percentiles of a normal distribution, in std units.
NORMAL_P5_P95 = 3.2897
#: What a measurement's `median_ms` holds on an ADB device (device option `stat`).
STATISTICS = ("median", "min", "avg")

_RUN_HEADER = "Running benchmark for at least"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STAT = re.compile(rf"\b(count|first|curr|min|max|avg|std|p5|median|p95)=({_NUMBER})")
_PROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]\s*$")


class RunResult(NamedTuple):
    """Exit status and captured output of one adb command."""

    returncode: int
    output: str


#: Runs argv with a timeout in seconds; returns the exit code and stdout+stderr.
Runner = Callable[[Sequence[str], "float | None"], RunResult]


def subprocess_runner(argv: Sequence[str], timeout_s: float | None) -> RunResult:
    """The real runner: merged output; a timeout is a MeasurementTimeout, and a timeout, an
    exception, SIGINT, SIGTERM or exit ends the command's whole process group
    (latency.devices.children)."""
    return RunResult(*run_command(argv, timeout_s))


class BenchmarkStats(NamedTuple):
    """The statistics line of one benchmark_model phase (microseconds)."""

    count: int
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    median_us: float | None
    p5_us: float | None
    p95_us: float | None


def _stats_line(line: str) -> BenchmarkStats:
    v = {k: float(x) for k, x in _STAT.findall(line)}
    if v.get("count") == 0:  # no runs (e.g. --warmup_runs=0): "count=0", percentiles 0 if any
        nan = float("nan")
        return BenchmarkStats(0, nan, nan, nan, nan, None, None, None)
    if "count" not in v or ("avg" not in v and "curr" not in v):
        raise DeviceError(f"benchmark_model statistics line without count/avg: {line!r}")
    avg = v.get("avg", v.get("curr"))  # runs all the same time print only count= and curr=
    return BenchmarkStats(int(v["count"]), v.get("min", avg), v.get("max", avg), avg,
                          v.get("std", 0.0), v.get("median"), v.get("p5"), v.get("p95"))


def parse_benchmark_output(output: str) -> tuple[BenchmarkStats, BenchmarkStats]:
    """(warm-up, timed) statistics from benchmark_model's output.

    The tool prints a "Running benchmark for at least ..." header and a "count=..." line for
    the warm-up phase and then for the timed phase; log prefixes ("INFO: ", logcat columns)
    are ignored.
    """
    phases = output.split(_RUN_HEADER)[1:]
    if len(phases) < 2:
        tail = "\n".join(output.strip().splitlines()[-5:])
        raise DeviceError(f"benchmark_model output has no timed runs; last lines:\n{tail}")
    stats = []
    for phase in phases[:2]:
        line = next((ln for ln in phase.splitlines() if "count=" in ln), None)
        if line is None:
            raise DeviceError("benchmark_model output has a phase without a count= line")
        stats.append(_stats_line(line))
    if stats[1].count == 0:
        raise DeviceError("benchmark_model output has no timed runs (count=0 in the timed "
                          "phase); check --num_runs/--min_secs")
    return stats[0], stats[1]


def run_stats(timed: BenchmarkStats, statistic: str = "median") -> RunStats:
    """Convert benchmark_model's timed-phase summary to RunStats; `statistic` (median, min or
    avg) is what goes into `median_ms` (see module docstring)."""
    if statistic == "median" and timed.median_us is None:
        raise DeviceError(
            "this benchmark_model prints no percentiles (an older build), so the median is "
            "unknown: add stat=min (fastest run) or stat=avg to the device spec "
            "(adb:SERIAL,stat=min), or use a newer benchmark_model")
    value_us = {"median": timed.median_us, "min": timed.min_us, "avg": timed.avg_us}[statistic]
    median_ms = value_us / 1e3
    if timed.p5_us is not None and timed.p95_us is not None:
        iqr_ms = (timed.p95_us - timed.p5_us) / NORMAL_P5_P95 * NORMAL_IQR / 1e3
    else:
        iqr_ms = timed.std_us * NORMAL_IQR / 1e3
    cv = iqr_ms / NORMAL_IQR / median_ms if median_ms > 0 else 0.0
    return RunStats(median_ms, timed.min_us / 1e3, iqr_ms, cv, timed.count,
                    timed.count * timed.avg_us / 1e6)


def parse_getprop(output: str) -> dict[str, str]:
    """`adb shell getprop` lines "[name]: [value]" -> dict."""
    props = {}
    for line in output.splitlines():
        m = _PROP.match(line.strip())
        if m:
            props[m.group(1)] = m.group(2)
    return props


class AdbDevice:
    """A phone reached with `adb -s SERIAL`, measured by a pushed benchmark_model binary."""

    def __init__(self, serial: str, benchmark_binary: str | Path, *, adb: str = "adb",
                 remote_dir: str = "/data/local/tmp/mnas", threads: int = 1,
                 xnnpack: bool = True, cpu_mask: str | None = None,
                 statistic: str = "median", runner: Runner | None = None) -> None:
        if not serial:
            raise ValueError("empty ADB serial: use the serial shown by `adb devices`")
        if statistic not in STATISTICS:
            raise ValueError(f"stat={statistic!r}: use one of {', '.join(STATISTICS)}")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r}: use a positive integer")
        if cpu_mask is not None and not re.fullmatch(r"[0-9a-fA-F]+", cpu_mask):
            raise ValueError(f"cpu mask {cpu_mask!r} is not hexadecimal (e.g. f0 for cores 4-7)")
        self.binary = Path(benchmark_binary)
        if not self.binary.is_file():
            raise FileNotFoundError(
                f"benchmark_model binary {str(self.binary)!r} not found; build or download "
                "TFLite's benchmark_model for the phone's ABI and pass its path")
        if runner is None:
            if shutil.which(adb) is None:
                raise FileNotFoundError(f"adb binary {adb!r} not found; install Android "
                                        "platform-tools or pass its path")
            runner = subprocess_runner
        self.serial, self.adb, self.remote_dir = serial, adb, remote_dir.rstrip("/")
        self.threads, self.xnnpack, self.cpu_mask = threads, xnnpack, cpu_mask
        self.statistic = statistic
        self._run = runner
        self._lock = threading.Lock()
        self._pushed = False
        self._fingerprint: Fingerprint | None = None

    @property
    def remote_binary(self) -> str:
        """Path of benchmark_model on the device."""
        return f"{self.remote_dir}/benchmark_model"

    @property
    def remote_model(self) -> str:
        """Path on the device the model under test is pushed to."""
        return f"{self.remote_dir}/model.tflite"

    def _adb(self, *args: str) -> list[str]:
        return [self.adb, "-s", self.serial, *args]

    def _shell(self, *argv: str) -> list[str]:
        return self._adb("shell", shlex.join(argv))

    def _check(self, argv: list[str], timeout_s: float | None = 120.0) -> str:
        result = self._run(argv, timeout_s)
        if result.returncode != 0:
            tail = "\n".join(result.output.strip().splitlines()[-5:])
            if any(m in tail for m in (f"device '{self.serial}' not found", "no devices",
                                       "device offline", "unauthorized")):
                raise DeviceUnreachable(f"ADB device {self.serial!r} not reachable: {tail}")
            raise DeviceError(f"{shlex.join(argv)} failed (exit {result.returncode}): {tail}")
        return result.output

    def benchmark_command(self, protocol: MeasureProtocol) -> list[str]:
        """The benchmark_model command line for `protocol` (pinned with taskset if asked)."""
        argv = [] if self.cpu_mask is None else ["taskset", self.cpu_mask]
        argv += [self.remote_binary, f"--graph={self.remote_model}",
                 f"--num_threads={self.threads}", f"--warmup_runs={protocol.warmup_runs}",
                 "--warmup_min_secs=0", f"--num_runs={protocol.min_runs}",
                 f"--min_secs={protocol.min_seconds:g}", f"--max_secs={protocol.max_seconds:g}",
                 f"--use_xnnpack={'true' if self.xnnpack else 'false'}"]
        return self._shell(*argv)

    def fingerprint(self) -> Fingerprint:
        """The device's fingerprint (SoC, binary hash, threads, delegate), read once via getprop."""
        if self._fingerprint is None:
            props = parse_getprop(self._check(self._adb("shell", "getprop")))
            soc = (props.get("ro.soc.model") or props.get("ro.board.platform")
                   or props.get("ro.hardware") or "unknown")
            digest = hashlib.sha256(self.binary.read_bytes()).hexdigest()[:12]
            extra = {"serial": self.serial, "model": props.get("ro.product.model", "unknown"),
                     "statistic": self.statistic}
            if self.cpu_mask is not None:
                extra["cpu_mask"] = self.cpu_mask
            self._fingerprint = Fingerprint(
                kind="adb", cpu_model=soc, runtime="tflite-benchmark_model",
                runtime_version=f"sha256:{digest}", threads=self.threads,
                delegate="xnnpack" if self.xnnpack else "none", extra=tuple(extra.items()))
        return self._fingerprint

    def _push_binary(self) -> None:
        if not self._pushed:
            self._check(self._shell("mkdir", "-p", self.remote_dir))
            self._check(self._adb("push", str(self.binary), self.remote_binary))
            self._check(self._shell("chmod", "755", self.remote_binary))
            self._pushed = True

    def _push_model(self, model_bytes: bytes) -> None:
        self._push_binary()
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "model.tflite"
            local.write_bytes(bytes(model_bytes))
            self._check(self._adb("push", str(local), self.remote_model))

    def measure(self, model_bytes: bytes, protocol: MeasureProtocol,
                timeout_s: float | None = None) -> Measurement:
        """Push the model, run benchmark_model (again while the CV is too high), parse."""
        check_tflite_bytes(model_bytes)
        fingerprint = self.fingerprint()
        run_timeout = timeout_s if timeout_s is not None else protocol.max_seconds + 120.0
        with self._lock:
            self._push_model(model_bytes)
            warmups: list[int] = []

            def attempt() -> RunStats:
                warm, timed = parse_benchmark_output(
                    self._check(self.benchmark_command(protocol), run_timeout))
                warmups.append(warm.count)
                return run_stats(timed, self.statistic)

            stats, retries = measure_with_retries(attempt, protocol)
        return to_measurement(stats, fingerprint, warmups[-1], retries)

    def profile(self, model_bytes: bytes, protocol: MeasureProtocol,
                timeout_s: float | None = None) -> str:
        """benchmark_model's output with `--enable_op_profiling=true` (per-op times; see
        latency.profile.parse_op_profile)."""
        check_tflite_bytes(model_bytes)
        self.fingerprint()
        with self._lock:
            self._push_model(model_bytes)
            argv = self.benchmark_command(protocol)
            argv[-1] += " --enable_op_profiling=true"
            return self._check(argv, timeout_s if timeout_s is not None
                               else protocol.max_seconds + 120.0)
