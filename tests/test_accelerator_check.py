"""scripts/accelerator_check.sh with JAX_PLATFORMS=cpu runs its CPU half (issue 20, item 7).

No GPU or TPU exists here: the accelerator half cannot run, and the script says so in its
report ("none (CPU half only)"). The driver's backend, a child's backend and real trainings on
the CPU are real.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _check(tmp_path: Path, *args: str) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", OUT=str(tmp_path))
    out = subprocess.run(["bash", str(REPO / "scripts" / "accelerator_check.sh"), "--quick", *args],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "none (CPU half only)" in (tmp_path / "accelerator.md").read_text()
    return json.loads((tmp_path / "accelerator.json").read_text())


def test_the_cpu_half_trains_a_proxy_child(tmp_path: Path) -> None:
    result = _check(tmp_path, "--parts", "proxy")
    assert result["accelerator"] is None
    assert result["driver"]["backend"] == "cpu" and result["driver"]["preallocate"] == "false"
    assert result["child"]["backend"] == "cpu"
    (proxy,) = result["training"]
    assert proxy["kind"] == "proxy" and proxy["platform"] == "cpu" and proxy["status"] == "ok"
    assert proxy["compile_seconds"] > 0 and proxy["images_per_second"] > 0


@pytest.mark.slow
def test_the_whole_cpu_half(tmp_path: Path) -> None:
    result = _check(tmp_path)
    assert [r["kind"] for r in result["training"]] == ["proxy", "paper"]
    assert all(r["status"] == "ok" for r in result["training"])
    assert [c["status"] for c in result["ray"]["children"]] == ["ok", "ok"]
