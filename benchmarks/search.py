"""Search benchmarks of issue 6.

(a) Synthetic reward with a known optimum on the MnasNet-shaped decision structure
    ((4, 2, 2, 3, 3, 3) x 7 = 42 decisions, 432^7 ~ 2.8e18 sequences): PPO vs random search vs
    regularised evolution, samples until the optimum is sampled and best reward within a budget.
(b) Soft vs hard reward with a real latency predictor and a stand-in accuracy (see
    benchmarks/search_reward.py): the latency distribution of the sampled architectures.
(c) comes later (end to end on Fashion-MNIST).

Usage (from the repository root):
    python -m benchmarks.search --part a [--out benchmarks/reports/search] [--seeds 5]
    python -m benchmarks.search --part b --predictor DIR [--steps 150] [--batch-size 8] [--seeds 3]
Writes <out>/part_<x>.json and <out>/part_<x>.png and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import pathlib
import sys
import time
from typing import Any, Callable

import numpy as np

log = logging.getLogger("benchmarks.search")

MNAS_CHOICES: tuple[int, ...] = (4, 2, 2, 3, 3, 3) * 7


@dataclasses.dataclass(frozen=True)
class SyntheticProblem:
    """reward(tokens) = mean over decisions of score[d, token_d]; score = 1 at the hidden optimum,
    U(0, wrong_max) elsewhere. Separable like a real space is roughly (each block choice adds its
    own accuracy/latency effect), with a single best sequence whose reward is exactly 1."""

    choices: tuple[int, ...]
    scores: np.ndarray  # (D, max_choices), padded with -inf
    optimum: np.ndarray  # (D,)

    @classmethod
    def make(cls, choices: tuple[int, ...], seed: int, wrong_max: float = 0.8) -> SyntheticProblem:
        rng = np.random.default_rng(seed)
        scores = np.full((len(choices), max(choices)), -np.inf)
        optimum = np.zeros(len(choices), dtype=np.int32)
        for d, c in enumerate(choices):
            scores[d, :c] = rng.uniform(0.0, wrong_max, size=c)
            optimum[d] = rng.integers(c)
            scores[d, optimum[d]] = 1.0
        return cls(tuple(choices), scores, optimum)

    def reward(self, tokens: np.ndarray) -> np.ndarray:
        return self.scores[np.arange(len(self.choices)), tokens].mean(axis=1)

    def is_optimum(self, tokens: np.ndarray) -> np.ndarray:
        return np.all(tokens == self.optimum, axis=1)


@dataclasses.dataclass(frozen=True)
class RunResult:
    method: str
    seed: int
    samples_to_optimum: int | None
    best_curve: np.ndarray  # best true reward after each sample
    seconds: float


def run_searcher(
    name: str,
    searcher: Any,
    problem: SyntheticProblem,
    budget: int,
    batch_size: int,
    noise: float,
    seed: int,
) -> RunResult:
    """Drive one searcher for `budget` samples; the searcher sees reward + N(0, noise)."""
    noise_rng = np.random.default_rng(10_000 + seed)
    best = -np.inf
    curve: list[float] = []
    hit: int | None = None
    start = time.perf_counter()
    while len(curve) < budget:
        n = min(batch_size, budget - len(curve))
        tokens = searcher.ask(n)
        true = problem.reward(tokens)
        seen = true + noise * noise_rng.standard_normal(n) if noise > 0 else true
        searcher.tell(tokens, seen)
        optimal = problem.is_optimum(tokens)
        if hit is None and optimal.any():
            hit = len(curve) + int(np.argmax(optimal)) + 1
        for r in true:
            best = max(best, float(r))
            curve.append(best)
    return RunResult(name, seed, hit, np.asarray(curve), time.perf_counter() - start)


def _searchers(
    args: argparse.Namespace, choices: tuple[int, ...]
) -> dict[str, Callable[[int], Any]]:
    from mnas_jax.controller.ppo import PPOConfig, PPOSearcher
    from mnas_jax.search.searchers import RandomSearch, RegularizedEvolution

    ppo_config = PPOConfig()
    return {
        "ppo": lambda seed: PPOSearcher(choices, ppo_config, seed=seed),
        "random": lambda seed: RandomSearch(choices, seed=seed),
        "evolution": lambda seed: RegularizedEvolution(
            choices, args.population, args.tournament, seed=seed
        ),
    }


def _summarise(results: list[RunResult], budget: int) -> dict[str, Any]:
    hits = [r.samples_to_optimum for r in results]
    reached = [h for h in hits if h is not None]
    everywhere = len(reached) == len(hits)
    finals = [float(r.best_curve[-1]) for r in results]
    return {
        "seeds": len(results),
        "reached_optimum": len(reached),
        "samples_to_optimum": hits,
        "samples_to_optimum_median": float(np.median(reached)) if everywhere else None,
        "samples_to_optimum_max": max(reached) if everywhere else None,
        "samples_to_optimum_median_of_reached": float(np.median(reached)) if reached else None,
        "best_reward_at_budget_mean": float(np.mean(finals)),
        "best_reward_at_budget_min": float(np.min(finals)),
        "best_reward_at_quarter_budget_mean": float(
            np.mean([r.best_curve[budget // 4 - 1] for r in results])
        ),
        "seconds_mean": float(np.mean([r.seconds for r in results])),
    }


def _plot(curves: dict[str, list[RunResult]], path: pathlib.Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for method, results in curves.items():
        stack = np.stack([r.best_curve for r in results])
        x = np.arange(1, stack.shape[1] + 1)
        ax.plot(x, stack.mean(axis=0), label=f"{method} (mean of {len(results)} seeds)")
        ax.fill_between(x, stack.min(axis=0), stack.max(axis=0), alpha=0.2)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="optimum")
    ax.set_xlabel("samples")
    ax.set_ylabel("best reward so far")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _print_table(summary: dict[str, dict[str, Any]], budget: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"(a) synthetic reward, 42 decisions, budget {budget} samples")
    columns = ("method", "reached opt.", "samples to opt. (per seed)", "median (reached)",
               "best@budget", f"best@{budget // 4}", "s/run")
    for col in columns:
        table.add_column(col, justify="right")
    for method, s in summary.items():
        hits = ", ".join("-" if h is None else str(h) for h in s["samples_to_optimum"])
        med = s["samples_to_optimum_median_of_reached"]
        table.add_row(
            method,
            f"{s['reached_optimum']}/{s['seeds']}",
            hits,
            "-" if med is None else f"{med:.0f}",
            f"{s['best_reward_at_budget_mean']:.4f}",
            f"{s['best_reward_at_quarter_budget_mean']:.4f}",
            f"{s['seconds_mean']:.1f}",
        )
    Console(width=150).print(table)


def part_a(args: argparse.Namespace) -> dict[str, Any]:
    """PPO vs random search vs regularised evolution on the synthetic reward."""
    from mnas_jax.controller.ppo import PPOConfig

    choices = MNAS_CHOICES
    factories = _searchers(args, choices)
    runs: dict[str, list[RunResult]] = {m: [] for m in factories}
    for seed in range(args.seeds):
        problem = SyntheticProblem.make(choices, seed=1000 + seed)
        for method, make in factories.items():
            result = run_searcher(
                method, make(seed), problem, args.budget, args.batch_size, args.noise, seed
            )
            log.info("seed %d %s: optimum at %s, best %.4f", seed, method,
                     result.samples_to_optimum, result.best_curve[-1])
            runs[method].append(result)
    summary = {m: _summarise(r, args.budget) for m, r in runs.items()}
    space_size = math.prod(choices)
    report = {
        "part": "a",
        "choices": list(choices),
        "space_size": float(space_size),
        "random_expected_samples_to_optimum": float(space_size),
        "budget": args.budget,
        "batch_size": args.batch_size,
        "reward_noise_std": args.noise,
        "ppo_config": PPOConfig().to_dict(),
        "evolution": {"population_size": args.population, "sample_size": args.tournament},
        "summary": summary,
        "ppo_fewer_samples_than_random": _ppo_beats_random(summary),
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "part_a.json").write_text(json.dumps(report, indent=2))
    _plot(runs, out / "part_a.png",
          f"synthetic reward, batch {args.batch_size}, noise {args.noise:g}")
    _print_table(summary, args.budget)
    return report


def _ppo_beats_random(summary: dict[str, dict[str, Any]]) -> bool:
    """PPO reached the optimum on every seed within the budget and random search did not beat it."""
    ppo, rnd = summary["ppo"], summary["random"]
    if ppo["samples_to_optimum_max"] is None:
        return False
    if rnd["samples_to_optimum_max"] is None:
        return True
    return ppo["samples_to_optimum_median"] < rnd["samples_to_optimum_median"]


def part_b(args: argparse.Namespace) -> dict[str, Any]:
    """Soft vs hard reward with a real predictor (benchmarks/search_reward.py)."""
    from benchmarks.search_reward import part_b as run

    return run(args)


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {"a": part_a, "b": part_b}
# options whose default depends on the part (None on the command line means "the part's default")
PART_DEFAULTS: dict[str, dict[str, int]] = {
    "a": {"seeds": 5, "batch_size": 16},
    "b": {"seeds": 3, "batch_size": 8},
}


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.search_reward import ACC_FORMS, PPO_LEARNING_RATE

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=sorted(PARTS), default="a", help="which benchmark to run")
    p.add_argument("--out", default="benchmarks/reports/search", help="report directory")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per method (default: 5 for a, 3 for b)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="samples per ask/tell step (default: 16 for a, 8 for b)")
    a = p.add_argument_group("part a (synthetic reward)")
    a.add_argument("--budget", type=int, default=2000, help="samples per run")
    a.add_argument("--noise", type=float, default=0.0,
                   help="std of Gaussian noise on the reward the searchers see")
    a.add_argument("--population", type=int, default=32, help="evolution population size P")
    a.add_argument("--tournament", type=int, default=8, help="evolution tournament size S")
    b = p.add_argument_group("part b (soft vs hard reward)")
    b.add_argument("--predictor", default=None,
                   help="predictor directory written by save_predictor (e.g. runs/predictor-"
                        "bench/predictors/<dir> or <search workdir>/predictors/<run>)")
    b.add_argument("--table", default=None,
                   help="lookup table JSON of a predictor fitted with one (default: "
                        "<workdir>/tables/<space>-<setting>-<device>.json beside the predictor)")
    b.add_argument("--target", type=float, default=None,
                   help="target T in the predictor's unit (relative to MobileNetV2 for device "
                        "fits; default: median predicted latency of --uniform uniform samples)")
    b.add_argument("--uniform", type=int, default=200,
                   help="uniform samples for the default T and the stand-in's MAC scale")
    b.add_argument("--steps", type=int, default=150, help="PPO steps per search")
    b.add_argument("--acc-form", choices=ACC_FORMS, default=ACC_FORMS[0],
                   help="stand-in accuracy ACC = 0.95 - DROP * g(MACs / M0) + noise, M0 the "
                        "median MACs: g(x) = x ** -0.5 ('power') or exp(-x) ('exp')")
    b.add_argument("--acc-drop", type=float, default=None,
                   help="DROP of the stand-in (default: such that 2x latency buys +5%% ACC at "
                        "M0, the premise of the soft exponent)")
    b.add_argument("--acc-eval-noise", type=float, default=None,
                   help="std of the stand-in's per-evaluation (training) noise (default: "
                        "StandInAccuracy's, 0.005; 0 for none)")
    b.add_argument("--learning-rate", type=float, default=None,
                   help=f"PPO learning rate (default: {PPO_LEARNING_RATE:g})")
    b.add_argument("--advantage-norm", default=None,
                   help="PPO advantage normalisation, one of PPOConfig's (default: PPOConfig's, "
                        "'mean_std')")
    b.add_argument("--entropy-coef", type=float, default=None,
                   help="PPO entropy bonus (default: PPOConfig's)")
    return p


def main(argv: list[str] | None = None) -> int:
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)  # XLA:CPU flags and the project's compilation cache, before JAX starts
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    for name, default in PART_DEFAULTS[args.part].items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.seeds < 1 or args.budget < 4 or args.batch_size < 1 or args.steps < 2:
        raise SystemExit("--seeds must be >= 1, --budget >= 4, --batch-size >= 1, --steps >= 2")
    report = PARTS[args.part](args)
    log.info("report written to %s", args.out)
    ok = report.get("ppo_fewer_samples_than_random", True)
    return 0 if ok and report.get("acceptance", {}).get("accepted", True) else 1


if __name__ == "__main__":
    sys.exit(main())
