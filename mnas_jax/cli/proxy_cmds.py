"""`mnas proxy select | train | report`: does the search's proxy training rank architectures like
a longer reference training, on your space and setting, and which proxy budget should it use?

    mnas proxy select --setting fmnist --workdir W     # candidates stratified over measured latency
    mnas proxy train --workdir W                       # reference + proxy budgets, resumable
    mnas proxy report --workdir W                      # -> benchmarks/reports/proxy_fidelity.*

The logic lives in `mnas_jax.fidelity`; this module parses, checks, wires the device and the
executors, and prints.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnas_jax.cli.errors import UserError, one_line
from mnas_jax.cli.output import print_json, print_table

DEFAULT_WORKDIR = "runs/proxy-fidelity"
DEFAULT_OUT = "benchmarks/reports"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `proxy` command group (select, train, report) to the CLI."""
    cmds = sub.add_parser("proxy", help="proxy fidelity: candidates, proxy + reference trainings, rank "
                          "report").add_subparsers(dest="proxy_command", metavar="SUBCOMMAND", required=True)
    for add in (_add_select, _add_train, _add_report):  # then the options every subcommand has
        q = add(cmds)
        q.add_argument("--workdir", default=DEFAULT_WORKDIR,
                       help=f"archs.json, results.jsonl, checkpoints, store (default {DEFAULT_WORKDIR})")
        q.add_argument("--json", action="store_true", help="print the result as one JSON line")
        q.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr)")


def _add_select(cmds: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from mnas_jax.fidelity.selection import LATENCY_RANGE, N_BINS, WIDTHS

    s = cmds.add_parser("select", help="pick correlation candidates stratified over measured latency")
    s.add_argument("--space", default="mnasnet", help="search space (or a slice BASE@ITEMS)")
    s.add_argument("--setting", default="fmnist", help="setting of the space (the search's)")
    s.add_argument("--device", default="local", help="latency device that measures the pool")
    s.add_argument("--pool", type=int, default=48, help="architectures measured in the first round")
    s.add_argument("--seed", type=int, default=2026, help="seed of the sampled pool")
    s.add_argument("--rounds", type=int, default=3,
                   help="measuring rounds: the pool, then guided rounds for the bins still empty")
    s.add_argument("--per-bin", type=int, default=3, help="architectures measured per empty bin in a guided round")
    s.add_argument("--bins", type=int, default=N_BINS, help="log-latency bins, one candidate each")
    s.add_argument("--range", default=f"{LATENCY_RANGE[0]},{LATENCY_RANGE[1]}",
                   help="latency range relative to the reference model, LOW,HIGH")
    s.add_argument("--widths", default=",".join(WIDTHS), help="reference models added as candidates")
    s.add_argument("--keep", type=Path, default=None,
                   help="earlier archs.json whose candidates inside a bin are kept (names, ids; "
                        "measured again); only the empty bins are filled (automatic for an "
                        "archs.json of the first format in --workdir)")
    s.add_argument("--keep-names", default=None,
                   help="comma-separated names of --keep to keep wherever they fall (they have runs; "
                        "default: the one nearest each bin's centre)")
    s.set_defaults(func=_select)
    return s


def _add_train(cmds: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from mnas_jax.fidelity.budgets import DEFAULT_TRAIN

    t = cmds.add_parser("train", help="train the candidates at the budgets; resumes where it stopped")
    t.add_argument("--budget", default=",".join(DEFAULT_TRAIN), help="comma-separated budget names")
    t.add_argument("--names", default=None, help="comma-separated candidates to train, in this order "
                                                 "(default: all, cheapest and dearest alternating)")
    t.add_argument("--seeds", type=int, default=2, help="seeds per proxy budget (and of the repeated reference)")
    t.add_argument("--repeat-reference", default="4",
                   help="candidates also trained at the reference with the other seeds (its noise "
                        "ceiling): a count spread over latency, or comma-separated names")
    t.add_argument("--results", type=Path, default=None, help="results file (default WORKDIR/results.jsonl)")
    t.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where runs train: in this process, or each as a Ray task")
    t.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    t.add_argument("--child-resources", default='{"CPU": 1}',
                   help='Ray resources of each run, JSON (e.g. {"GPU": 1})')
    t.add_argument("--data", default="fmnist", help="training data: fmnist or tfds:NAME[/CONFIG][:SPLIT]")
    t.add_argument("--data-dir", default=None, help="where --data lives (default: Fashion-MNIST's)")
    t.add_argument("--dry-run", action="store_true", help="print the runs still to do and stop")
    t.set_defaults(func=_train)
    return t


def _add_report(cmds: argparse._SubParsersAction) -> argparse.ArgumentParser:
    r = cmds.add_parser("report", help="rank agreement of each proxy with the reference -> md/json/png")
    r.add_argument("--results", type=Path, default=None, help="results file (default WORKDIR/results.jsonl)")
    r.add_argument("--out", type=Path, default=Path(DEFAULT_OUT),
                   help=f"directory of proxy_fidelity.{{md,json,png}} (default {DEFAULT_OUT})")
    r.add_argument("--seeds", type=int, default=2, help="seeds per proxy budget")
    r.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of each interval")
    r.add_argument("--no-zero-cost", action="store_true", help="skip the zero-cost baseline")
    r.add_argument("--zero-cost-batch", type=int, default=64, help="images in the zero-cost score's batch")
    r.add_argument("--data", default="fmnist", help="data of the zero-cost batch (as for train)")
    r.add_argument("--data-dir", default=None, help="where --data lives (default: Fashion-MNIST's)")
    r.set_defaults(func=_report)
    return r


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n for n in text.split(",") if n.strip()]


def _workdir(args: argparse.Namespace) -> Path:
    from latency.workdir import Workdir

    return Workdir.of(args.workdir).root  # a local disk (the proxy tool's own files live here)


def _span(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--range {text!r}: give LOW,HIGH, e.g. 0.3,2.0") from None
    return lo, hi


# -- select -------------------------------------------------------------------------------------

def _select(args: argparse.Namespace) -> int:
    from mnas_jax.fidelity.candidates import read_selection, write_selection
    from mnas_jax.fidelity.results import read_rows
    from mnas_jax.fidelity.selection import select_candidates
    from mnas_jax.space import get_space

    workdir = _workdir(args)
    target = workdir / "archs.json"
    keep_path = args.keep
    if target.exists() and keep_path is None:
        if read_selection(target).has_header:
            raise UserError(f"{target} exists and its runs refer to it: pass --keep {target} to keep its "
                            "candidates that lie in a bin and fill the others, or move it away")
        keep_path = target  # the first format: keep what is stratified, refill the rest
    keep = read_selection(keep_path) if keep_path is not None else None
    if keep is not None and keep.setting not in (None, args.setting):
        raise UserError(f"--keep {keep_path} is a selection of setting {keep.setting!r}, "
                        f"not {args.setting!r}")
    space = get_space(args.space, args.setting)
    if space.reference_name is None:
        raise UserError(f"space {args.space!r} in setting {args.setting!r} has no reference model to "
                        "measure latency against; choose another --setting")
    if args.pool < 1 or args.rounds < 1:
        raise UserError(f"--pool {args.pool} and --rounds {args.rounds} must be >= 1")
    taken = [r.get("name", "") for r in read_rows(workdir / "results.jsonl")]
    with _device_measure(args.device, workdir, not args.quiet) as measure:
        selection = select_candidates(
            space, measure, pool=args.pool, seed=args.seed, keep=keep, keep_names=_names(args.keep_names),
            taken_names=taken, widths=_names(args.widths) or [], span=_span(args.range), bins=args.bins,
            rounds=args.rounds, per_bin=args.per_bin, device=args.device)
    if target.exists():
        shutil.copy2(target, workdir / "archs.previous.json")
    write_selection(target, selection)
    if args.json:
        print_json(selection.to_json())
        return 0
    from mnas_jax.fidelity.selection import bin_edges, bin_of

    edges = bin_edges(selection.latency_range or _span(args.range), selection.bins or args.bins)
    print_table(f"mnas proxy select: {len(selection.candidates)} candidates -> {target}",
                ("name", "arch_id", "x reference", "bin", "MMACs"),
                [(c.name, c.arch_id, f"{c.relative_latency:.3f}", _or_dash(bin_of(c.relative_latency, edges)),
                  f"{c.macs / 1e6:.1f}") for c in selection.candidates])
    notes = selection.notes
    if notes.get("empty_bins"):
        print(f"bins left empty (no measured architecture inside): {notes['empty_bins']}")
    if notes.get("dropped"):
        print(f"dropped from the earlier selection: {', '.join(notes['dropped'])}")
    if notes.get("outside_range"):
        print(f"kept outside the latency range: {', '.join(notes['outside_range'])}")
    if "reference_as_candidate" in notes:
        print(f"{selection.reference} measured as a candidate: {notes['reference_as_candidate']:.3f} x itself "
              "(1.0 in a steady session)")
    return 0


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


class _device_measure:
    """A context manager giving `measure(specs) -> relative latencies` on an open device session:
    interleaved passes, each stored, values kept only beside steady references (see
    mnas_jax.fidelity.measuring)."""

    def __init__(self, device: str, workdir: Path, progress: bool) -> None:
        self.device, self.workdir, self.progress = device, workdir, progress

    def __enter__(self):
        from latency.session import DeviceSession
        from mnas_jax.fidelity.measuring import measure_steady

        self.session = DeviceSession.open(self.device, self.workdir)

        def one_pass(specs: Sequence[Any]) -> Any:
            return self.session.measure_archs(list(specs), rounds=1, progress=self.progress)

        return lambda specs: measure_steady(one_pass, specs)

    def __exit__(self, *exc: object) -> None:
        self.session.close()


# -- train --------------------------------------------------------------------------------------

def _child(spec_string: str, seed: int, budget: Any, checkpoint_root: str, data: str,
           data_dir: str | None, on_step: Any = None) -> Any:
    """One run as an executor child (a top-level function Ray ships): the result row in `extra`."""
    from mnas_jax.train.runtime import prepare_process

    prepare_process()  # XLA flags and the shared compilation cache, before the first JAX computation
    from mnas_jax.fidelity.training import train_run
    from mnas_jax.search.types import ChildResult

    row = train_run(spec_string, seed, budget, checkpoint_root=checkpoint_root, data=data,
                    data_dir=data_dir, on_step=on_step)
    return ChildResult(row["arch_id"], "ok" if row["status"] == "ok" else "failed", row["val_accuracy"],
                       row["reason"], row["wall_seconds"], {"row": row})


class _ExecutorRunner:
    """Runs groups of one budget through a search executor (local: one by one with step
    progress; Ray: the whole group at once)."""

    def __init__(self, executor: Any, in_process: bool, **child: Any) -> None:
        self.executor, self.in_process, self.child = executor, in_process, child

    def __call__(self, budget: Any, runs: Sequence[Any], on_done: Any, on_step: Any) -> None:
        def deliver(batch: Sequence[Any]):
            return lambda i, r: on_done(batch[i], r.extra.get("row"), r.reason)

        if self.in_process:
            for run in runs:
                self.executor.train_fn = functools.partial(_child, budget=budget, on_step=on_step(run),
                                                           **self.child)
                self.executor.evaluate([run.candidate.arch], [run.seed], deliver([run]))
            return
        self.executor.train_fn = functools.partial(_child, budget=budget, **self.child)
        self.executor.evaluate([r.candidate.arch for r in runs], [r.seed for r in runs], deliver(runs))


def _repeat(text: str, selection: Any) -> list[Any]:
    from mnas_jax.fidelity.training import spread_by_latency

    if text.strip().isdigit():
        return spread_by_latency(selection.candidates, int(text))
    return selection.pick(_names(text) or [])


def _plan(args: argparse.Namespace, workdir: Path) -> tuple[Any, list[Any], Path]:
    """Check everything a training needs before any run: the selection, the budgets, the results
    file's rows; ValueError/FileNotFoundError in one line otherwise."""
    from mnas_jax.fidelity.budgets import budget_table, pick_budgets
    from mnas_jax.fidelity.candidates import read_selection
    from mnas_jax.fidelity.results import check_rows, read_rows
    from mnas_jax.fidelity.training import interleaved, plan_runs

    budgets = pick_budgets(_names(args.budget) or [], budget_table())
    selection = read_selection(workdir / "archs.json")
    results = args.results or workdir / "results.jsonl"
    check_rows(read_rows(results), selection, results)
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds} must be >= 1")
    names = _names(args.names)
    order = selection.pick(names) if names else interleaved(selection.candidates)
    runs = plan_runs(order, budgets, args.seeds, _repeat(args.repeat_reference, selection))
    return selection, runs, results


def _make_executor(args: argparse.Namespace) -> Any:
    from mnas_jax.search.executors import LocalExecutor, RayExecutor

    if args.executor == "local":
        return LocalExecutor(_child)
    try:
        resources = json.loads(args.child_resources)
    except json.JSONDecodeError as e:
        raise UserError(f"--child-resources {args.child_resources!r} is not JSON ({e})") from None
    return RayExecutor(_child, address=args.address, resources=resources)


def _train(args: argparse.Namespace) -> int:
    from mnas_jax.fidelity.results import done_runs, read_rows
    from mnas_jax.fidelity.training import train_missing

    workdir = _workdir(args)
    _, runs, results = _plan(args, workdir)
    if args.dry_run:
        done = done_runs(read_rows(results))
        todo = [r for r in runs if r.key not in done]
        if args.json:
            print_json({"todo": [[r.candidate.name, r.budget.name, r.seed] for r in todo],
                        "done": len(runs) - len(todo)})
        else:
            print_table(f"mnas proxy train: {len(todo)} runs to do ({len(runs) - len(todo)} done)",
                        ("candidate", "budget", "seed"),
                        [(r.candidate.name, r.budget.name, r.seed) for r in todo])
        return 0
    data_dir = None if args.data_dir is None else str(Path(args.data_dir).resolve())
    if runs:  # the data opens here first (one line if it cannot), then stays open for local runs
        from mnas_jax.fidelity.training import open_source

        spec = runs[0].candidate.arch
        open_source(args.data, data_dir, runs[0].budget.config.input_size or spec.input_size,
                    spec.input_channels, spec.num_classes)
    executor = _make_executor(args)
    runner = _ExecutorRunner(executor, args.executor == "local", data=args.data, data_dir=data_dir,
                             checkpoint_root=str((workdir / "checkpoints").resolve()))
    try:
        summary = train_missing(runs, results, runner, parallel=args.executor == "ray",
                                progress=not args.quiet)
    finally:
        if hasattr(executor, "shutdown"):
            executor.shutdown()
    if args.json:
        print_json({"appended": summary.appended, "failed": summary.failed, "skipped": summary.skipped,
                    "results": str(results)})
    else:
        print_table(f"mnas proxy train: {len(summary.appended)} runs appended to {results} "
                    f"({summary.skipped} done before)", ("candidate", "budget", "seed", "val acc", "wall s"),
                    [(r["name"], r["budget"], r["seed"], _or_dash(r.get("val_accuracy")),
                      f"{r['wall_seconds']:.0f}") for r in summary.appended])
    if summary.failed:  # a failure of the training machinery, not of the user: status 1
        print(f"mnas: error: {len(summary.failed)} run(s) raised and were not recorded (the same command "
              "retries them): " + "; ".join(f"{label}: {one_line(Exception(why))}"
                                            for label, why in summary.failed),
              file=sys.stderr)
        return 1
    return 0


# -- report -------------------------------------------------------------------------------------

def _zero_cost(args: argparse.Namespace, selection: Any, workdir: Path) -> dict[str, float]:
    from mnas_jax.fidelity.training import open_source
    from mnas_jax.fidelity.zero_cost import cached_scores, first_batch
    from mnas_jax.progress import Progress

    specs = [c.arch for c in selection.candidates]

    def batch_of(spec: Any):
        source = open_source(args.data, args.data_dir, spec.input_size, spec.input_channels,
                             spec.num_classes)
        return first_batch(source, args.zero_cost_batch)

    with Progress("zero-cost scores", len(specs), enabled=not args.quiet) as bar:
        return cached_scores(specs, workdir / "zero_cost.json", batch_of, batch=args.zero_cost_batch,
                             on_score=lambda s: bar.advance())


def _report(args: argparse.Namespace) -> int:
    from mnas_jax.fidelity.budgets import DEFAULT_TRAIN, PROXY, budget_table
    from mnas_jax.fidelity.candidates import read_selection
    from mnas_jax.fidelity.report import fmt as _fmt
    from mnas_jax.fidelity.report import summarise, write_report
    from mnas_jax.fidelity.results import check_rows, read_rows

    workdir = _workdir(args)
    selection = read_selection(workdir / "archs.json")
    results = args.results or workdir / "results.jsonl"
    rows = read_rows(results)
    check_rows(rows, selection, results)
    if args.resamples < 1:
        raise UserError(f"--resamples {args.resamples} must be >= 1")
    trained = {r["budget"] for r in rows}
    budgets = [b for b in budget_table().values()
               if b.role != PROXY or b.name in DEFAULT_TRAIN or b.name in trained]
    zero = None if args.no_zero_cost else _zero_cost(args, selection, workdir)
    summary = summarise(selection, rows, budgets, seeds=args.seeds, zero_cost=zero,
                        resamples=args.resamples)
    paths = write_report(summary, args.out)
    if args.json:
        print_json(summary)
        return 0
    print_table(f"mnas proxy report: {summary['status']}",
                ("budget", "n", "tau", "95% interval", "seed tau", "s/child"),
                [(b["name"], b["n"], _fmt(b["kendall_tau"]), _fmt(b["tau_ci"]), _fmt(b["seed_tau"]),
                  _fmt(b["cost_s"], 1)) for b in summary["budgets"]]
                + [(f"({name})", b["n"], _fmt(b["kendall_tau"]), _fmt(b["tau_ci"]), "-", "-")
                   for name, b in summary["baselines"].items()])
    print(f"recommended: {summary['recommended'] or 'none'} ({summary['recommended_reason']})")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
