"""The device server over real HTTP on 127.0.0.1, its client, and `mnas device serve|info`."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest_latency import tflite_models  # noqa: F401 (fixture)

from latency.devices.base import DeviceUnreachable, InvalidModelError
from latency.devices.local import LocalDevice
from latency.devices.remote import PROTOCOL_HEADER, TIMEOUT_HEADER, RemoteDevice
from latency.measurement import Measurement
from latency.protocol import MeasureProtocol, MeasurementTimeout
from latency.server import make_server
from mnas_jax.cli import device_cmds

TOKEN = "test-token-0123456789abcdef"
LIMIT = 256 * 1024
PROTOCOL = MeasureProtocol(warmup_runs=3, min_runs=50, min_seconds=0.1, max_seconds=5.0)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def device() -> LocalDevice:
    return LocalDevice()


@pytest.fixture(scope="module")
def server(device):
    srv = make_server(device, TOKEN, port=0, max_upload_bytes=LIMIT, timeout_s=20.0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def call(server, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def assert_still_serving(server, device) -> None:
    status, health = call(server, "GET", "/health")
    assert status == 200 and health["device_id"] == device.fingerprint().device_id


def test_health(server, device):
    status, health = call(server, "GET", "/health")
    assert status == 200
    assert health["fingerprint"] == device.fingerprint().to_dict()
    assert health["queue"] == 0 and health["max_upload_bytes"] == LIMIT


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef", ""])
def test_bad_token_is_401(server, device, tflite_models, token):
    assert call(server, "GET", "/health", token=token)[0] == 401
    status, body = call(server, "POST", "/measure", tflite_models["small"], token=token)
    assert status == 401 and "token" in body["error"]
    assert_still_serving(server, device)


def test_oversized_upload_is_413(server, device):
    status, body = call(server, "POST", "/measure", b"\0" * (LIMIT + 1))
    assert status == 413 and str(LIMIT) in body["error"]
    assert_still_serving(server, device)
    # a lying Content-Length is refused before anything is read
    status, _ = call(server, "POST", "/measure", b"x" * 100, headers={"Content-Length": "10" * 9})
    assert status == 413
    assert_still_serving(server, device)


@pytest.mark.parametrize("body, message", [
    (b"this is not a tflite model at all", "not a TFLite model"),
    (b"", "not a TFLite model"),
])
def test_garbage_is_400_with_a_message(server, device, body, message):
    status, reply = call(server, "POST", "/measure", body)
    assert status == 400 and message in reply["error"]
    assert_still_serving(server, device)


def test_truncated_model_is_400(server, device, tflite_models):
    status, reply = call(server, "POST", "/measure", tflite_models["small"][:200])
    assert status == 400 and "LiteRT cannot load the model" in reply["error"]
    assert_still_serving(server, device)


def test_bad_protocol_header_is_400(server, device, tflite_models):
    status, reply = call(server, "POST", "/measure", tflite_models["tiny"],
                         headers={PROTOCOL_HEADER: '{"min_runs": 0}'})
    assert status == 400 and "min_runs" in reply["error"]
    assert_still_serving(server, device)


def test_unknown_route_is_404(server):
    assert call(server, "GET", "/nope")[0] == 404


def test_slow_measurement_is_504_and_frees_the_device(server, device, tflite_models):
    slow = MeasureProtocol(min_seconds=5.0, max_seconds=10.0)
    status, reply = call(server, "POST", "/measure", tflite_models["tiny"],
                         headers={PROTOCOL_HEADER: json.dumps(slow.to_dict()),
                                  TIMEOUT_HEADER: "0.3"})
    assert status == 504 and "timeout" in reply["error"]
    status, reply = call(server, "POST", "/measure", tflite_models["tiny"],
                         headers={PROTOCOL_HEADER: json.dumps(PROTOCOL.to_dict())})
    assert status == 200 and reply["runs"] >= PROTOCOL.min_runs


def test_busy_device_is_504(server, device, tflite_models):
    server.device_lock.acquire()  # as if a long measurement were running
    try:
        status, reply = call(server, "POST", "/measure", tflite_models["tiny"],
                             headers={TIMEOUT_HEADER: "0.2"})
    finally:
        server.device_lock.release()
    assert status == 504 and "busy" in reply["error"]
    assert_still_serving(server, device)


class Unplugged(LocalDevice):
    """A phone pulled out mid-run: the server must answer and keep serving."""

    def measure(self, model_bytes, protocol, timeout_s=None):
        raise DeviceUnreachable("adb: device 'R58' not found")


def test_device_failure_is_503_and_the_client_says_so(tflite_models):
    srv = make_server(Unplugged(), TOKEN, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(DeviceUnreachable, match="R58"):
            RemoteDevice(srv.url, TOKEN).measure(tflite_models["tiny"], PROTOCOL)
        assert call(srv, "GET", "/health")[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()


def test_remote_matches_local(server, device, tflite_models):
    remote = RemoteDevice(server.url, TOKEN)
    assert remote.fingerprint() == device.fingerprint()
    model = tflite_models["medium"]
    local_before = device.measure(model, PROTOCOL)
    served = remote.measure(model, PROTOCOL)
    local_after = device.measure(model, PROTOCOL)
    assert isinstance(served, Measurement) and served.fingerprint == device.fingerprint()
    assert served.runs >= PROTOCOL.min_runs
    local_ms = (local_before.median_ms + local_after.median_ms) / 2
    # a sanity bound only (the acceptance number is reported, not asserted)
    assert 0.5 < served.median_ms / local_ms < 2.0


def test_two_clients_at_once_are_queued(server, tflite_models):
    results: list[object] = []

    def client() -> None:
        try:
            remote = RemoteDevice(server.url, TOKEN)
            results.append(remote.measure(tflite_models["small"], PROTOCOL))
        except Exception as e:  # reported below
            results.append(e)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2 and all(isinstance(r, Measurement) for r in results)


def test_remote_errors(server, tflite_models):
    with pytest.raises(PermissionError, match="rejected the token"):
        RemoteDevice(server.url, "wrong-token-0123456789abcdef").fingerprint()
    remote = RemoteDevice(server.url, TOKEN)
    with pytest.raises(InvalidModelError, match="not a TFLite model"):
        remote.measure(b"garbage garbage", PROTOCOL)
    with pytest.raises(InvalidModelError, match="exceeds the upload limit"):
        remote.measure(b"\0" * (LIMIT + 1), PROTOCOL)
    with pytest.raises(MeasurementTimeout):
        remote.measure(tflite_models["tiny"], MeasureProtocol(min_seconds=5, max_seconds=10),
                       timeout_s=0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DeviceUnreachable, match=url.replace(".", r"\.")) as err:
        RemoteDevice(url, TOKEN).fingerprint()
    assert isinstance(err.value, ConnectionError) and "\n" not in str(err.value)


def test_short_token_is_refused(device):
    with pytest.raises(ValueError, match="too short"):
        make_server(device, "abc", port=0)


# -- CLI ----------------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mnas")
    device_cmds.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_device_info_json(capsys):
    args = parse(["device", "info", "--device", "local:xnnpack=0", "--json"])
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["delegate"] == "none"
    assert info["device_id"] == LocalDevice(xnnpack=False).fingerprint().device_id


def test_cli_device_info_errors(monkeypatch):
    monkeypatch.setenv("MNAS_DEVICE_TOKEN", TOKEN)
    args = parse(["device", "info", "--device", f"http://127.0.0.1:{free_port()}"])
    with pytest.raises(DeviceUnreachable, match="not reachable"):  # main: one line, exit 1
        args.func(args)
    args = parse(["device", "info", "--device", "tpu"])
    with pytest.raises(ValueError, match="device spec 'tpu'"):
        args.func(args)


def test_cli_serve_missing_token_file(tmp_path):
    args = parse(["device", "serve", "--device", "local", "--port", "0",
                  "--token-file", str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="token file"):
        args.func(args)


def test_cli_serve_end_to_end(tmp_path, tflite_models):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnas_jax.cli.main", "device", "serve", "--device", "local",
         "--port", "0", "--token-file", str(token_file), "--max-upload-mb", "1",
         "--timeout", "30"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving local"), line + proc.stderr.read()
        url = line.split(" on ")[-1].strip()
        remote = RemoteDevice(url, TOKEN)
        assert remote.health()["max_upload_bytes"] == 1024 * 1024
        m = remote.measure(tflite_models["small"], PROTOCOL)
        assert m.fingerprint == LocalDevice().fingerprint()
        with pytest.raises(PermissionError):
            RemoteDevice(url, "x" * 20).fingerprint()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
