"""A device on another machine, reached through `mnas device serve` over HTTP.

The fingerprint is the served device's own: measurements of one phone are one device whether
they arrive over ADB or over the network (the store's `source` column records the path).
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

from latency.devices.base import DeviceError, DeviceUnreachable, InvalidModelError
from latency.measurement import Fingerprint, Measurement, canonical_json
from latency.protocol import MeasureProtocol, MeasurementTimeout

PROTOCOL_HEADER = "X-Mnas-Protocol"
TIMEOUT_HEADER = "X-Mnas-Timeout"


class RemoteDevice:
    """HTTP client of a device server; one request at a time from this client."""

    def __init__(self, url: str, token: str, timeout_s: float = 600.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"device server URL {url!r} must start with http:// or https://")
        if not token:
            raise ValueError(f"empty token for {url}: "
                             "set MNAS_DEVICE_TOKEN or MNAS_DEVICE_TOKEN_FILE")
        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        self._token = token
        self._lock = threading.Lock()
        self._health: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RemoteDevice({self.url!r})"

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers={
            "Authorization": f"Bearer {self._token}", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise self._http_error(e) from None
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DeviceUnreachable(
                f"device server {self.url} is not reachable ({reason}); check that "
                "`mnas device serve` runs there and the host/port are right") from None

    def _http_error(self, e: urllib.error.HTTPError) -> Exception:
        try:
            message = json.loads(e.read()).get("error", "")
        except (ValueError, OSError, AttributeError):
            message = ""
        where = f"device server {self.url}"
        if e.code == 401:
            return PermissionError(f"{where} rejected the token (401); check MNAS_DEVICE_TOKEN")
        if e.code in (400, 413):
            return InvalidModelError(f"{where} refused the model ({e.code}): {message}")
        if e.code == 504:
            return MeasurementTimeout(f"{where} timed out: {message}")
        if e.code == 503:
            return DeviceUnreachable(f"{where}: {message}")
        return DeviceError(f"{where} answered {e.code}: {message}")

    def health(self) -> dict[str, Any]:
        """GET /health: fingerprint, queue length, upload limit."""
        self._health = self._request("GET", "/health")
        return self._health

    def fingerprint(self) -> Fingerprint:
        """The served device's fingerprint, from the server's health answer (asked once)."""
        if self._health is None:
            self.health()
        return Fingerprint.from_dict(self._health["fingerprint"])

    def measure(self, model_bytes: bytes, protocol: MeasureProtocol,
                timeout_s: float | None = None) -> Measurement:
        """POST the model to /measure and wait for the served device's Measurement."""
        if self._health is None:
            self.health()
        limit = int(self._health.get("max_upload_bytes", 0))
        if limit and len(model_bytes) > limit:
            raise InvalidModelError(f"model of {len(model_bytes)} bytes exceeds the upload limit "
                                    f"of {limit} bytes of {self.url} (--max-upload-mb)")
        headers = {"Content-Type": "application/octet-stream",
                   PROTOCOL_HEADER: canonical_json(protocol.to_dict())}
        wait = self.timeout_s if timeout_s is None else timeout_s
        if timeout_s is not None:
            headers[TIMEOUT_HEADER] = f"{timeout_s:g}"
        with self._lock:
            data = self._request("POST", "/measure", bytes(model_bytes), headers, wait + 30.0)
        return Measurement.from_dict(data)
