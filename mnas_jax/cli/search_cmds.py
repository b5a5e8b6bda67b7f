"""`mnas search --config C [--variant V] --workdir W [--device D] [--executor local|ray]
[--data fmnist|tfds:NAME --data-dir D]`, and `mnas search --benchmark FILE` (a tabular benchmark:
ACC(m) and LAT(m) read from a table, no training, no device)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from mnas_jax.cli.errors import UserError
from mnas_jax.cli.rounds import ARCH_ROUNDS, add_rounds_option, checked_rounds

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fmnist.py"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `search` command (table -> predictor -> search -> report) to the CLI's subparsers."""
    p = sub.add_parser("search", help="table -> predictor -> search with calibration -> report")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="Python config file")
    p.add_argument("--variant", default=None, help="named variant of the config (e.g. smoke)")
    p.add_argument("--workdir", default=None,
                   help="store, tables, checkpoints and report (required, except with --benchmark: "
                        "there it holds the checkpoint and samples.jsonl, and without it the search "
                        "runs in memory)")
    p.add_argument("--device", default=None, help="override the config's device")
    p.add_argument("--executor", choices=("local", "ray"), default=None,
                   help="where children train: in this process (local) or on a Ray cluster")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    p.add_argument("--data", default=None, help="override the config's data (fmnist or tfds:NAME[/CONFIG][:SPLIT])")
    p.add_argument("--data-dir", default=None, help="override the config's data directory (TFDS data dir)")
    p.add_argument("--resume", action="store_true", help="continue the search in --workdir")
    p.add_argument("--predictor", type=Path, default=None,
                   help="use this predictor directory (fitted or transferred for the search's "
                        "device) instead of building a table and fitting one")
    p.add_argument("--json", action="store_true",
                   help="print the report's summary (summary.json) as one JSON line (with "
                        "--benchmark: one line per step, the last the summary)")
    t = p.add_argument_group("tabular benchmark (--benchmark FILE)")
    t.add_argument("--benchmark", type=Path, default=None,
                   help="CSV of architectures with trained accuracies and latencies (format: "
                        "mnas_jax/search/tabular/table.py); the search reads ACC(m) and LAT(m) from it")
    t.add_argument("--accuracy", default=None,
                   help="accuracy columns: a prefix (default acc_) or a comma-separated list, one per seed")
    t.add_argument("--latency", default=None, help="latency column <device>_ms (default: the only one)")
    t.add_argument("--searcher", default="ppo", choices=("ppo", "reinforce", "evolution", "random"),
                   help="the searcher (ppo: the paper's controller)")
    t.add_argument("--samples", type=int, default=200, help="children evaluated (read from the table), rounded up to whole controller steps")
    t.add_argument("--batch-size", type=int, default=None, help="children per controller step (default 8)")
    t.add_argument("--target", default="p50",
                   help="latency target: '2.5ms', '1.0x ROWNAME' (a multiple of a named row's "
                        "latency) or 'p50' (a percentile of the table's latency)")
    t.add_argument("--reward", default="soft", choices=("soft", "hard"), help="MnasNet reward")
    t.add_argument("--seed", type=int, default=0, help="seed of the searcher and of the queries")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (status lines still go to stderr)")
    add_rounds_option(p, default=f"the config's measure_rounds; with --benchmark and --device: {ARCH_ROUNDS}")
    p.set_defaults(func=_search)


def _search(args: argparse.Namespace) -> int:
    """Also `--predictor DIR` (a predictor instead of table + fit), `--json`, `--quiet`."""
    import functools

    from mnas_jax.cli.output import print_json
    from mnas_jax.search import pipeline
    from mnas_jax.search.config import load_config
    run_search = functools.partial(pipeline.run_search, predictor=args.predictor,
                                   progress=not args.quiet)

    _refuse_multiprocess()
    if args.benchmark is not None:
        return _tabular(args)
    if args.workdir is None:
        raise UserError("mnas search needs --workdir DIR (store, tables, checkpoints, report)")
    config = load_config(args.config, args.variant)
    data_dir = args.data_dir
    if data_dir is not None and "://" not in data_dir:
        data_dir = os.path.abspath(data_dir)  # Ray workers may start in another directory
    changes = {k: v for k, v in (("data", args.data), ("data_dir", data_dir),
                                 ("measure_rounds", checked_rounds(args, config.measure_rounds)))
               if v is not None}
    config = dataclasses.replace(config, **changes) if changes else config
    out = run_search(config, args.workdir, device=args.device, executor=args.executor,
                     ray_address=args.address, resume=args.resume)
    if args.json:
        import json

        print_json({"report": str(out / "report.md")} | json.loads(
            (out / "summary.json").read_text()))
    else:
        print(out / "report.md")
    return 0


def _refuse_multiprocess() -> None:
    """The search runs as one process; its children may use many devices (or Ray workers)."""
    import jax

    if jax.distributed.is_initialized() and jax.process_count() > 1:
        raise UserError(f"mnas search runs as one process, not as process {jax.process_index()} of "
                        f"{jax.process_count()}: unset MNAS_COORDINATOR_ADDRESS (or set "
                        "MNAS_DISTRIBUTED=off) and train children on other hosts with --executor ray")


def _tabular(args: argparse.Namespace) -> int:
    """`mnas search --benchmark FILE`: the real search step over a table (no training)."""
    from mnas_jax.cli.output import print_json
    from mnas_jax.search.tabular.run import TabularSearchConfig, run_tabular_search
    from mnas_jax.search.tabular.table import load_table

    if args.device is not None and args.latency is not None:
        raise UserError("give --latency COLUMN (read from the table) or --device SPEC (measured), not both")
    if args.device is not None and args.workdir is None:
        raise UserError("--device with --benchmark needs --workdir DIR (its measurement store)")
    if args.samples < 1:
        raise UserError(f"--samples {args.samples} must be >= 1")
    table = load_table(args.benchmark, accuracy=args.accuracy)
    config = TabularSearchConfig(searcher=args.searcher, samples=args.samples, reward=args.reward,
                                 target=args.target, latency=args.latency, seed=args.seed,
                                 **({"batch_size": args.batch_size} if args.batch_size else {}))

    def on_step(step: int, record: dict) -> None:
        if args.json:
            print_json({"step": step + 1, "steps": config.steps, "mean_reward": record["mean_reward"],
                        "max_reward": record["max_reward"], "screened": record["screened"]})
        elif not args.quiet:
            import sys

            print(f"mnas search: step {step + 1}/{config.steps}: mean reward {record['mean_reward']:.4f}, "
                  f"best {record['max_reward']:.4f}, {record['screened']} screened", file=sys.stderr)

    if args.device is not None:
        from latency.session import DeviceSession
        from mnas_jax.search.tabular.device import DeviceTableLatency

        with DeviceSession.open(args.device, args.workdir, rounds=checked_rounds(args)) as session:
            summary = run_tabular_search(table, config, args.workdir, resume=args.resume,
                                         device=DeviceTableLatency(session, table), on_step=on_step)
    elif args.workdir is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="mnas-tabular-") as tmp:
            summary = run_tabular_search(table, config, tmp, on_step=on_step)
    else:
        summary = run_tabular_search(table, config, args.workdir, resume=args.resume, on_step=on_step)
    if args.json:
        print_json(summary)
    else:
        best, opt = summary["best"], summary["optimal"]
        if opt is None:  # latencies measured on a device: no table optimum
            print(f"best found ({summary['searcher']}, {summary['samples']} samples): {best['name']} "
                  f"true accuracy {best['mean_accuracy']:.4f}, {best['latency_ms']:.3f} ms measured, "
                  f"reward {best['reward']:.5f}")
            return 0
        print(f"best found ({summary['searcher']}, {summary['samples']} samples): {best['name']} "
              f"true accuracy {best['mean_accuracy']:.4f}, {best['latency_ms']:.3f} ms, reward "
              f"{best['reward']:.5f} (rank {summary['rank']}); optimum {opt['name']} reward "
              f"{opt['reward']:.5f}; regret {summary['regret']:.5f}")
    return 0
