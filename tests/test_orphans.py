"""A SIGKILLed search leaves no process behind (issue 14, item 5).

The real `mnas search` (smoke variant, local device) is started; once its converter worker (and
multiprocessing's resource tracker) run, the search is killed with SIGKILL; every process it had
started must be gone within a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0]


def descendants(pid: int) -> set[int]:
    """Live (non-zombie) descendants of ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _parent_and_state(int(entry.name))
            if info is not None and info[1] != "Z":
                children.setdefault(info[0], []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _alive(pid: int) -> bool:
    info = _parent_and_state(pid)
    return info is not None and info[1] != "Z"


def test_sigkilled_search_leaves_no_child(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "mnas_jax.cli.main", "search", "--config", "configs/fmnist.py",
                             "--variant", "smoke", "--workdir", str(tmp_path / "work")],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kids: set[int] = set()
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            kids = descendants(proc.pid)
            if len(kids) >= 2:  # the converter worker and the resource tracker
                break
            time.sleep(0.5)
        assert kids, "the search started no child process before the deadline"
        time.sleep(1.0)
        kids |= descendants(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.25)
    left = [k for k in kids if _alive(k)]
    for k in left:  # do not leave them to the next test either
        os.kill(k, signal.SIGKILL)
    assert not left, f"processes left after the search was killed: {left}"
