"""Tabular benchmarks as spaces: the file format and its errors, `mnas search --benchmark` through
the real search loop (checkpoint, a real SIGKILL and resume), and the controller against random
search on NAS-Bench-Macro (real trained accuracies, latencies of this project's LiteRT device)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mnas_jax.cli.main import main
from mnas_jax.search.searchers import SEARCHER_NAMES, make_searcher, searcher_from_bytes
from mnas_jax.search.tabular.run import (
    TabularSearchConfig,
    pick_of,
    resolve_table_target,
    run_tabular_search,
    search_table,
)
from mnas_jax.search.tabular.table import load_table

ROOT = Path(__file__).resolve().parents[1]
NBM = ROOT / "data" / "nas-bench-macro" / "nas-bench-macro_cifar10_local.csv"


def small_csv(path: Path, rows: list[str], header: str = "tokens,name,acc_s0,acc_s1,dev_ms") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def grid_rows() -> list[str]:
    """A complete 3 x 2 space: accuracy grows with both tokens, latency with the first."""
    rows = []
    for a in range(3):
        for b in range(2):
            acc = 0.5 + 0.1 * a + 0.05 * b
            rows.append(f"{a} {b},r{a}{b},{acc:.3f},{acc + 0.01:.3f},{1.0 + a:.1f}")
    return rows


@pytest.fixture(scope="module")
def nbm():
    return load_table(NBM)


def test_the_shipped_nasbench_macro_table(nbm):
    assert len(nbm) == 6561 and nbm.choices == (3,) * 8
    assert nbm.accuracy.shape == (6561, 3) and 0.4 < nbm.accuracy.min() and nbm.accuracy.max() < 0.94
    assert nbm.space == "nasbench-macro" and "local_ms" in nbm.latencies
    assert np.all(nbm.latency("local_ms") > 0)
    best = int(np.argmax(nbm.mean_accuracy))
    assert abs(nbm.mean_accuracy[best] - 0.9313) < 5e-4  # the README's global best, 93.13%


def test_percent_accuracies_and_inferred_choices(tmp_path):
    path = small_csv(tmp_path / "t.csv", ["0 0,a,45.5,46.5,1", "1 2,b,90,91,2"])
    table = load_table(path)
    assert table.choices == (2, 3)
    np.testing.assert_allclose(table.accuracy, [[0.455, 0.465], [0.90, 0.91]])
    assert load_table(path, accuracy="acc_s1").accuracy.shape == (2, 1)
    assert load_table(path, choices=(3, 3)).choices == (3, 3)


@pytest.mark.parametrize("rows, header, extra, message", [
    (["0 0,a,0.5,0.5,1"], "name,acc_s0,acc_s1,dev_ms", [], "no 'tokens' column"),
    (["0 0,a,0.5,0.5,1", "0 1 1,b,0.5,0.5,1"], None, [], "line 3: 3 tokens"),
    (["0 0,a,0.5,0.5,1", "0 1,b,0.5,n/a,1"], None, [], "line 3 column acc_s1: 'n/a' is not a number"),
    (["0 0,a,0.5,0.5,1", "0 x,b,0.5,0.5,1"], None, [], "line 3: tokens '0 x'"),
    (["0 0,a,0.5,0.5,1", "0 0,b,0.5,0.5,1"], None, [], "line 3: the same tokens as line 2"),
    (["0 0,a,0.5,0.5,1", "0 1,b,0.5,0.5,-1"], None, [], "line 3 column dev_ms"),
    (["0 0,a,0.5,0.5,1"], None, ["--accuracy", "top1"], "no accuracy column"),
    (["0 0,a,0.5,0.5,1"], None, ["--latency", "pixel1_ms"], "no latency column 'pixel1_ms'"),
    (["0 0,a,0.5,0.5,1"], None, ["--target", "1.0x zz"], "no row named 'zz'"),
])
def test_a_malformed_file_stops_in_one_line_naming_the_row(tmp_path, capsys, rows, header, extra, message):
    path = small_csv(tmp_path / "bad.csv", rows, header or "tokens,name,acc_s0,acc_s1,dev_ms")
    before = path.read_bytes()
    assert main(["search", "--benchmark", str(path), "--samples", "4", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mnas: error:") and message in err, err
    assert path.read_bytes() == before


def test_targets_in_ms_relative_to_a_row_and_percentiles(tmp_path):
    table = load_table(small_csv(tmp_path / "t.csv", grid_rows()))
    assert resolve_table_target("2.5ms", table, None) == 2.5
    assert resolve_table_target("1.5x r10", table, None) == 3.0
    assert resolve_table_target("p50", table, None) == 2.0
    with pytest.raises(ValueError, match="percentile"):
        resolve_table_target("p100", table, None)


def test_the_pick_averages_repeated_architectures():
    # 'a' was lucky once (0.9) and unlucky once (0.5); 'b' was seen once at 0.8
    assert pick_of(np.array(["a", "b", "a"]), np.array([0.9, 0.8, 0.5])) == 1


def test_a_row_missing_from_the_file_fails_with_reward_zero(tmp_path):
    rows = [r for r in grid_rows() if not r.startswith("2 1")]
    table = load_table(small_csv(tmp_path / "t.csv", rows), choices=(3, 2))
    out = search_table(table, TabularSearchConfig(searcher="random", samples=40, target="9ms", seed=3))
    missing = out.rows == -1
    assert missing.any() and np.all(out.observed[missing] == 0.0)
    assert table.names[out.optimum_row] == "r20"  # r21 would be better, but the file lacks it


@pytest.mark.parametrize("name", SEARCHER_NAMES)
def test_every_searcher_resumes_from_its_checkpoint(name):
    a = make_searcher(name, (3, 2, 4), seed=5)
    for _ in range(3):
        t = a.ask(4)
        a.tell(t, np.linspace(0.1, 0.9, 4))
    b = searcher_from_bytes(a.to_bytes())
    np.testing.assert_array_equal(a.ask(4), b.ask(4))


def test_a_search_of_200_samples_through_the_cli(tmp_path):
    """The CLI end to end (its speed is benchmarks/search_tabular.py's `seconds_per_search`, not
    a timed assertion here: this machine is shared)."""
    proc = subprocess.run([sys.executable, "-m", "mnas_jax.cli.main", "search", "--benchmark", str(NBM),
                           "--samples", "200", "--json", "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["searcher"] == "ppo" and summary["samples"] == 208  # 13 whole steps of PPO's 16
    assert summary["best"]["reward"] <= summary["optimal"]["reward"]
    assert summary["regret"] == pytest.approx(summary["optimal"]["reward"] - summary["best"]["reward"])
    assert {"mean_accuracy", "latency_ms", "reward", "name"} <= set(summary["best"])
    stored = [json.loads(line) for line in (tmp_path / "w" / "samples.jsonl").read_text().splitlines()]
    assert sum(s["status"] != "screened" for s in stored) == 208  # screened draws are stored too


def test_a_killed_tabular_search_resumes_with_nothing_lost_or_repeated(tmp_path, nbm):
    config = TabularSearchConfig(searcher="ppo", samples=1200, seed=4)
    reference = run_tabular_search(nbm, config, tmp_path / "whole")
    work = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mnas_jax.cli.main", "search", "--benchmark", str(NBM), "--samples", "1200",
           "--seed", "4", "--workdir", str(work), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = work / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and len(samples.read_text().splitlines()) >= 100:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the search ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(samples.read_text().splitlines())
    assert 100 <= done < 1200
    resumed = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    whole = [json.loads(line) for line in (tmp_path / "whole" / "samples.jsonl").read_text().splitlines()]
    key = lambda s: (s["step"], s["index"])  # noqa: E731
    assert len({key(s) for s in rows}) == len(rows) == len(whole)  # nothing repeated, nothing lost
    assert [(key(s), s["arch_id"]) for s in rows] == [(key(s), s["arch_id"]) for s in whole]
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["best"] == reference["best"]


def test_ppo_beats_random_search_at_200_samples_on_nasbench_macro(nbm):
    """Paired over 12 fixed seeds (seed k of both searchers sees the same query seeds), one-sided
    Wilcoxon signed-rank test on the regrets at 200 samples, soft reward, T = median latency."""
    seeds = range(12)
    regret = {s: np.array([search_table(nbm, TabularSearchConfig(searcher=s, samples=200, seed=k)).regret(200)
                           for k in seeds]) for s in ("ppo", "random")}
    p = stats.wilcoxon(regret["ppo"], regret["random"], alternative="less", zero_method="zsplit").pvalue
    assert regret["ppo"].mean() < regret["random"].mean() and p < 0.05, (regret, p)


def test_a_search_whose_latency_is_measured_on_the_device(tmp_path, capsys):
    """--device: the rows the search visits are built as networks of the registered space,
    exported and measured on the real local LiteRT device (cached in the work dir's store)."""
    work = tmp_path / "w"
    args = ["search", "--benchmark", str(NBM), "--device", "local", "--samples", "4", "--batch-size", "2", "--rounds", "1",
            "--target", "1.0x 11111111", "--workdir", str(work), "--json", "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["samples"] == 4 and summary["optimal"] is None and summary["regret"] is None
    assert summary["best"]["latency_ms"] > 0 and 0.4 < summary["best"]["mean_accuracy"] < 0.94
    assert (work / "measurements.sqlite").exists() or list(work.glob("*.sqlite"))
    assert main(args[:-2] + ["--target", "p50", "--workdir", str(tmp_path / "x")]) == 2
    assert "percentile" in capsys.readouterr().err
