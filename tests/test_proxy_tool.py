"""`mnas proxy select | train | report` (mnas_jax.fidelity): real components, small.

Real: Fashion-MNIST, child training (tiny budgets injected as the budget table: 2-4 steps of 8
images at 16x16 on 1-block networks), the results file, the report's statistics, the zero-cost
gradient norm, the local LiteRT device (slow test). Stand-in: the latency measurement of the
fast `select` test (a function of MACs; measuring even a tiny pool on the local device takes
minutes, see the slow sibling, which measures for real).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mnas_jax.cli.main import main
from mnas_jax.costs import arch_macs
from mnas_jax.fidelity import budgets as budgets_mod
from mnas_jax.fidelity.budgets import PROXY, REFERENCE, RETIRED, Budget, budget_table
from mnas_jax.fidelity.candidates import Candidate, Selection, read_selection, write_selection
from mnas_jax.fidelity.report import GOAL_TAU, recommend, summarise, write_report
from mnas_jax.fidelity.results import append_row, check_rows, read_rows
from mnas_jax.fidelity.selection import bin_edges, bin_of
from mnas_jax.fidelity.stats import agreement, bootstrap_tau, seed_tau, tau, taus_b, top_overlap
from mnas_jax.space import ArchSpec, get_space, reference, sample_specs
from mnas_jax.train.config import proxy

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "reports" / "proxy_fidelity_runs"
# space-08..15 of the first selection: their reference runs exist or run; every new selection keeps them
KEPT = {"space-08": "bcbef9baff1260c9", "space-09": "a6b05a6e91bb82de", "space-10": "15a3ccb5cfe1bf6c",
        "space-11": "9e796521dd4486ed", "space-12": "64969df6513fd0d3", "space-13": "b01b8674c75ade4f",
        "space-14": "664cd641b85cd8ee", "space-15": "397b3c576aec8515"}
TINY = ["i32x1-c10-stem8s2-head32-drop0.2-relu:mbconv_r1_k3_s2_e3_o8_se0.0_g1_none",
        "i32x1-c10-stem8s2-head32-drop0.2-relu:sepconv_r1_k3_s2_e1_o16_se0.0_g1_none"]


def _tiny_selection(specs: list[str] = TINY) -> Selection:
    cands = []
    for i, text in enumerate(specs):
        s = ArchSpec.from_string(text)
        cands.append(Candidate(f"tiny-{i}", s.arch_id, text, 0.5 + i, arch_macs(s)))
    return Selection(tuple(cands), "mnasnet", "fmnist", 7, "local", "mobilenetv2", (0.3, 2.0), 16)


def _tiny_budgets() -> dict[str, Budget]:
    base = dataclasses.replace(proxy(), batch_size=8, input_size=16, val_limit=64, train_limit=256,
                               bn_recalibration_examples=16, eval_batch_size=64, log_every=1)
    return {"ref": Budget("ref", dataclasses.replace(base, name="ref", max_steps=4), REFERENCE),
            "p2": Budget("p2", dataclasses.replace(base, name="p2", max_steps=2), PROXY)}


def _bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


# -- budgets: the finished runs keep their meaning ----------------------------------------------

def test_budget_table_keeps_what_the_finished_runs_measured():
    table = budget_table()
    ref = table["reference"].config
    assert (ref.epochs, ref.batch_size, ref.checkpoint_every_epochs, ref.val_limit, ref.layerwise,
            ref.evaluate_test, ref.base_learning_rate) == (2.0, 128, 0.1, None, False, False, 0.016)
    assert table["reference"].checkpoint and table["reference"].is_reference
    for name in ("r16-s30", "r16-s60", "r16-s120", "r16-s240", "r32-s40", "r32-s120"):
        c = table[name].config
        res, steps = (int(x) for x in name[1:].split("-s"))
        assert (c.max_steps, c.input_size, c.batch_size, c.val_limit, c.layerwise) == (steps, res, 32, 1000, True)
    for row in read_rows(RUNS / "results.jsonl"):  # every committed run still reads as its budget
        b = table[row["budget"]]
        assert row["config_name"] == b.name or b.role == RETIRED  # ref-e1 ran as "reference"
        if b.images is not None:
            assert row["images"] == b.images
        assert row["input_size"] == (b.config.input_size or 32)


# -- select -------------------------------------------------------------------------------------

def test_committed_selection_keeps_the_runs_of_the_first():
    sel = read_selection(RUNS / "archs.json")
    assert sel.has_header and (sel.space, sel.setting) == ("mnasnet", "fmnist")
    by_name = sel.by_name()
    assert {n: by_name[n].arch_id for n in KEPT} == KEPT
    for w in ("mobilenetv2-0.35", "mobilenetv2-0.5", "mobilenetv2-0.75", "mobilenetv2"):
        assert by_name[w].arch_id == reference(w, "fmnist").arch_id
    space = [c for c in sel.candidates if c.name.startswith("space-")]
    edges = bin_edges(sel.latency_range, sel.bins)
    assert len(sel.candidates) >= 20 and len(space) >= 16
    assert {bin_of(c.relative_latency, edges) for c in space} >= set(range(16))  # every bin filled
    check_rows(read_rows(RUNS / "results.jsonl"), sel, RUNS / "results.jsonl")  # the campaign's rows fit
    cached = json.loads((RUNS / "zero_cost.json").read_text())["scores"]
    assert set(sel.by_id()) <= set(cached)  # the report's zero-cost baseline costs nothing more


class _StandIn:
    """The measurement of `select` replaced by a function of MACs (see the module docstring)."""

    calls: list[int] = []

    def __init__(self, device, workdir, progress):
        pass

    def __enter__(self):
        def measure(specs):
            _StandIn.calls.append(len(specs))
            return [arch_macs(s) / 8.0e7 for s in specs]
        return measure

    def __exit__(self, *exc):
        pass


def test_select_keeps_binned_candidates_and_fills_the_empty_bins(tmp_path, monkeypatch, capsys):
    from mnas_jax.cli import proxy_cmds

    monkeypatch.setattr(proxy_cmds, "_device_measure", _StandIn)
    space = get_space("mnasnet", "fmnist")
    edges = bin_edges((0.3, 2.0), 4)  # bins 0.3-0.48-0.77-1.24-2.0
    old_specs = sample_specs(space, 60, seed=3)
    rel = {s.arch_id: arch_macs(s) / 8.0e7 for s in old_specs}
    in_top = [s for s in old_specs if bin_of(rel[s.arch_id], edges) == 3][:2]  # two crowd the top bin
    outside = [s for s in old_specs if bin_of(rel[s.arch_id], edges) is None][:1]
    old = [Candidate(f"space-{i:02d}", s.arch_id, s.to_string(), rel[s.arch_id], arch_macs(s))
           for i, s in enumerate(in_top + outside)]
    (tmp_path / "archs.json").write_text(json.dumps([c.to_row() for c in old]))  # the first format
    args = ["proxy", "select", "--workdir", str(tmp_path), "--pool", "16", "--bins", "4", "--seed", "5",
            "--widths", "mobilenetv2-0.5,mobilenetv2", "--quiet", "--json"]
    assert main(args) == 0
    sel = read_selection(tmp_path / "archs.json")
    assert (sel.space, sel.setting, sel.seed, sel.bins) == ("mnasnet", "fmnist", 5, 4)
    assert json.loads(capsys.readouterr().out)["selection_id"] == sel.selection_id
    names = sel.by_name()
    best = min(in_top, key=lambda s: abs(math.log(rel[s.arch_id]) - math.log(math.sqrt(edges[3] * edges[4]))))
    kept = [n for n, c in names.items() if c.arch_id in {s.arch_id for s in in_top + outside}]
    assert [names[n].arch_id for n in kept] == [best.arch_id]  # the one nearest the bin's centre
    assert set(sel.notes["dropped"]) == {c.name for c in old} - set(kept)
    new = [c for c in sel.candidates if c.name.startswith("space-") and c.name not in kept]
    assert all(int(c.name.split("-")[1]) >= 3 for c in new)  # names never reused
    bins = sorted(bin_of(c.relative_latency, edges) for c in sel.candidates if c.name.startswith("space-"))
    assert bins == [0, 1, 2, 3] and sel.notes["empty_bins"] == []
    assert [c.name for c in sel.candidates[-2:]] == ["mobilenetv2-0.5", "mobilenetv2"]
    assert (tmp_path / "archs.previous.json").exists()
    before = _bytes(tmp_path / "archs.json")
    assert main(args) == 2  # a selection with a header is never replaced without --keep
    assert _bytes(tmp_path / "archs.json") == before


def _pass(values: dict[str, float], refs: list[tuple[float, float]]):
    """An interleaved pass over `values` (key -> relative) with reference (median, cv) pairs."""
    from latency.interleaved import CandidateResult, InterleavedResult
    from latency.measurement import Measurement

    def m(median, cv=0.01):
        return Measurement(median, median, 0.0, cv, 50, 5, 0.1, None)

    points = tuple(m(med, cv) for med, cv in refs)
    cands = tuple(CandidateResult(k, "h", m(v * refs[i][0]), refs[i][0], v) for i, (k, v) in enumerate(values.items()))
    return InterleavedResult(cands, points, "r")


def test_only_values_beside_steady_references_count():
    from mnas_jax.fidelity.measuring import measure_steady, steady_values

    quiet = [(2.0, 0.02)] * 4
    assert steady_values(_pass({"a": 0.5, "b": 0.7, "c": 0.9}, quiet)) == {"a": 0.5, "b": 0.7, "c": 0.9}
    disturbed = [(2.0, 0.02), (6.2, 0.02), (2.0, 0.9), (2.05, 0.02)]  # a jump, then scattered runs
    assert steady_values(_pass({"a": 0.5, "b": 0.7, "c": 0.9}, disturbed)) == {}
    assert steady_values(_pass({"a": 0.5, "b": 0.7, "c": 0.9}, [(2.0, 0.02), (2.1, 0.02), (2.0, 0.9), (2.0, 0.02)])) == {"a": 0.5}
    space = get_space("mnasnet", "fmnist")
    specs = sample_specs(space, 3, seed=1)
    seen = []

    def one_pass(batch):  # the first pass disturbed between the second and third architectures
        seen.append([s.arch_id for s in batch])
        refs = [(2.0, 0.02)] * (len(batch) + 1)
        if len(seen) == 1:
            refs[2] = (4.0, 0.5)
        return _pass({s.arch_id: 0.1 * (i + 1) * len(seen) for i, s in enumerate(batch)}, refs)

    values = measure_steady(one_pass, specs, passes=2)
    assert [len(b) for b in seen] == [3, 3, 2]  # the second and third needed a third pass
    assert values == pytest.approx([0.15, 0.35, 0.6])  # medians of the steady values


@pytest.mark.slow
def test_select_measures_on_the_real_local_device(tmp_path):
    space_name = "mnasnet@op=2,kernel=0,se=0,skip=1,filters=1"
    assert main(["proxy", "select", "--space", space_name, "--workdir", str(tmp_path), "--pool", "6",
                 "--rounds", "1", "--bins", "3", "--range", "0.05,3.0", "--widths", "mobilenetv2-0.35",
                 "--quiet"]) == 0
    sel = read_selection(tmp_path / "archs.json")
    assert sel.space == space_name and sel.candidates[-1].name == "mobilenetv2-0.35"
    assert all(0 < c.relative_latency < 3 for c in sel.candidates)
    assert (tmp_path / "store.sqlite").exists() or any(tmp_path.glob("*.sqlite"))


# -- train --------------------------------------------------------------------------------------

def test_train_appends_each_run_and_resumes_after_a_kill(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(budgets_mod, "budget_table", _tiny_budgets)
    write_selection(tmp_path / "archs.json", _tiny_selection())
    args = ["proxy", "train", "--workdir", str(tmp_path), "--budget", "ref,p2", "--repeat-reference", "1",
            "--quiet", "--json"]
    assert main(args) == 0
    results = tmp_path / "results.jsonl"
    rows = read_rows(results)
    keys = [(r["name"], r["budget"], r["seed"]) for r in rows]
    assert sorted(keys) == sorted([("tiny-0", "ref", 0), ("tiny-0", "p2", 0), ("tiny-0", "p2", 1),
                                   ("tiny-1", "ref", 0), ("tiny-1", "p2", 0), ("tiny-1", "p2", 1),
                                   ("tiny-0", "ref", 1)])
    for r in rows:
        assert r["status"] == "ok" and r["images"] == r["steps"] * 8 and r["input_size"] == 16
        assert list(r)[:7] == ["arch_id", "name", "budget", "seed", "wall_seconds", "images", "input_size"]
    capsys.readouterr()
    # a kill: three runs done, the fourth cut while it was being appended
    lines = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(lines[:3]) + lines[3][:40])
    assert main(["proxy", "train", *args[2:], "--dry-run"]) == 0
    assert len(json.loads(capsys.readouterr().out)["todo"]) == 4
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["appended"]) == 4 and out["skipped"] == 3
    after = results.read_bytes()
    assert after.startswith(b"".join(lines[:3]))  # finished runs untouched, the cut line gone
    assert sorted((r["name"], r["budget"], r["seed"]) for r in read_rows(results)) == sorted(keys)
    assert main(args) == 0 and results.read_bytes() == after  # nothing left to do


def test_reference_runs_checkpoint_under_the_workdir(tmp_path, monkeypatch, capsys):
    """A checkpointed budget (the reference's kind: whole network, every 0.1 epoch) saves under
    WORKDIR/checkpoints/{arch_id}-{budget}-{seed}, where the same command resumes it."""
    base = _tiny_budgets()["ref"].config
    ckpt = Budget("ckpt", dataclasses.replace(base, name="ckpt", layerwise=False, checkpoint_every_epochs=0.1),
                  REFERENCE, checkpoint=True)
    monkeypatch.setattr(budgets_mod, "budget_table", lambda: {"ckpt": ckpt})
    sel = _tiny_selection()
    write_selection(tmp_path / "archs.json", sel)
    assert main(["proxy", "train", "--workdir", str(tmp_path), "--budget", "ckpt", "--names", "tiny-0",
                 "--repeat-reference", "0", "--quiet", "--json"]) == 0
    run_dir = tmp_path / "checkpoints" / f"{sel.candidates[0].arch_id}-ckpt-0"
    assert run_dir.is_dir() and any(run_dir.iterdir())
    assert [r["steps"] for r in read_rows(tmp_path / "results.jsonl")] == [4]


@pytest.mark.slow
def test_train_on_ray_workers(tmp_path, monkeypatch, capsys):
    import os

    import ray

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(budgets_mod, "budget_table", _tiny_budgets)
    write_selection(tmp_path / "archs.json", _tiny_selection())
    assert main(["proxy", "train", "--workdir", str(tmp_path), "--budget", "p2", "--executor", "ray",
                 "--quiet", "--json"]) == 0
    assert not ray.is_initialized()
    rows = read_rows(tmp_path / "results.jsonl")
    assert sorted((r["name"], r["seed"]) for r in rows) == [("tiny-0", 0), ("tiny-0", 1), ("tiny-1", 0), ("tiny-1", 1)]


# -- bad input: one line, exit 2, no run lost ---------------------------------------------------

def _one_line_error(capsys, argv: list[str], needle: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnas: error: ") and len(err.strip().splitlines()) == 1 and needle in err, err


def test_bad_input_stops_in_one_line_and_loses_no_run(tmp_path, capsys):
    write_selection(tmp_path / "archs.json", _tiny_selection())
    results = tmp_path / "results.jsonl"
    results.write_bytes((RUNS / "results.jsonl").read_bytes())  # rows of the fmnist campaign
    before = _bytes(results)
    train = ["proxy", "train", "--workdir", str(tmp_path), "--quiet"]
    _one_line_error(capsys, [*train, "--budget", "reference,r16-s6"], "r16-s60")  # lists the valid ones
    _one_line_error(capsys, train, "another selection or setting")
    _one_line_error(capsys, ["proxy", "report", "--workdir", str(tmp_path), "--out", str(tmp_path)],
                    "another selection or setting")
    row = {**read_rows(RUNS / "results.jsonl")[0], "arch_id": _tiny_selection().candidates[0].arch_id}
    results.write_text(json.dumps(row) + "\n")  # a candidate's run under another name
    before = _bytes(results)
    _one_line_error(capsys, train, "another selection")
    assert _bytes(results) == before
    _one_line_error(capsys, ["proxy", "train", "--workdir", str(tmp_path / "none")], "mnas proxy select")
    assert not list(tmp_path.glob("*.png"))


def test_results_file_cuts_a_line_a_kill_left(tmp_path):
    path = tmp_path / "r.jsonl"
    append_row(path, {"arch_id": "a", "budget": "b", "seed": 0})
    with path.open("a") as f:
        f.write('{"arch_id": "a", "bud')
    assert len(read_rows(path)) == 1
    append_row(path, {"arch_id": "a", "budget": "b", "seed": 1})
    assert [r["seed"] for r in read_rows(path)] == [0, 1] and path.read_text().count("\n") == 2


# -- report -------------------------------------------------------------------------------------

def test_rank_statistics_against_closed_forms():
    rng = np.random.default_rng(1)
    x = rng.random(12)
    assert tau(x, x) == pytest.approx(1.0) and tau(x, -x) == pytest.approx(-1.0)
    assert bootstrap_tau(x, 2 * x + 1) == (1.0, 1.0)
    y = x + rng.normal(0, 0.3, 12)
    y[2] = y[5]  # a tie
    from scipy.stats import kendalltau

    assert taus_b(x[None], y[None])[0] == pytest.approx(kendalltau(x, y).statistic)
    ci = bootstrap_tau(x, y, resamples=1000, seed=0)
    assert ci[0] <= tau(x, y) <= ci[1] and ci == bootstrap_tau(x, y, resamples=1000, seed=0)
    assert top_overlap([1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]) == 0.0
    assert top_overlap([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 8, 6, 7]) == 0.5  # top 2: {6, 7} vs {5, 7}
    assert seed_tau(np.stack([x, x, x], axis=1)) == pytest.approx(1.0)
    assert agreement([1, 2, 3], [1, 2, 3])["kendall_tau"] is None  # fewer than 4: null


def test_recommended_is_the_cheapest_budget_that_beats_macs():
    def b(name, t, lo, cost):
        return {"name": name, "kendall_tau": t, "tau_ci": [lo, 1.0], "cost_s": cost}

    budgets = [b("slow", 0.9, 0.7, 100.0), b("fast", 0.7, 0.55, 10.0), b("noisy", 0.65, 0.2, 5.0),
               b("low", 0.5, 0.4, 1.0)]
    assert recommend(budgets, 0.5)[0] == "fast"
    assert recommend(budgets, 0.6)[0] == "slow"
    assert recommend(budgets, 0.7)[0] is None and recommend(budgets, None)[0] is None
    assert GOAL_TAU == 0.6


def _synthetic(n: int, ref_done: int):
    """n space candidates; reference accuracy rises with MACs except two swaps; budget `good`
    ranks exactly like the reference, `bad` backwards; a second reference seed on 4."""
    space = get_space("mnasnet", "fmnist")
    specs = sorted(sample_specs(space, n, seed=11), key=arch_macs)
    sel = Selection(tuple(Candidate(f"space-{i:02d}", s.arch_id, s.to_string(), 0.3 + 0.1 * i, arch_macs(s))
                          for i, s in enumerate(specs)), "mnasnet", "fmnist", 11, "local", "mobilenetv2",
                    (0.3, 2.0), 16)
    acc = np.linspace(0.80, 0.92, n)
    acc[[1, 2]] = acc[[2, 1]]
    acc[[5, 6]] = acc[[6, 5]]
    rows = []

    def row(c, budget, seed, a, wall):
        return {"arch_id": c.arch_id, "name": c.name, "budget": budget, "seed": seed, "wall_seconds": wall,
                "images": 3840, "input_size": 16, "status": "ok", "val_accuracy": float(a),
                "compile_seconds": 1.0, "train_seconds": wall - 1.0}

    for i, c in enumerate(sel.candidates):
        if i < ref_done:
            rows.append(row(c, "reference", 0, acc[i], 1000.0))
        if i < 4:
            rows.append(row(c, "reference", 1, acc[i] + 0.001 * (i % 2), 1000.0))
        for s in (0, 1):
            rows.append(row(c, "r16-s120", s, acc[i] / 2, 20.0))
            rows.append(row(c, "r16-s60", s, 1 - acc[i], 10.0))
    return sel, rows


def test_report_numbers_and_files(tmp_path):
    sel, rows = _synthetic(10, ref_done=10)
    table = budget_table()
    budgets = [table["reference"], table["r16-s60"], table["r16-s120"]]
    zero = {c.arch_id: float(i) for i, c in enumerate(sel.candidates)}  # ranks like the MACs
    summary = summarise(sel, rows, budgets, zero_cost=zero, resamples=1000)
    good = {b["name"]: b for b in summary["budgets"]}
    assert good["r16-s120"]["kendall_tau"] == pytest.approx(1.0) and good["r16-s120"]["tau_ci"] == [1.0, 1.0]
    assert good["r16-s120"]["top25_overlap"] == 1.0 and good["r16-s120"]["seed_tau"] == pytest.approx(1.0)
    assert good["r16-s60"]["kendall_tau"] == pytest.approx(-1.0) and good["r16-s60"]["cost_s"] == 10.0
    macs = summary["baselines"]["macs"]
    lo, hi = macs["tau_ci"]
    assert lo <= macs["kendall_tau"] <= hi and macs["kendall_tau"] == pytest.approx(1 - 2 * 2 / 45)
    assert summary["baselines"]["zero_cost"]["kendall_tau"] == macs["kendall_tau"]
    assert summary["recommended"] == "r16-s120"  # tau 1 >= 0.6, interval [1, 1] above MACs' 0.91
    assert summary["reference_seed_tau"] == pytest.approx(1.0) and summary["reference_seed_n"] == 4
    assert (summary["reference"]["epochs"], summary["reference"]["n_done"]) == (2.0, 10)
    paths = write_report(summary, tmp_path)
    data = json.loads(paths[0].read_text())
    assert {"n_archs", "reference", "budgets", "baselines", "reference_seed_tau", "recommended"} <= set(data)
    assert {"images", "input_size", "epochs"} <= set(data["reference"])
    assert {"name", "images", "input_size", "kendall_tau", "tau_ci", "spearman", "seed_tau",
            "cost_s"} <= set(data["budgets"][0])
    assert {"macs", "params", "zero_cost"} <= set(data["baselines"])
    assert {"kendall_tau", "tau_ci"} <= set(data["baselines"]["zero_cost"])
    assert "Recommended: r16-s120" in paths[1].read_text()
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_with_too_few_reference_runs_writes_nulls(tmp_path):
    sel, rows = _synthetic(8, ref_done=3)
    rows = [r for r in rows if not (r["budget"] == "reference" and r["seed"] == 1)]
    summary = summarise(sel, rows, list(budget_table().values()), resamples=100)
    assert summary["status"].startswith("3 of 8 candidates have a reference run")
    assert all(b["kendall_tau"] is None and b["tau_ci"] is None for b in summary["budgets"])
    assert summary["baselines"]["macs"]["kendall_tau"] is None and summary["recommended"] is None
    assert summary["reference_seed_tau"] is None and "4 needed" in summary["reference_seed_reason"]
    assert "3 of 8 candidates" in write_report(summary, tmp_path)[1].read_text()


def test_report_command_with_the_zero_cost_score(tmp_path, capsys):
    """End to end on a synthetic results file; the zero-cost score computed for real (tiny nets)
    and cached: the second report computes nothing."""
    from mnas_jax.fidelity import zero_cost

    sel = _tiny_selection()
    write_selection(tmp_path / "archs.json", sel)
    rows = [{"arch_id": c.arch_id, "name": c.name, "budget": "r16-s60", "seed": s, "wall_seconds": 3.0,
             "images": 1920, "input_size": 16, "status": "ok", "val_accuracy": 0.5, "compile_seconds": 1.0,
             "train_seconds": 2.0} for c in sel.candidates for s in (0, 1)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["proxy", "report", "--workdir", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet",
            "--zero-cost-batch", "16", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    scores = [c["zero_cost"] for c in out["candidates"]]
    assert all(s is not None and s > 0 for s in scores)
    assert out["status"].startswith("0 of 2") and out["recommended"] is None
    cache = json.loads((tmp_path / "zero_cost.json").read_text())
    assert cache["key"]["batch"] == 16 and len(cache["scores"]) == 2

    def fail(*a, **k):
        raise AssertionError("computed again instead of read from the cache")

    import unittest.mock

    with unittest.mock.patch.object(zero_cost, "grad_norm", fail):
        assert main(argv) == 0
    assert [c["zero_cost"] for c in json.loads(capsys.readouterr().out)["candidates"]] == scores
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "proxy_fidelity.json", "proxy_fidelity.md", "proxy_fidelity.png"]
