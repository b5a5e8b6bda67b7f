"""Device spec strings -> devices.

Accepted specs:
    local                              LiteRT here, 1 thread, XNNPACK on
    local:threads=2,xnnpack=0,core=1   options, comma-separated, any subset
    adb:SERIAL                         Android phone; benchmark_model binary (for the phone)
                                       from $MNAS_BENCHMARK_MODEL
    adb:SERIAL,threads=1,xnnpack=0,cpus=f0,stat=median,benchmark=PATH,adb=PATH
                                       stat: what is stored, median (default), min or avg
                                       (see latency.devices.adb)
    http://HOST:PORT                   device server; token from $MNAS_DEVICE_TOKEN, or the file
                                       named by $MNAS_DEVICE_TOKEN_FILE
Heavy runtimes are imported by the devices themselves, so parsing a spec is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from latency.devices.base import (Device, DeviceError, DeviceUnreachable, InvalidModelError,
                                  check_tflite_bytes)

__all__ = ["Device", "DeviceError", "DeviceUnreachable", "InvalidModelError",
           "check_tflite_bytes", "open_device", "SPEC_FORMS"]

SPEC_FORMS = ("local", "local:threads=N,xnnpack=0|1,core=N", "adb:SERIAL[,threads=N,xnnpack=0|1,"
              "cpus=HEXMASK,stat=median|min|avg,benchmark=PATH,adb=PATH]", "http://HOST:PORT")
TOKEN_ENV = "MNAS_DEVICE_TOKEN"
TOKEN_FILE_ENV = "MNAS_DEVICE_TOKEN_FILE"
BENCHMARK_ENV = "MNAS_BENCHMARK_MODEL"


def _bad(spec: str, why: str) -> ValueError:
    return ValueError(f"device spec {spec!r}: {why}; accepted forms: {', '.join(SPEC_FORMS)}")


def _options(spec: str, items: list[str], allowed: set[str]) -> dict[str, str]:
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in allowed or not value:
            raise _bad(spec, f"bad option {item!r} (options: {', '.join(sorted(allowed))})")
        options[name] = value
    return options


def _int(spec: str, name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _bad(spec, f"{name}={value!r} is not an integer") from None


def _flag(spec: str, name: str, value: str) -> bool:
    if value not in ("0", "1", "true", "false"):
        raise _bad(spec, f"{name}={value!r} must be 0 or 1")
    return value in ("1", "true")


def read_token(env: Mapping[str, str]) -> str:
    """The device-server token from $MNAS_DEVICE_TOKEN or the file in $MNAS_DEVICE_TOKEN_FILE."""
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV].strip()
    if env.get(TOKEN_FILE_ENV):
        token = Path(env[TOKEN_FILE_ENV]).read_text().strip()
        if not token:
            raise ValueError(f"token file {env[TOKEN_FILE_ENV]!r} is empty")
        return token
    raise ValueError(f"no token for the device server: set {TOKEN_ENV} or {TOKEN_FILE_ENV}")


def open_device(spec: str, env: Mapping[str, str] | None = None) -> Device:
    """Build the device a spec string names (see the module docstring for the forms)."""
    env = os.environ if env is None else env
    if spec.startswith(("http://", "https://")):
        from latency.devices.remote import RemoteDevice

        return RemoteDevice(spec, read_token(env))
    kind, _, rest = spec.partition(":")
    items = [s for s in rest.split(",") if s] if rest else []
    if kind == "local":
        opts = _options(spec, items, {"threads", "xnnpack", "core"})
        from latency.devices.local import LocalDevice

        return LocalDevice(threads=_int(spec, "threads", opts.get("threads", "1")),
                           xnnpack=_flag(spec, "xnnpack", opts.get("xnnpack", "1")),
                           core=_int(spec, "core", opts["core"]) if "core" in opts else None)
    if kind == "adb":
        if not items or "=" in items[0]:
            raise _bad(spec, "missing the ADB serial (see `adb devices`)")
        opts = _options(spec, items[1:], {"threads", "xnnpack", "cpus", "stat", "benchmark",
                                          "adb"})
        binary = opts.get("benchmark") or env.get(BENCHMARK_ENV)
        if not binary:
            raise _bad(spec, "no benchmark_model binary: add benchmark=PATH or set "
                             f"{BENCHMARK_ENV}")
        from latency.devices.adb import AdbDevice

        return AdbDevice(items[0], binary, adb=opts.get("adb", "adb"),
                         threads=_int(spec, "threads", opts.get("threads", "1")),
                         xnnpack=_flag(spec, "xnnpack", opts.get("xnnpack", "1")),
                         cpu_mask=opts.get("cpus"), statistic=opts.get("stat", "median"))
    raise _bad(spec, "unknown device kind")
