"""A search over a tabular benchmark: the real search step (controller, MnasNet reward, target,
screening) with ACC(m) and LAT(m) read from the table, no training and no device.

`search_table` runs in memory and returns every sample (benchmarks, tests); `run_tabular_search`
runs the same steps through the search loop with its checkpoint and a JSON-lines sample file in a
work directory, so a killed search resumes with nothing lost or repeated.

The search's pick after N samples is the architecture with the highest reward the search itself
saw (one seed's accuracy per query, averaged over the queries of the same architecture); it is judged by its TRUE reward (the mean accuracy over the table's seeds)
against the table's optimal true reward: regret = optimum - true reward of the pick.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from latency.workdir import Workdir
from mnas_jax.controller.ppo import PPOConfig
from mnas_jax.reward import RewardConfig, Target
from mnas_jax.search.loop import check_fresh, run_loop
from mnas_jax.search.searchers import SEARCHER_NAMES, make_searcher, searcher_from_bytes
from mnas_jax.search.step import LoopConfig, child_seed, search_step
from mnas_jax.search.tabular.parts import TableEvaluator, TableLatency, TabularSpace
from mnas_jax.search.tabular.table import TabularBenchmark

_PERCENTILE = re.compile(r"^\s*p(?P<q>[0-9]+(?:\.[0-9]+)?)\s*$")


@dataclasses.dataclass(frozen=True)
class TabularSearchConfig:
    """One search over a table: searcher, sample budget, reward, target, screening, seed."""

    searcher: str = "ppo"
    samples: int = 200  # trained (unscreened) children
    batch_size: int | None = None  # children per controller step (None: the searcher's tuned one)
    reward: str = "soft"
    target: str = "p50"  # '<ms>ms', '<factor>x <row name>' or 'p<percentile>' of the latency column
    latency: str | None = None  # the latency column (None: the only one)
    screen_factor: float | None = 1.5
    seed: int = 0
    ppo: PPOConfig | None = None  # the controller's config for ppo/reinforce (None: tuned default)
    population_size: int | None = None  # regularised evolution (None: tuned)
    sample_size: int | None = None

    def resolved(self) -> TabularSearchConfig:
        """The config with every None filled from the searcher's tuned settings (`tuned`)."""
        fill = {k: v for k, v in tuned(self.searcher).items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill) if fill else self

    def __post_init__(self) -> None:
        if self.searcher not in SEARCHER_NAMES:
            raise ValueError(f"unknown searcher {self.searcher!r}; choose one of {list(SEARCHER_NAMES)}")
        if self.samples < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ValueError(f"samples={self.samples} and batch_size={self.batch_size} must be >= 1")
        if self.reward not in ("soft", "hard"):
            raise ValueError(f"reward={self.reward!r}; use 'soft' or 'hard'")

    @property
    def steps(self) -> int:
        """Controller steps that train at least `samples` children."""
        return math.ceil(self.samples / (self.resolved().batch_size or 1))


def tuned(searcher: str) -> dict[str, Any]:
    """The settings benchmarks/search_tabular.py chose for a searcher (tuned on ONE target: soft
    reward, T = the median latency of NAS-Bench-Macro; search_tabular_tune.json)."""
    from mnas_jax.controller.policy import PolicyConfig
    from mnas_jax.search.searchers import reinforce_config

    if searcher == "ppo":
        return {"batch_size": 16, "ppo": PPOConfig(learning_rate=0.02, policy=PolicyConfig(tanh_constant=1.5))}
    if searcher == "reinforce":
        return {"batch_size": 8, "ppo": reinforce_config(learning_rate=0.02, baseline_decay=0.95,
                                                         policy=PolicyConfig(tanh_constant=1.5))}
    if searcher == "evolution":
        return {"batch_size": 8, "population_size": 32, "sample_size": 8}
    return {"batch_size": 8}


def resolve_table_target(text: str, table: TabularBenchmark, column: str | None,
                         device: Any = None) -> float:
    """T in ms: '2.5ms', '1.0x ROW' (a multiple of the named row's latency) or 'p50' (a
    percentile of the column's latencies). With `device` (a DeviceTableLatency) the named row is
    measured on the device, and a percentile, which needs every row's latency, is refused."""
    m = _PERCENTILE.match(text)
    if device is not None:
        if m:
            raise ValueError(f"target {text!r} is a percentile of the table's latencies, unknown on a "
                             "device until every row is measured: give ms ('2.5ms') or a multiple of a "
                             "row ('1.0x ROWNAME')")
        target = Target.parse(text)
        if target.is_relative:
            row = table.row_named(str(target.reference_name))
            return target.value * float(device.measure_rows([table.tokens[row]])[0])
        return target.value
    lat = table.latency(column)
    if m:
        q = float(m["q"])
        if not 0 < q < 100:
            raise ValueError(f"target percentile {text!r} must lie strictly between p0 and p100")
        return float(np.percentile(lat, q))
    target = Target.parse(text)
    if target.is_relative:
        return target.value * float(lat[table.row_named(str(target.reference_name))])
    return target.value


def true_rewards(table: TabularBenchmark, reward: RewardConfig, column: str | None) -> np.ndarray:
    """Every row's reward with its mean accuracy over seeds (N,)."""
    return np.asarray(reward(table.mean_accuracy, table.latency(column)), float)


@dataclasses.dataclass(frozen=True)
class TabularOutcome:
    """Every trained sample of a search, in order, and the table's optimum under its reward."""

    rows: np.ndarray  # (n,) table row of each trained sample (-1: not in the table)
    observed: np.ndarray  # (n,) the reward the search saw (one seed's accuracy)
    true: np.ndarray  # (n,) the true reward (mean accuracy)
    optimum: float
    optimum_row: int
    target_ms: float

    def pick(self, budget: int) -> int:
        """Index of the search's pick among the first `budget` samples (see `pick_of`)."""
        return pick_of(self.rows[:budget], self.observed[:budget])

    def regret(self, budget: int) -> float:
        """Optimal true reward minus the true reward of the pick after `budget` samples."""
        return float(self.optimum - self.true[self.pick(budget)])


def pick_of(keys: np.ndarray, observed: np.ndarray) -> int:
    """The sample a search picks: the architecture with the highest MEAN observed reward over the
    times it was sampled (a search that drew an architecture twice has two seeds' evidence of
    it, and the maximum of noisy draws would favour lucky seeds); the index of its first sample."""
    keys = np.asarray(keys)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    means = np.bincount(inverse, weights=observed) / np.bincount(inverse)
    return int(first[int(np.argmax(means))])


def _setup(table: TabularBenchmark, config: TabularSearchConfig, device: Any = None) -> tuple[Any, ...]:
    config = config.resolved()
    space = TabularSpace(table)
    target = resolve_table_target(config.target, table, config.latency, device)
    reward = RewardConfig.preset(config.reward, target)
    extra = {k: getattr(config, k) for k in ("population_size", "sample_size") if getattr(config, k) is not None}
    searcher = make_searcher(config.searcher, space.choices, config.seed, ppo=config.ppo, **extra)
    loop = LoopConfig(config.steps, config.batch_size, config.screen_factor, config.seed)
    return space, target, reward, searcher, loop


def search_table(table: TabularBenchmark, config: TabularSearchConfig) -> TabularOutcome:
    """Run the search in memory (no files) and return every trained sample."""
    space, target, reward, searcher, loop = _setup(table, config)
    estimator, evaluator = TableLatency(table, config.latency), TableEvaluator(table)
    rows: list[int] = []
    observed: list[float] = []

    def evaluate(step: int, cands: Any, on_result: Callable) -> dict:
        res = evaluator.evaluate([c.spec for c in cands], [child_seed(loop.seed, step, c.index) for c in cands])
        return {c.index: r for c, r in zip(cands, res)}

    step = 0
    while len(rows) < config.samples and step < 20 * loop.steps:  # a policy stuck in the
        # screened region trains nothing for long: stop rather than spin
        out = search_step(step, searcher=searcher, space=space, estimator=estimator, reward=reward,
                          config=loop, evaluate=evaluate)
        trained = [c for c in out.candidates if not c.screened]
        for c, r in zip(trained, out.rewards):
            rows.append(-1 if c.spec.row is None else c.spec.row)
            observed.append(float(r))
        step += 1
    truth = true_rewards(table, reward, config.latency)
    rows_a = np.asarray(rows[: config.samples])
    true = np.where(rows_a >= 0, truth[np.maximum(rows_a, 0)], 0.0)
    best = int(np.argmax(truth))
    return TabularOutcome(rows_a, np.asarray(observed[: config.samples]), true, float(truth[best]), best, target)


# -- the resumable run of `mnas search --benchmark` ------------------------------------------------

def run_id_of(table: TabularBenchmark, config: TabularSearchConfig) -> str:
    """A tabular search's identity: the file's content and the config."""
    body = json.dumps({"sha256": table.sha256, "accuracy": table.accuracy_columns,
                       **dataclasses.asdict(config.resolved())}, sort_keys=True, default=str)
    return f"tabular-{config.searcher}-{hashlib.sha256(body.encode()).hexdigest()[:10]}"


def run_tabular_search(table: TabularBenchmark, config: TabularSearchConfig, workdir: str | Path, *,
                       resume: bool = False, device: Any = None,
                       on_step: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the search in `workdir` (checkpoint + samples.jsonl); returns the summary.
    `device` (a DeviceTableLatency) measures LAT(m) instead of reading the latency column; the
    table's optimum is then unknown (its rows are not all measured) and so is the regret."""
    workdir = Workdir.of(workdir)
    workdir.root.mkdir(parents=True, exist_ok=True)
    check_fresh(workdir, resume)
    space, target, reward, searcher, loop = _setup(table, config, device)
    run_id = run_id_of(table, config) + ("" if device is None else f"-{device.session.device.fingerprint().device_id[:8]}")
    path = workdir.samples
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    samples = [s for s in samples if s.get("run_id") == run_id]

    def append(payload: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(payload) + "\n")
            f.flush()
            os.fsync(f.fileno())
        samples.append(payload)

    run_loop(run_id=run_id, workdir=workdir, space=space, config=loop, reward=reward, searcher=searcher,
             searcher_from_bytes=searcher_from_bytes,
             estimator=TableLatency(table, config.latency) if device is None else device,
             evaluator=TableEvaluator(table), calibrator=None, append_sample=append,
             stored_samples=lambda rid: [s for s in samples if s["run_id"] == rid], on_step=on_step)
    if device is not None:
        return summarise_measured(table, config, run_id, samples, reward, target)
    return summarise(table, config, run_id, samples, reward, target)


def summarise_measured(table: TabularBenchmark, config: TabularSearchConfig, run_id: str,
                       samples: list[dict[str, Any]], reward: RewardConfig, target: float) -> dict[str, Any]:
    """As `summarise`, with the latencies the device measured (no table optimum, no regret)."""
    trained = [s for s in samples if s["status"] != "screened" and s["reward"] is not None]
    out: dict[str, Any] = {"run_id": run_id, "searcher": config.searcher, "samples": len(trained),
                           "screened": sum(s["status"] == "screened" for s in samples), "reward": config.reward,
                           "target_ms": target, "latency_column": None, "optimal": None, "best": None,
                           "regret": None}
    if trained:
        pick = trained[pick_of(np.array([s["arch_id"] for s in trained]), np.array([s["reward"] for s in trained]))]
        row = table.row_of(pick["tokens"])
        if row is not None:
            acc = float(table.mean_accuracy[row])
            out["best"] = {"name": table.names[row], "tokens": pick["tokens"], "mean_accuracy": acc,
                           "latency_ms": pick["predicted_latency"],
                           "reward": float(reward(acc, pick["predicted_latency"]))}
    return out


def summarise(table: TabularBenchmark, config: TabularSearchConfig, run_id: str,
              samples: list[dict[str, Any]], reward: RewardConfig, target: float) -> dict[str, Any]:
    """The search's pick (by its own reward), its true accuracy, latency and reward, the optimum."""
    truth = true_rewards(table, reward, config.latency)
    lat = table.latency(config.latency)
    trained = [s for s in samples if s["status"] != "screened" and s["reward"] is not None]
    pick = trained[pick_of(np.array([s["arch_id"] for s in trained]),
                           np.array([s["reward"] for s in trained]))] if trained else None
    best = int(np.argmax(truth))

    def row_info(i: int) -> dict[str, Any]:
        return {"name": table.names[i], "tokens": [int(t) for t in table.tokens[i]],
                "mean_accuracy": float(table.mean_accuracy[i]), "latency_ms": float(lat[i]),
                "reward": float(truth[i])}

    out: dict[str, Any] = {"run_id": run_id, "searcher": config.searcher, "samples": len(trained),
                           "screened": sum(s["status"] == "screened" for s in samples), "reward": config.reward,
                           "target_ms": target, "latency_column": table.latency_column(config.latency),
                           "optimal": row_info(best), "best": None, "regret": None}
    if pick is not None:
        row = table.row_of(pick["tokens"])
        if row is not None:
            seen = [s["reward"] for s in trained if s["arch_id"] == pick["arch_id"]]
            out["best"] = {**row_info(row), "observed_reward": float(np.mean(seen)), "times_sampled": len(seen)}
            out["regret"] = float(truth[best] - truth[row])
            out["rank"] = int((truth > truth[row]).sum()) + 1  # 1: the optimum
    return out
