"""Many hosts: the CLI joins a multi-process JAX job before any JAX call.

The real thing runs here: 2 processes on 127.0.0.1 with JAX's CPU collectives (gloo), each with
one CPU device, train the same child as 1 process with 2 CPU devices (the same global batch over
the same number of devices) and reach the same losses; only process 0 prints and writes. Cloud TPU pods cannot exist here, so the decision
of *how* to join (explicit variables, jax's own detection on a TPU VM, off) is checked with
`jax.distributed.initialize` replaced by a recorder; that part is simulated and says so.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnas_jax.data.fashion_mnist import resolve_dir
from mnas_jax.train import sharding

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "mnasnet-small", "--setting", "fmnist", "--preset", "smoke", "--steps", "10",
         "--batch-size", "32", "--json", "--quiet"]
TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNAS_") or k == "MNAS_FMNIST_DIR"}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), **extra)
    return env


def _start(cmd: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen:
    """Start ``mnas CMD``; stdout and stderr go to files in ``logs`` (no pipe can fill up)."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "mnas_jax.cli.main", *cmd], cwd=ROOT, env=env,
                                stdout=out, stderr=err, text=True)


def _wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float,
              grace: float = 30.0) -> list[tuple[int, str, str]]:
    """Wait for every process; kill all at the deadline, or ``grace`` s after one of them failed
    (the others may be blocked in a collective waiting for it). Returns (rc, stdout, stderr)."""
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                deadline = min(deadline, time.monotonic() + grace)
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    return [(p.returncode, (d / "stdout").read_text(), (d / "stderr").read_text()) for p, d in zip(procs, logs)]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2-process job (1 CPU device each) and a 1-process run on 2 devices, started together."""
    if not (resolve_dir() / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)")
    base = tmp_path_factory.mktemp("multihost")
    address = f"127.0.0.1:{_free_port()}"
    names = ["p0", "p1", "single"]
    envs = [_env(1, MNAS_COORDINATOR_ADDRESS=address, MNAS_NUM_PROCESSES="2", MNAS_PROCESS_ID=str(i))
            for i in (0, 1)] + [_env(2)]
    started = time.monotonic()
    procs = []
    for name, env in zip(names, envs):
        (base / name).mkdir()
        procs.append(_start([*TRAIN, "--workdir", str(base / name)], env, base / "logs" / name))
    results = _wait_all(procs, [base / "logs" / n for n in names], TIMEOUT_S)
    return {"results": results, "base": base, "seconds": time.monotonic() - started}


@pytest.mark.slow
def test_two_processes_match_one_process(runs: dict) -> None:
    results = runs["results"]
    assert len(results) == 3 and all(rc == 0 for rc, _, _ in results), \
        [(rc, err[-1500:]) for rc, _, err in results]
    (_, out0, _), (_, out1, _), (_, out_single, _) = results
    two, one = json.loads(out0), json.loads(out_single)
    assert two["num_devices"] == one["num_devices"] == 2  # 2 processes x 1 device, 1 process x 2
    assert two["status"] == one["status"] == "ok" and two["steps"] == one["steps"] == 10
    assert abs(two["final_loss"] - one["final_loss"]) <= 1e-4, (two["loss_curve"], one["loss_curve"])
    for (s2, l2), (s1, l1) in zip(two["loss_curve"], one["loss_curve"]):
        assert s2 == s1 and abs(l2 - l1) <= 1e-4
    assert abs(two["val_accuracy"] - one["val_accuracy"]) <= 1 / 64  # at most one of 64 images
    assert out1 == ""  # process 1 prints nothing


@pytest.mark.slow
def test_only_process_0_writes(runs: dict) -> None:
    base = runs["base"]
    assert all(rc == 0 for rc, _, _ in runs["results"])
    assert _files(base / "p0")  # process 0 wrote the compilation cache
    assert _files(base / "p1") == []  # jax writes its compilation cache from process 0 only


@pytest.mark.slow
def test_a_checkpointed_training_of_many_processes_resumes(tmp_path: Path) -> None:
    """The paper preset (checkpointed) as 2 processes, each with its own work directory (no shared
    filesystem): process 0 alone writes the checkpoint; the same command again restores it on
    process 0 and broadcasts it, so both processes evaluate the trained weights (the same accuracy
    and loss as the first run, with no step trained again) and process 1 still writes nothing."""
    cmd = ["train", "mnasnet-small", "--setting", "fmnist", "--preset", "paper", "--steps", "4",
           "--batch-size", "32", "--json", "--quiet"]
    names = ["p0", "p1"]

    def job(tag: str) -> list[tuple[int, str, str]]:
        address = f"127.0.0.1:{_free_port()}"
        logs = [tmp_path / "logs" / tag / n for n in names]
        procs = [_start([*cmd, "--workdir", str(tmp_path / n)],
                        _env(1, MNAS_COORDINATOR_ADDRESS=address, MNAS_NUM_PROCESSES="2", MNAS_PROCESS_ID=str(i)),
                        logs[i]) for i, n in enumerate(names)]
        return _wait_all(procs, logs, TIMEOUT_S)

    first = job("first")
    assert [rc for rc, _, _ in first] == [0, 0], [(rc, err[-1500:]) for rc, _, err in first]
    checkpoints = [p for p in _files(tmp_path / "p0") if "checkpoints" in p.parts]
    assert checkpoints and any("/4/" in str(p) for p in checkpoints)
    assert not [p for p in _files(tmp_path / "p1") if "checkpoints" in p.parts]
    again = job("again")
    assert [rc for rc, _, _ in again] == [0, 0], [(rc, err[-1500:]) for rc, _, err in again]
    one, two = json.loads(first[0][1]), json.loads(again[0][1])
    assert one["steps"] == two["steps"] == 4 and one["loss_curve"] and two["loss_curve"] == []
    assert two["val_accuracy"] == one["val_accuracy"] and abs(two["val_loss"] - one["val_loss"]) < 1e-5
    assert first[1][1] == again[1][1] == ""  # process 1 prints nothing
    assert not [p for p in _files(tmp_path / "p1") if "checkpoints" in p.parts]


# -- how a process joins (jax.distributed.initialize replaced by a recorder) ---------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def initialize(self, *args) -> None:
        self.calls.append(args)

    def is_initialized(self) -> bool:
        return False


@pytest.fixture()
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    """Stands in for jax.distributed: no TPU pod or second host exists here."""
    rec = _Recorder()
    monkeypatch.setattr(sharding.jax, "distributed", rec)
    monkeypatch.setattr(sharding, "on_cloud_tpu", lambda: False)
    return rec


def test_join_with_explicit_variables(recorder: _Recorder) -> None:
    env = {"MNAS_COORDINATOR_ADDRESS": "10.0.0.2:1234", "MNAS_NUM_PROCESSES": "4", "MNAS_PROCESS_ID": "3"}
    assert sharding.join_job(env) is True
    assert recorder.calls == [("10.0.0.2:1234", 4, 3)]


def test_join_auto_uses_jax_detection_and_off_never_joins(recorder: _Recorder, monkeypatch) -> None:
    assert sharding.join_job({}) is False and recorder.calls == []  # a plain machine: nothing
    assert sharding.join_job({"MNAS_DISTRIBUTED": "auto"}) is True and recorder.calls == [()]
    monkeypatch.setattr(sharding, "on_cloud_tpu", lambda: True)  # a Cloud TPU VM: jax detects
    assert sharding.join_job({}) is True and recorder.calls == [(), ()]
    assert sharding.join_job({"MNAS_DISTRIBUTED": "off", "MNAS_COORDINATOR_ADDRESS": "h:1"}) is False
    with pytest.raises(ValueError, match="MNAS_DISTRIBUTED='yes'"):
        sharding.join_job({"MNAS_DISTRIBUTED": "yes"})
    with pytest.raises(ValueError, match="MNAS_NUM_PROCESSES"):
        sharding.join_job({"MNAS_COORDINATOR_ADDRESS": "h:1"})


def test_search_refuses_to_run_as_one_of_many_processes(tmp_path: Path) -> None:
    """`mnas search` is one process; in a job it says so in one line instead of hanging."""
    address = f"127.0.0.1:{_free_port()}"
    cmd = ["search", "--variant", "smoke", "--workdir", str(tmp_path / "w")]
    logs = [tmp_path / f"logs{i}" for i in (0, 1)]
    procs = [_start(cmd, _env(1, MNAS_COORDINATOR_ADDRESS=address, MNAS_NUM_PROCESSES="2",
                              MNAS_PROCESS_ID=str(i)), logs[i]) for i in (0, 1)]
    results = _wait_all(procs, logs, 180)
    assert [rc for rc, _, _ in results] == [2, 2], results
    for i, (_, _, err) in enumerate(results):
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"process {i} of 2" in lines[0] and "--executor ray" in lines[0], err
    assert not (tmp_path / "w").exists()
