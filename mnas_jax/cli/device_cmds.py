"""`mnas device serve|info` and `mnas store export`: thin wrappers over latency.*."""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
from pathlib import Path

from mnas_jax.cli.errors import UserError
from mnas_jax.cli.output import print_json

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `device` command (serve, fingerprint) to the CLI's subparsers."""
    device = sub.add_parser("device", help="serve a device over HTTP or show its fingerprint")
    dsub = device.add_subparsers(dest="device_command", required=True)

    serve = dsub.add_parser("serve", help="expose one device over HTTP (token-protected)")
    serve.add_argument("--device", required=True, help="device spec, e.g. local or adb:SERIAL")
    serve.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    serve.add_argument("--token-file", required=True, type=Path,
                       help="file holding the bearer token clients must send")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; tunnel over SSH from elsewhere)")
    serve.add_argument("--max-upload-mb", type=float, default=64.0,
                       help="upload limit (MB, default 64)")
    serve.add_argument("--timeout", type=float, default=300.0,
                       help="seconds per request, waiting in line included (default 300)")
    serve.add_argument("--json", action="store_true",
                       help="print the ready line (URL, device id, fingerprint) as JSON")
    serve.set_defaults(func=_serve)

    info = dsub.add_parser("info", help="print a device's fingerprint")
    info.add_argument("--device", required=True, help="device spec, e.g. local, http://HOST:PORT")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)

    store = sub.add_parser("store", help="the measurement store of a work directory")
    ssub = store.add_subparsers(dest="store_command", required=True)
    export = ssub.add_parser("export", help="write every stored measurement to CSV")
    export.add_argument("--workdir", required=True, type=Path, help="work directory")
    export.add_argument("-o", "--output", required=True, type=Path, help="CSV file to write")
    export.add_argument("--json", action="store_true",
                        help="print the result (file, row count) as one JSON line")
    export.set_defaults(func=_store_export)


def read_token_file(path: Path) -> str:
    """The token in `path`; warns when others may read it."""
    if not path.is_file():
        raise FileNotFoundError(
            f"token file {str(path)!r} not found; create it with: "
            f"python -c 'import secrets; print(secrets.token_hex(16))' > {path}")
    if path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("token file %s is readable by other users; chmod 600 it", path)
    token = path.read_text().strip()
    if not token:
        raise UserError(f"token file {str(path)!r} is empty; put a random token in it")
    return token


def _serve(args: argparse.Namespace) -> int:
    from latency.devices import open_device
    from latency.server import MAX_TIMEOUT_S, serve

    token = read_token_file(args.token_file)
    if not args.max_upload_mb > 0 or not 0 < args.timeout <= MAX_TIMEOUT_S:
        raise UserError(f"--max-upload-mb {args.max_upload_mb} must be > 0 and --timeout "
                        f"{args.timeout} in (0, {MAX_TIMEOUT_S:g}] seconds")
    device = open_device(args.device)

    def ready(server) -> None:  # the command's result: where to reach the device
        fp = server.fingerprint
        if args.json:
            print_json({"url": server.url, "device": args.device, "device_id": fp.device_id,
                        "fingerprint": fp.to_dict()})
        else:
            sys.stdout.write(f"serving {args.device} ({fp.cpu_model}, {fp.delegate}, "
                             f"{fp.threads} thread(s), device {fp.device_id}) on {server.url}\n")
        sys.stdout.flush()

    try:
        serve(device, token, host=args.host, port=args.port,
              max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), timeout_s=args.timeout,
              ready=ready)
    except (ConnectionError, PermissionError, TimeoutError):
        raise  # a device or server failure (exit status 1), not a bad --host/--port
    except OSError as e:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from None
    _exit_now()
    return 0


def _exit_now() -> None:
    """End the process as soon as the server has stopped (SIGINT/SIGTERM): the server holds
    nothing to save, and the interpreter's teardown of what the CLI imported (JAX) takes
    seconds on a busy machine, past the 2 s a stop signal is promised."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _info(args: argparse.Namespace) -> int:
    from latency.devices import open_device

    fp = open_device(args.device).fingerprint()
    if args.json:
        print_json({"device_id": fp.device_id, **fp.to_dict()})
    else:
        lines = [f"device_id: {fp.device_id}", f"kind: {fp.kind}", f"cpu_model: {fp.cpu_model}",
                 f"runtime: {fp.runtime} {fp.runtime_version}", f"threads: {fp.threads}",
                 f"delegate: {fp.delegate}"] + [f"{k}: {v}" for k, v in fp.extra]
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _store_export(args: argparse.Namespace) -> int:
    from latency.store import MeasurementStore

    with MeasurementStore.in_workdir(args.workdir, create=False) as store:
        n = store.export_csv(args.output)
    if args.json:
        print_json({"output": str(args.output), "measurements": n})
    else:
        sys.stdout.write(f"wrote {n} measurements to {args.output}\n")
    return 0
