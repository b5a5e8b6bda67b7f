"""The README's new-phone walkthrough, run line by line from an empty directory: the commands
are read from README.md, so the README shows what this test runs. Real parts only: the local
CPU through LiteRT as device A (`local`) and as the new device B (`local:xnnpack=0`), real
exports, a real SQLite store, a real (smoke) search with Flax training on Fashion-MNIST.

Slow (340 s on 2 cores beside the other slow tests under `pytest -n 2`; 20 minutes with two
other jobs on the machine, load average 7-10): kept out of the
default run; the pieces it joins are
tested fast in tests/test_transfer.py, tests/test_cli_conventions.py and tests/test_fake_phone.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnas_jax.data.fashion_mnist import resolve_dir

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## A new phone or LiteRT target"
MARK = "@@@"


def readme_commands() -> list[str]:
    """The first code block (4-space indented lines) of the README's new-phone section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION):]
    lines, started = [], False
    for line in section.splitlines()[1:]:
        if line.startswith("    ") and line.strip():
            lines.append(line.strip())
            started = True
        elif started:
            break
    return lines


def run_walkthrough(workdir: Path, commands: list[str]) -> tuple[list[str], str]:
    """Run the commands in one bash (shared variables), `mnas` being this checkout's CLI; the
    stdout of each command, and stderr."""
    script = ['set -euo pipefail', 'mnas() { "$MNAS_PYTHON" -m mnas_jax.cli.main "$@"; }']
    for i, cmd in enumerate(commands):
        script += [f'echo "{MARK} {i}"', f'echo "{MARK} {i} $(date +%s.%N) {cmd}" >&2', cmd]
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, capture_output=True,
                          text=True, timeout=3600,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "MNAS_PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-4000:]
    outputs = re.split(rf"^{MARK} \d+\n", proc.stdout, flags=re.M)[1:]
    assert len(outputs) == len(commands)
    starts = [float(m) for m in re.findall(rf"^{MARK} \d+ (\S+) ", proc.stderr, flags=re.M)]
    for cmd, t0, t1 in zip(commands, starts, starts[1:] + [time.time()]):
        print(f"{t1 - t0:7.1f} s  {cmd}")  # shown with pytest -s
    return outputs, proc.stderr


@pytest.mark.slow
def test_readme_new_phone_walkthrough(tmp_path):
    if not (resolve_dir() / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail("Fashion-MNIST is not installed: apt-get install -y dataset-fashion-mnist")
    commands = readme_commands()
    assert commands[0].startswith("S=mnasnet@") and any("--transfer-from" in c for c in commands)
    out, err = run_walkthrough(tmp_path, commands)
    by_start = {c.split()[0] + " " + " ".join(c.split()[1:3]): o for c, o in zip(commands, out)}
    work = tmp_path / "work"

    # the table of the slice on device A, 20 layers
    (table_path,) = (work / "tables").glob("mnasnet@*-fmnist-*.json")
    table = json.loads(table_path.read_text())["table"]
    assert len(table["entries_ms"]) == 20
    # device A's predictor carries its table; B's transferred one its base and the base's table
    assert (work / "predictors/local/table.json").is_file()
    phone = json.loads((work / "predictors/phone/metadata.json").read_text())
    assert phone["kind"] == "mnas-transfer-predictor" and phone["n_train"] == 5
    assert (work / "predictors/phone/base/table.json").is_file()
    assert phone["base_device_id"] == table["device_id"] != phone["device_id"]

    # validate: 5 fresh archs on B, report + plot
    report = json.loads(next((work / "reports").glob("validate-*/report.json")).read_text())
    assert report["n_test"] == 5 and report["n_train"] == 5
    assert report["device"] == phone["device_id"]
    assert "predictor" in by_start["mnas predictor validate"]

    # predict on A (device predictor: table sum filled) and on B (transferred)
    a_line, b_line = [o for c, o in zip(commands, out) if c.startswith("mnas predictor predict")]
    a, b = json.loads(a_line), json.loads(b_line)
    assert a["arch_id"] == b["arch_id"] and a["unit"] == b["unit"] == "relative"
    assert a["lut_ms"] > 0 and a["predicted_ms"] > 0 and a["device"] == table["device_id"]
    assert b["lut_ms"] is None and b["predicted_relative"] > 0 and b["predicted_ms"] > 0
    assert b["device"] == phone["device_id"]

    # the search used B's predictor: no table or fit of its own, the slice searched
    search = work / "search"
    summary = json.loads((search / "report" / "summary.json").read_text())
    assert summary["n_samples"] == 4 and summary["calibration_rounds"] >= 1
    assert "searching mnasnet@op=2" in err and "lookup table for" not in err
    assert not (search / "tables").exists()
    found = summary["found"][0]["spec"]
    assert "_k3_" in found and "_e3_" in found and "mbconv" in found  # inside the slice
    # the run's copy is the link (replaced versions, kept a while after a save, start with '.')
    copy = next(p for p in (search / "predictors").iterdir() if not p.name.startswith("."))
    assert json.loads((copy / "metadata.json").read_text())["n_train"] > 5  # refitted copy
    assert json.loads((work / "predictors/phone/metadata.json").read_text()) == phone
