"""Training the candidates at the budgets: the runs to do, one run, and the driver that appends
each finished run to the results file at once (so the same command resumes after a kill).

Order: candidate by candidate (cheapest, dearest, second cheapest, ...: any prefix of the
campaign spans the latency range and has every budget of its candidates), each at every budget
(the reference with seed 0, the proxies with every seed); then the reference's other seeds for
the few candidates that measure the reference's own noise.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mnas_jax.fidelity.budgets import Budget
from mnas_jax.fidelity.candidates import Candidate
from mnas_jax.fidelity.results import RunKey, append_row, done_runs, read_rows
from mnas_jax.progress import Progress

StepCallback = Callable[[int, int, "float | None"], None]


@dataclasses.dataclass(frozen=True)
class Run:
    """One training to do: a candidate at a budget with a seed."""

    candidate: Candidate
    budget: Budget
    seed: int

    @property
    def key(self) -> RunKey:
        """(arch_id, budget, seed): the run's identity in the results file."""
        return (self.candidate.arch_id, self.budget.name, self.seed)

    @property
    def label(self) -> str:
        """'budget name seed N' for progress lines."""
        return f"{self.budget.name} {self.candidate.name} seed {self.seed}"


def interleaved(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Cheapest, dearest, second cheapest, ...: any prefix spans the latency range."""
    order = sorted(candidates, key=lambda c: c.relative_latency)
    out = []
    while order:
        out.append(order.pop(0))
        if order:
            out.append(order.pop())
    return out


def spread_by_latency(candidates: Sequence[Candidate], n: int) -> list[Candidate]:
    """``n`` candidates evenly spaced over the latency order (all when ``n`` >= their number)."""
    order = sorted(candidates, key=lambda c: c.relative_latency)
    if n >= len(order):
        return order
    return list(dict.fromkeys(order[int(round(i))] for i in np.linspace(0, len(order) - 1, max(n, 0))))


def plan_runs(order: Sequence[Candidate], budgets: Sequence[Budget], seeds: int,
              repeat_reference: Sequence[Candidate]) -> list[Run]:
    """Every run, in training order: each candidate of ``order`` at every budget (a reference
    with seed 0, a proxy with seeds 0..seeds-1), then the reference's seeds 1..seeds-1 for the
    candidates of ``repeat_reference`` that are in ``order``."""
    if seeds < 1:
        raise ValueError(f"seeds {seeds} must be >= 1")
    runs = [Run(c, b, s) for c in order for b in budgets
            for s in (range(1) if b.is_reference else range(seeds))]
    again = {c.arch_id for c in repeat_reference}
    runs += [Run(c, b, s) for c in order if c.arch_id in again for b in budgets if b.is_reference
             for s in range(1, seeds)]
    return runs


@functools.lru_cache(maxsize=4)
def open_source(data: str, data_dir: str | None, input_size: int, channels: int, num_classes: int) -> Any:
    """The data source shaped for an input size, opened once per process (a pure function of
    its arguments)."""
    from mnas_jax.data.spec import DataSpec, open_data

    return open_data(DataSpec.parse(data, data_dir), input_size=input_size, channels=channels,
                     num_classes=num_classes)


def train_run(spec_string: str, seed: int, budget: Budget, *, checkpoint_root: str | None = None,
              data: str = "fmnist", data_dir: str | None = None,
              on_step: StepCallback | None = None) -> dict[str, Any]:
    """Train one architecture at ``budget`` with ``seed``; the result row's measured part
    (wall_seconds, images, input_size, then the TrainResult). A checkpointed budget resumes
    from ``checkpoint_root/{arch_id}-{budget}-{seed}``."""
    import jax

    from mnas_jax.space import ArchSpec
    from mnas_jax.train.loop import train_and_evaluate

    spec = ArchSpec.from_string(spec_string)
    config = budget.config
    size = config.input_size or spec.input_size
    if budget.checkpoint and checkpoint_root is not None:
        run_dir = Path(checkpoint_root) / f"{spec.arch_id}-{budget.name}-{seed}"
        config = dataclasses.replace(config, checkpoint_dir=str(run_dir.resolve()))
    source = open_source(data, data_dir, size, spec.input_channels, spec.num_classes)
    start = time.perf_counter()
    res = train_and_evaluate(spec, config, jax.random.key(seed), source, on_step=on_step)
    wall = time.perf_counter() - start
    return {"wall_seconds": wall, "images": res.steps * config.batch_size, "input_size": size,
            **res.to_dict()}


def result_row(run: Run, measured: dict[str, Any]) -> dict[str, Any]:
    """The results file's row of a finished run (the keys of every row so far, in order)."""
    c = run.candidate
    return {"arch_id": c.arch_id, "name": c.name, "budget": run.budget.name, "seed": run.seed, **measured}


#: Called once per finished run: the run, its measured part (None when training raised) and why not.
OnDone = Callable[[Run, "dict[str, Any] | None", "str | None"], None]


class Runner(Protocol):
    """Trains a group of runs of one budget (in this process or on workers) and calls
    ``on_done`` as each one ends; ``on_step`` (in-process only) sees the steps of the run in
    flight."""

    def __call__(self, budget: Budget, runs: Sequence[Run], on_done: OnDone,
                 on_step: Callable[[Run], StepCallback | None]) -> None:
        """Train ``runs`` (all at ``budget``)."""


def groups(runs: Sequence[Run], by_budget: bool) -> list[list[Run]]:
    """Runs split into groups of one budget: consecutive runs (order kept) or, ``by_budget``,
    every run of a budget together (a parallel runner starts a whole group at once)."""
    out: list[list[Run]] = []
    if by_budget:
        index: dict[str, list[Run]] = {}
        for r in runs:
            index.setdefault(r.budget.name, []).append(r)
        return list(index.values())
    for r in runs:
        if out and out[-1][0].budget.name == r.budget.name:
            out[-1].append(r)
        else:
            out.append([r])
    return out


@dataclasses.dataclass
class TrainSummary:
    """What a `train_missing` call did: runs appended, runs that raised, runs already done."""

    appended: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (run label, reason)
    skipped: int = 0


def train_missing(runs: Sequence[Run], results: str | Path, runner: Runner, *, parallel: bool = False,
                  progress: bool = True) -> TrainSummary:
    """Train the runs the results file lacks, appending each row as its run ends.

    The file is read again before each group, so two trainers sharing it (e.g. references on
    one core, proxies on the other) do not repeat each other's finished runs.
    """
    summary = TrainSummary()
    done = done_runs(read_rows(results))
    todo = [r for r in runs if r.key not in done]
    summary.skipped = len(runs) - len(todo)
    with Progress("proxy train", len(todo), enabled=progress) as bar:
        count = 0

        def on_done(run: Run, measured: dict[str, Any] | None, reason: str | None) -> None:
            nonlocal count
            count += 1
            if measured is None:
                summary.failed.append((run.label, reason or "unknown"))
                note = f"{run.label}: failed ({reason})"
            else:
                row = result_row(run, measured)
                append_row(results, row)
                summary.appended.append(row)
                acc = row.get("val_accuracy")
                shown = "-" if acc is None else f"{acc:.4f}"
                note = f"{run.label}: acc {shown} in {row['wall_seconds']:.0f} s"
            bar.update(count, note=note)

        def on_step(run: Run) -> StepCallback | None:
            if not progress:
                return None
            bar.update(count, description=f"proxy train: {run.label}")

            def step(i: int, total: int, loss: float | None) -> None:
                bar.update(count, note=f"step {i}/{total}" + ("" if loss is None else f", loss {loss:.3f}"))

            return step

        for group in groups(todo, by_budget=parallel):
            fresh = done_runs(read_rows(results))
            by_others = [r for r in group if r.key in fresh]  # another trainer finished them
            count += len(by_others)
            summary.skipped += len(by_others)
            group = [r for r in group if r.key not in fresh]
            if group:
                runner(group[0].budget, group, on_done, on_step)
    return summary
