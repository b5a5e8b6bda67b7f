"""The `ci` and `smoke` search variants (configs/fmnist.py) end to end through the CLI, with real
parts only: a real LiteRT device (local CPU), real exports, a real SQLite store, real (tiny) Flax
training on Fashion-MNIST, PPO updates, at least one calibration round, and the report.

The default suite runs `ci` (a slice of small networks with the fewest layers, one controller
step of 2 children, 5 predictor archs measured in one round, one pass per device check, 16x16
children: 3 networks compiled; ~130 s beside a training job); `smoke` (the whole space, 2 steps, 8 predictor archs, 2 passes, 32x32: 5 networks
compiled, 7 minutes of the suite's wall time under `pytest -n 2`) is slow. Both
run the same code (`mnas_jax.search.pipeline.run_search` and the report); the same assertions hold
for both, with the counts taken from the variant's config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from latency.store import MeasurementStore
from mnas_jax.data.fashion_mnist import resolve_dir
from mnas_jax.search.config import SearchConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def get_config(variant: str) -> SearchConfig:
    """The variant of configs/fmnist.py (the `mnas search` default config) the fixture ran."""
    return load_config(ROOT / "configs" / "fmnist.py", variant)


@pytest.fixture(scope="module", params=["ci", pytest.param("smoke", marks=pytest.mark.slow)])
def smoke_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[subprocess.CompletedProcess, Path, str]:
    if not (resolve_dir() / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail("Fashion-MNIST is not installed: apt-get install -y dataset-fashion-mnist")
    variant = request.param
    workdir = tmp_path_factory.mktemp(variant)
    proc = subprocess.run([sys.executable, "-m", "mnas_jax.cli.main", "search", "--variant", variant,
                           "--workdir", str(workdir)], capture_output=True, text=True, timeout=900,
                          cwd=ROOT, env=dict(os.environ))
    return proc, workdir, variant


def test_smoke_search_writes_the_report(smoke_run) -> None:
    proc, workdir, variant = smoke_run
    config = get_config(variant)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = workdir / "report"
    assert Path(proc.stdout.strip().splitlines()[-1]) == report / "report.md"
    for name in ("report.md", "summary.json", "samples.csv", "samples.json", "reward.png",
                 "latency_histogram.png", "pareto.png", "calibration.png", "calibration.json"):
        assert (report / name).stat().st_size > 0, name
    summary = json.loads((report / "summary.json").read_text())
    n_children = config.steps * config.batch_size
    assert summary["n_trained"] == n_children and summary["n_samples"] >= n_children
    assert summary["calibration_rounds"] >= 1
    text = (report / "report.md").read_text()
    assert "dominates" in text and "Rule:" in text and "fresh seeds" in text
    assert "TEST split" in text and "Welch" in text and "winner's curse" in text  # a verdict that cannot flatter
    found = summary["found"][0]
    assert (report / "models" / f"{found['arch_id']}.tflite").read_bytes()[4:8] == b"TFL3"
    # re-trained with 2 fresh seeds (the variant's report_seeds), latency measured again
    assert config.report_seeds == 2
    assert found["latency"] > 0 and found["n"] == 2 and all(0.0 <= a <= 1.0 for a in found["accuracies"])
    assert summary["baselines"][0]["n"] == 2
    # the verdict scores the test split; the winner's curse compares like with like (validation)
    assert len(found["val_accuracies"]) == 2 and found["winners_curse"] is not None
    assert found["winners_curse"] == pytest.approx(found["search_accuracy"] - found["val_mean_accuracy"])
    rows = json.loads((report / "samples.json").read_text())
    assert any(r["measured_latency"] for r in rows)  # calibration measurements joined in


def test_smoke_search_stored_every_sample_and_a_calibration_round(smoke_run) -> None:
    proc, workdir, variant = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    with MeasurementStore.in_workdir(workdir, create=False) as store:
        samples = [e.payload for e in store.events("sample")]
        rounds = [e.payload for e in store.events("calibration")]
        refs = store.measurements(kind="reference")
    assert len({(s["step"], s["index"]) for s in samples}) == len(samples)
    trained = [s for s in samples if s["status"] != "screened"]
    assert len(trained) == get_config(variant).steps * get_config(variant).batch_size
    assert trained and all(0.0 <= s["accuracy"] <= 1.0 for s in trained)
    assert all(s["predicted_latency"] > 0 for s in samples)
    assert rounds and all(c["measured"] > 0 for c in rounds[0]["candidates"])  # real device runs
    assert refs  # the reference model measured beside the candidates: the drift record


def test_resume_of_a_finished_search_keeps_its_samples(smoke_run) -> None:
    proc, workdir, variant = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = subprocess.run([sys.executable, "-m", "mnas_jax.cli.main", "search", "--variant", variant,
                            "--workdir", str(workdir)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert again.returncode == 2 and "--resume" in again.stderr and len(again.stderr.strip().splitlines()) == 1
