"""`mnas train ARCH --setting S [--data fmnist|tfds:NAME --data-dir D] --epochs E [--json]`.

In a multi-process job (see `mnas_jax.cli.distributed`) every process runs the same command;
process 0 alone prints, draws progress and writes checkpoints (its host copy of the replicated
state, restored on resume by process 0 and broadcast to the others, so no shared filesystem is
needed). Compiled programs go to the project's one compilation cache (``$MNAS_JAX_CACHE_DIR``,
see `mnas_jax.train.compile_cache`), shared with search children, Ray workers and benchmarks.
"""

from __future__ import annotations

import argparse
import dataclasses

from mnas_jax.cli.errors import UserError
from mnas_jax.cli.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` command (one architecture, Fashion-MNIST or TFDS) to the CLI."""
    p = sub.add_parser("train", help="train an architecture on Fashion-MNIST or a TFDS dataset")
    p.add_argument("arch", help="reference name, spec string, or JSON file")
    p.add_argument("--setting", default="fmnist", help="setting for reference names (fmnist, tiny64, imagenet)")
    p.add_argument("--preset", default="paper", choices=("paper", "proxy", "smoke"),
                   help="training recipe: paper (full, checkpointed), proxy (search child), smoke")
    p.add_argument("--epochs", type=float, help="epochs (default: the preset's)")
    p.add_argument("--steps", type=int, help="step budget (overrides --epochs)")
    p.add_argument("--batch-size", type=int, help="global batch size (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (init, dropout, data order)")
    p.add_argument("--data", default="fmnist",
                   help="fmnist (default) or tfds:NAME[/CONFIG][:SPLIT], e.g. tfds:imagenet2012")
    p.add_argument("--data-dir", help="where --data lives: a TFDS data dir (local or gs://), or the "
                                      "Fashion-MNIST IDX directory (default: $MNAS_FMNIST_DIR or Debian's)")
    p.add_argument("--workdir", default=".", help="checkpoints go here (a local directory)")
    p.add_argument("--no-checkpoint", action="store_true", help="do not checkpoint a paper training")
    p.add_argument("--dw-impl", default="auto", choices=("auto", "shift", "xla"), help="depthwise implementation")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr)")
    p.set_defaults(func=_train)


def _config(args: argparse.Namespace, arch_id: str):
    from mnas_jax.train import get_preset

    config = get_preset(args.preset)
    changes: dict = {"dw_impl": args.dw_impl}
    if args.epochs is not None:
        if args.epochs <= 0:
            raise UserError(f"--epochs {args.epochs} must be > 0")
        changes.update(epochs=args.epochs, max_steps=None)
    if args.steps is not None:
        if args.steps <= 0:
            raise UserError(f"--steps {args.steps} must be > 0")
        changes["max_steps"] = args.steps
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    config = dataclasses.replace(config, **changes)
    if args.preset == "paper" and not args.no_checkpoint:
        length = f"s{config.max_steps}" if config.max_steps else f"e{config.epochs:g}"
        run = f"{arch_id}-{config.name}-b{config.batch_size}-{length}-seed{args.seed}"
        config = dataclasses.replace(config, checkpoint_dir=str(args.workdir.train_checkpoints(run)))
    return config


def _train(args: argparse.Namespace) -> int:
    import jax

    from mnas_jax.cli.distributed import is_primary, stdout_to_stderr, wait_for_all
    from mnas_jax.data import DataSpec, open_data
    from latency.workdir import Workdir
    from mnas_jax.progress import training_progress
    from mnas_jax.space import parse_arch
    from mnas_jax.train import train_and_evaluate

    args.workdir = Workdir.of(args.workdir)
    spec = parse_arch(args.arch, args.setting)
    config = _config(args, spec.arch_id)
    data = open_data(DataSpec.parse(args.data, args.data_dir), input_size=config.input_size or spec.input_size,
                     channels=spec.input_channels, num_classes=spec.num_classes)  # fails fast, one line
    wait_for_all("data-loaded")  # the first collective must not time out on a slow process
    primary = is_primary()
    with training_progress(spec.arch_id, enabled=primary and not args.quiet) as on_step, stdout_to_stderr():
        result = train_and_evaluate(spec, config, jax.random.key(args.seed), data, on_step=on_step)
    if not primary:
        return 0 if result.ok else 1
    out = result.to_dict()
    if args.json:
        print_json(out)
    else:
        keys = ("arch_id", "status", "reason", "val_accuracy", "test_accuracy", "final_loss", "steps",
                "train_seconds", "compile_seconds", "images_per_second", "dw_impl", "num_devices")
        print_table(f"mnas train {args.arch} ({config.name})", ("field", "value"),
                    [(k, _fmt(out[k])) for k in keys])
    return 0 if result.ok else 1


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
