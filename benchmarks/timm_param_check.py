"""Compare parameter counts with timm's independent PyTorch implementations, and MACs with the paper.

Outside the test suite (torch and timm are not dependencies of the package):

    pip install torch==2.13.0 && pip install --no-deps timm && python benchmarks/timm_param_check.py

timm imports torchvision for its data transforms only; PyPI's torchvision does not load beside the
local torch 2.13.0 file, so this script installs an empty stand-in module for it (building a model
never calls torchvision). Writes benchmarks/reports/timm_param_check.{json,md}.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import pathlib
import sys
import types

from mnas_jax.costs import arch_macs, arch_params
from mnas_jax.space import reference

PAIRS = [  # ours, timm's, paper MACs (MNASNET.md)
    ("mobilenetv2", "mobilenetv2_100", 300e6),
    ("mnasnet-a1", "semnasnet_100", 312e6),
    ("mnasnet-b1", "mnasnet_100", 315e6),
    ("mnasnet-small", "mnasnet_small", 68e6),
    ("mobilenetv2-1.4", "mobilenetv2_140", 585e6),
]


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"


class _Anything(types.ModuleType):
    """A module whose every attribute is a harmless placeholder class."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return _PlaceholderMeta(name, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Anything(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def main() -> int:
    from mnas_jax.train.runtime import prepare_process

    prepare_process(probe=False)  # XLA:CPU flags and the project's compilation cache, before JAX starts
    sys.meta_path.insert(0, _StubFinder())
    import timm  # noqa: E402

    rows = []
    for ours, theirs, paper_macs in PAIRS:
        spec = reference(ours)
        model = timm.create_model(theirs, pretrained=False)
        timm_params = sum(p.numel() for p in model.parameters())
        params, macs = arch_params(spec), arch_macs(spec)
        rows.append({"model": ours, "timm": theirs, "params": params, "timm_params": timm_params,
                     "params_diff_pct": 100 * (params / timm_params - 1), "macs": macs,
                     "paper_macs": paper_macs, "macs_diff_pct": 100 * (macs / paper_macs - 1)})
    out = pathlib.Path(__file__).parent / "reports"
    out.mkdir(parents=True, exist_ok=True)
    (out / "timm_param_check.json").write_text(json.dumps(rows, indent=2))
    lines = ["| model | params | timm params | diff | MACs | paper MACs | diff |", "|---" * 7 + "|"]
    for r in rows:
        lines.append(f"| {r['model']} ({r['timm']}) | {r['params']:,} | {r['timm_params']:,} | "
                     f"{r['params_diff_pct']:+.2f}% | {r['macs'] / 1e6:.1f}M | "
                     f"{r['paper_macs'] / 1e6:.0f}M | {r['macs_diff_pct']:+.2f}% |")
    (out / "timm_param_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
