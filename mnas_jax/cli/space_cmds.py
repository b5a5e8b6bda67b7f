"""`mnas space describe|sample`."""

from __future__ import annotations

import argparse

from mnas_jax.cli.output import print_json, print_table
from mnas_jax.space import SPACES, get_space, sample_tokens, space_settings, space_size

SPACE_HELP = (f"{' or '.join(SPACES)}, or a slice of mnasnet that fixes decisions to a choice "
              "index, in every block or in one: mnasnet@op=2,kernel=0,b3.skip=1")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `space` command (describe, sample) to the CLI's subparsers."""
    p = sub.add_parser("space", help="describe or sample a search space")
    ss = p.add_subparsers(dest="space_command", metavar="ACTION")
    ss.required = True
    d = ss.add_parser("describe", help="size and per-decision choice counts")
    d.add_argument("--space", required=True, help=SPACE_HELP)
    d.add_argument("--setting", default=None, help="imagenet|fmnist (mnasnet); cifar100 (fbnet)")
    d.add_argument("--json", action="store_true", help="print the description as one JSON line")
    d.set_defaults(func=_describe)
    s = ss.add_parser("sample", help="uniform seeded samples, one spec per line")
    s.add_argument("--space", required=True, help=SPACE_HELP)
    s.add_argument("--setting", default=None, help="imagenet|fmnist (mnasnet); cifar100 (fbnet)")
    s.add_argument("--n", type=int, default=1, help="how many architectures (default 1)")
    s.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=_sample)


def describe(space_name: str, setting: str | None) -> dict:
    """Summarise a search space: its decisions, choice counts per decision and group, and size."""
    space = get_space(space_name, setting)
    choices = space.choices
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, c in zip(space.decision_names, choices):
        group, decision = name.split(".", 1)
        groups.setdefault(group, []).append((decision, c))
    per_group = {g: int(space_size([c for _, c in v])) for g, v in groups.items()}
    distinct = sorted(set(per_group.values()))
    return {
        "space": space.name,
        "setting": space.setting,
        "settings": list(space_settings(space_name)),
        "decisions": len(choices),
        "choices": list(choices),
        "blocks": len(groups),
        "choices_per_block": per_group,
        "block_choices": {g: dict(v) for g, v in groups.items()},
        "size": space_size(choices),
        "size_formula": f"{distinct[0]}^{len(groups)}" if len(distinct) == 1 else "product",
    }


def _describe(args: argparse.Namespace) -> int:
    info = describe(args.space, args.setting)
    if args.json:
        info["size"] = str(info["size"])  # exact, beyond float range of some JSON readers
        print_json(info)
        return 0
    print(f"space {info['space']} (setting {info['setting']}): {info['decisions']} decisions, "
          f"{info['blocks']} blocks, size {info['size_formula']} = {info['size']:.3e} "
          f"({info['size']})")
    rows = [(g, n, ", ".join(f"{d}:{c}" for d, c in info["block_choices"][g].items()))
            for g, n in info["choices_per_block"].items()]
    print_table("choices per block", ("block", "S", "decisions"), rows)
    return 0


def _sample(args: argparse.Namespace) -> int:
    if args.n < 0:
        raise ValueError(f"--n {args.n} must be >= 0")
    space = get_space(args.space, args.setting)
    for row in sample_tokens(space.choices, args.seed, args.n):
        spec = space.decode(row)
        if args.json:
            print_json({"arch_id": spec.arch_id, "tokens": [int(t) for t in row],
                        "spec": spec.to_dict(), "string": spec.to_string()})
        else:
            print(spec.to_string())
    return 0
