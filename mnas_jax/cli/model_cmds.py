"""`mnas model summary ARCH`."""

from __future__ import annotations

import argparse

from mnas_jax.cli.output import print_json, print_table
from mnas_jax.costs import layer_macs, layer_params
from mnas_jax.space import ArchSpec, get_space, parse_arch, space_names, space_settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add `mnas model summary` to the CLI."""
    p = sub.add_parser("model", help="inspect architectures")
    ms = p.add_subparsers(dest="model_command", metavar="ACTION")
    ms.required = True
    s = ms.add_parser("summary", help="layers, parameters and multiply-adds of an architecture")
    s.add_argument("arch", help="reference name, spec string, or JSON file")
    s.add_argument("--setting", default="imagenet", help="setting for reference names")
    s.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    s.set_defaults(func=_summary)


def space_membership(spec: ArchSpec) -> dict[str, str]:
    """For every space/setting: 'yes', or the reason the spec is not a point of it."""
    out = {}
    for name in space_names():
        for setting in space_settings(name):
            try:
                get_space(name, setting).encode(spec)
                out[f"{name}/{setting}"] = "yes"
            except ValueError as e:
                out[f"{name}/{setting}"] = str(e)
    return out


def summary(spec: ArchSpec) -> dict:
    """Layers, parameters, multiply-adds and space membership of an architecture, JSON-ready."""
    layers = spec.layers()
    membership = space_membership(spec)
    rows = [{"index": i, "key": layer.key, "op": layer.op.value, "kernel": layer.kernel,
             "expansion": layer.expansion, "se_ratio": layer.se_ratio, "skip": layer.skip.value,
             "in_channels": layer.in_channels, "out_channels": layer.out_channels,
             "stride": layer.stride, "in_size": layer.in_size,
             "params": layer_params(layer), "macs": layer_macs(layer)}
            for i, layer in enumerate(layers)]
    return {"arch_id": spec.arch_id, "string": spec.to_string(), "spec": spec.to_dict(),
            "params": sum(r["params"] for r in rows), "macs": sum(r["macs"] for r in rows),
            "layers": rows, "in_spaces": [k for k, v in membership.items() if v == "yes"],
            "space_membership": membership}


def _summary(args: argparse.Namespace) -> int:
    info = summary(parse_arch(args.arch, args.setting))
    if args.json:
        print_json(info)
        return 0
    rows = [(r["index"], r["op"], r["kernel"], r["expansion"], r["se_ratio"], r["skip"],
             f"{r['in_channels']}->{r['out_channels']}", r["stride"], r["in_size"],
             f"{r['params']:,}", f"{r['macs']:,}") for r in info["layers"]]
    print_table(f"{args.arch} ({info['arch_id']})",
                ("#", "op", "k", "e", "se", "skip", "channels", "s", "hw", "params", "MACs"), rows)
    print(f"params {info['params']:,}  MACs {info['macs']:,}  "
          f"in spaces: {', '.join(info['in_spaces']) or 'none'}")
    for space, why in info["space_membership"].items():
        if why != "yes":
            print(f"  not in {space}: {why}")
    return 0
