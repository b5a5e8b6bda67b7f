"""Expose one device over HTTP: how a search on a Cloud TPU reaches a phone on another machine.

    GET  /health   -> {"fingerprint": ..., "device_id": ..., "queue": n, "max_upload_bytes": n}
    POST /measure  body: the .tflite bytes; header X-Mnas-Protocol: MeasureProtocol JSON
                   (optional X-Mnas-Timeout: seconds > 0, capped by the server's timeout;
                   negative, zero, nan, inf or over a day is a 400)
                   -> Measurement JSON
Every request needs "Authorization: Bearer TOKEN" (401 otherwise). Errors are JSON
{"error": message}: 400 bad model or protocol, 411 no Content-Length, 413 upload over the
limit (checked before reading), 502/503 the device failed / is unreachable (e.g. the phone was
unplugged), 504 measurement past the timeout. One measurement runs at a
time; others wait in line. Plain HTTP: bind 127.0.0.1 (the default) and tunnel over SSH, or
put it behind TLS, before sending tokens across a network.

`serve` stops on SIGINT or SIGTERM within a second, whatever signal disposition the process
inherited (`nohup cmd &` starts it with SIGINT ignored) and whatever connections are open:
handlers are installed explicitly, connection threads are daemons and are not waited for; a
measurement in flight has its commands (adb, benchmark_model) ended as the server stops.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from latency.devices.base import (Device, DeviceError, DeviceUnreachable, InvalidModelError,
                                  check_tflite_bytes)
from latency.devices.children import end_running_commands
from latency.devices.remote import PROTOCOL_HEADER, TIMEOUT_HEADER
from latency.measurement import Measurement
from latency.protocol import MeasureProtocol, MeasurementTimeout

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 300.0
MIN_TOKEN_CHARS = 16
#: Extra wait for a device that overruns its own deadline inside one long invoke.
GRACE_S = 5.0
#: Longest timeout a server or a request may ask for (a day); longer ones are mistakes.
MAX_TIMEOUT_S = 86400.0
#: How often serve_forever looks for a shutdown request (seconds).
POLL_S = 0.2


class HttpError(Exception):
    """A request failure answered with this HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DeviceServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding one device and its measurement line."""

    daemon_threads = True
    block_on_close = False  # server_close must not wait for idle keep-alive connections

    def __init__(self, address: tuple[str, int], device: Device, token: str,
                 max_upload_bytes: int, timeout_s: float) -> None:
        self.device, self.max_upload_bytes, self.timeout_s = device, max_upload_bytes, timeout_s
        self.token = token.encode()
        self.fingerprint = device.fingerprint()
        self.device_lock = threading.Lock()  # released by the measuring thread
        self._queue_lock = threading.Lock()
        self.queue = 0
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The server's base URL, http://HOST:PORT."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def change_queue(self, delta: int) -> None:
        """Add `delta` to the count of requests waiting for the device (thread-safe)."""
        with self._queue_lock:
            self.queue += delta

    def run_measurement(self, model: bytes, protocol: MeasureProtocol, timeout_s: float
                        ) -> Measurement:
        """Wait for the device, measure in a worker thread, give up after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        if not self.device_lock.acquire(timeout=timeout_s):
            raise HttpError(504, f"device busy for more than the {timeout_s:g} s timeout")
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self.device.measure(model, protocol,
                                                    timeout_s=max(deadline - time.monotonic(), 0.0))
            except BaseException as e:  # handed to the request thread
                box["error"] = e
            finally:
                self.device_lock.release()

        worker = threading.Thread(target=work, name="measure", daemon=True)
        worker.start()
        worker.join(max(deadline - time.monotonic(), 0.0) + GRACE_S)
        if worker.is_alive():
            raise HttpError(504, f"measurement exceeded the {timeout_s:g} s timeout "
                                 "(the device finishes it before taking the next one)")
        error = box.get("error")
        if isinstance(error, MeasurementTimeout):
            raise HttpError(504, f"measurement exceeded the {timeout_s:g} s timeout: {error}")
        if isinstance(error, ValueError):
            raise HttpError(400, str(error))
        if isinstance(error, DeviceUnreachable):
            raise HttpError(503, f"device unreachable: {error}")
        if isinstance(error, DeviceError):
            raise HttpError(502, f"device failed: {error}")
        if error is not None:
            raise error
        return box["result"]


class _Handler(BaseHTTPRequestHandler):
    server: DeviceServer
    _body_consumed = False
    timeout = 60  # seconds a client may stall while sending; frees the thread otherwise
    server_version = "mnas-device"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.info("%s %s", self.address_string(), format % args)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _discard_unread_body(self) -> None:
        """Half-close and drain briefly so the client reads our error instead of a reset."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            stop = time.monotonic() + 2.0
            while time.monotonic() < stop and self.rfile.read1(1 << 16):
                pass
        except OSError:
            pass

    def _authorize(self) -> None:
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self.server.token):
            raise HttpError(401, "missing or wrong bearer token")

    def _dispatch(self, route: Callable[[], dict[str, Any]], has_body: bool) -> None:
        self._body_consumed = not has_body
        try:
            self._authorize()
            self._send_json(200, route())
        except HttpError as e:
            self._send_json(e.status, {"error": str(e)})
            if not self._body_consumed:
                self._discard_unread_body()
        except Exception as e:  # keep serving: report and go on
            log.exception("request failed")
            self._send_json(500, {"error": f"{type(e).__name__}: {e}"})
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        if self.path.split("?")[0] != "/health":
            self._dispatch(self._not_found, has_body=False)
        else:
            self._dispatch(self._health, has_body=False)

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?")[0] != "/measure":
            self._dispatch(self._not_found, has_body=True)
        else:
            self._dispatch(self._measure, has_body=True)

    def _not_found(self) -> dict[str, Any]:
        raise HttpError(404, f"no route {self.command} {self.path}; "
                             "use GET /health or POST /measure")

    def _health(self) -> dict[str, Any]:
        fp = self.server.fingerprint
        return {"fingerprint": fp.to_dict(), "device_id": fp.device_id, "queue": self.server.queue,
                "max_upload_bytes": self.server.max_upload_bytes,
                "timeout_s": self.server.timeout_s}

    def _read_body(self) -> bytes:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise HttpError(411, "Content-Length header required")
        try:
            length = int(length_text)
        except ValueError:
            raise HttpError(400, f"bad Content-Length {length_text!r}") from None
        if length > self.server.max_upload_bytes:
            raise HttpError(413, f"upload of {length} bytes exceeds the limit of "
                                 f"{self.server.max_upload_bytes} bytes")
        body = self.rfile.read(length)
        self._body_consumed = True
        if len(body) != length:
            raise HttpError(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _protocol(self) -> tuple[MeasureProtocol, float]:
        try:
            protocol = MeasureProtocol.from_dict(json.loads(self.headers.get(PROTOCOL_HEADER,
                                                                             "{}")))
        except (ValueError, TypeError) as e:
            raise HttpError(400, f"bad {PROTOCOL_HEADER} header: {e}") from None
        raw = self.headers.get(TIMEOUT_HEADER)
        if raw is None:
            return protocol, self.server.timeout_s
        try:
            timeout_s = float(raw)
        except ValueError:
            timeout_s = math.nan
        if not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
            raise HttpError(400, f"bad {TIMEOUT_HEADER} header {raw!r}: give seconds > 0 and "
                                 f"<= {MAX_TIMEOUT_S:g}")
        return protocol, min(timeout_s, self.server.timeout_s)

    def _measure(self) -> dict[str, Any]:
        protocol, timeout_s = self._protocol()
        model = self._read_body()
        try:
            check_tflite_bytes(model)
        except InvalidModelError as e:
            raise HttpError(400, str(e)) from None
        self.server.change_queue(+1)
        try:
            return self.server.run_measurement(model, protocol, timeout_s).to_dict()
        finally:
            self.server.change_queue(-1)


def make_server(device: Device, token: str, *, host: str = "127.0.0.1", port: int = 0,
                max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> DeviceServer:
    """A bound, not yet serving, server; port 0 picks a free port (see `.url`)."""
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"token of {len(token)} characters is too short (need {MIN_TOKEN_CHARS}); "
                         "make one with: python -c 'import secrets; print(secrets.token_hex(16))'")
    if max_upload_bytes <= 0 or not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise ValueError(f"max_upload_bytes={max_upload_bytes} must be > 0 and timeout_s="
                         f"{timeout_s} in (0, {MAX_TIMEOUT_S:g}] seconds")
    if host not in ("127.0.0.1", "localhost"):
        log.warning("binding %s: plain HTTP, the token crosses the network in clear; "
                    "prefer an SSH tunnel to 127.0.0.1", host)
    return DeviceServer((host, port), device, token, max_upload_bytes, timeout_s)


def serve(device: Device, token: str, *, host: str = "127.0.0.1", port: int = 8470,
          max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
          timeout_s: float = DEFAULT_TIMEOUT_S, ready: Callable[[DeviceServer], None] | None = None
          ) -> None:
    """Serve until SIGINT or SIGTERM (handled explicitly when called from the main thread)."""
    server = make_server(device, token, host=host, port=port, max_upload_bytes=max_upload_bytes,
                         timeout_s=timeout_s)
    log.info("serving %s (device %s) on %s", server.fingerprint.cpu_model,
             server.fingerprint.device_id, server.url)
    restore = _stop_on_signals(server)
    try:
        if ready is not None:
            ready(server)
        server.serve_forever(poll_interval=POLL_S)
    finally:
        restore()
        server.server_close()
        # a measurement still running in its daemon thread would outlive the process's exit:
        # end its adb/benchmark_model (the CLI exits with os._exit, which skips atexit)
        end_running_commands()


def _stop_on_signals(server: DeviceServer) -> Callable[[], None]:
    """Install SIGINT/SIGTERM handlers that shut `server` down; returns what restores the old
    ones. (server.shutdown waits for serve_forever, so it runs in a thread of its own.)"""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals reach the main thread only; its owner stops the server
    stopping = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("%s received, shutting down", signal.Signals(signum).name)
            threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
