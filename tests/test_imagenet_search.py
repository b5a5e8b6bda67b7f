"""The `tiny` variant of configs/imagenet.py end to end through `mnas search`, on a TFDS dataset
written here with tensorflow-datasets' own writer (64x64-96x96 JPEGs, 10 classes), with the real
chain: a lookup table built on the local LiteRT device, a predictor fitted on device runs,
children trained on the TFDS data, calibration rounds and the report. Slow: the table alone
measures 2601 layers; the whole run took 54 min on 2 cores shared with other jobs (load 8-10),
of which ~30 min the table; expect well under half that on idle cores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latency.store import MeasurementStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_imagenet_search_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow_datasets")
    from mnas_jax.data.synthetic import write_synthetic

    data_dir = tmp_path / "tfds"
    write_synthetic(data_dir)
    workdir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "mnas_jax.cli.main", "search", "--config",
                           str(ROOT / "configs" / "imagenet.py"), "--variant", "tiny", "--data-dir",
                           str(data_dir), "--workdir", str(workdir)],
                          capture_output=True, text=True, timeout=5400, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = workdir / "report"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["config"]["setting"] == "tiny64" and summary["config"]["data"] == "tfds:mnas_synthetic"
    assert summary["n_samples"] == 4 and summary["calibration_rounds"] >= 1
    found = summary["found"][0]
    assert found["latency"] > 0 and 0.0 <= found["mean_accuracy"] <= 1.0
    assert (report / "models" / f"{found['arch_id']}.tflite").read_bytes()[4:8] == b"TFL3"
    with MeasurementStore.in_workdir(workdir, create=False) as store:
        samples = [e.payload for e in store.events("sample")]
        layers = store.measurements(kind="layer")
    assert any(s["status"] == "ok" for s in samples)  # children trained on the TFDS data
    assert len(layers) >= 2601  # the lookup table of the tiny64 setting, measured on the device
    assert list((workdir / "predictors").iterdir())  # the predictor, saved
