"""The import rules of DESIGN.md's layering, read from the source with `ast` (lazy imports inside
functions count too): imports point down only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mnas_jax", "latency", "predictor", "calibration", "benchmarks")
LEAVES = {"mnas_jax.space", "mnas_jax.models", "mnas_jax.costs", "mnas_jax.files", "mnas_jax.progress"}
CORE = {"mnas_jax.reward", "mnas_jax.controller", "mnas_jax.train", "mnas_jax.data"}
TOP = {"mnas_jax.search", "mnas_jax.cli"}
# proxy fidelity (mnas proxy): trains through core, measures through latency, fits a predictor
FIDELITY = "mnas_jax.fidelity"
# group -> the groups (besides itself) it may import
ALLOWED: dict[str, set[str]] = {
    **{leaf: set() for leaf in LEAVES},  # DESIGN.md: the leaves import nothing else of the project,
    "mnas_jax.costs": {"mnas_jax.space"},  # but for the spec types they are functions of
    "mnas_jax.models": {"mnas_jax.space"},
    **{core: LEAVES | CORE for core in CORE},
    "latency": LEAVES,
    "predictor": LEAVES | {"latency"},
    "calibration": LEAVES | {"latency", "predictor"},
    FIDELITY: LEAVES | CORE | {"latency", "predictor"},
    **{top: LEAVES | CORE | TOP | {FIDELITY, "latency", "predictor", "calibration"} for top in TOP},
}


def group(module: str) -> str:
    """mnas_jax.<sub> for mnas_jax's subpackages and modules, the top-level package otherwise."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "mnas_jax" and len(parts) > 1 else parts[0]


def project_imports(path: Path) -> set[str]:
    """Every project module `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PACKAGES)
    return found


def library_files() -> list[tuple[str, Path]]:
    out = []
    for pkg in ("mnas_jax", "latency", "predictor", "calibration"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out.append((".".join(path.relative_to(ROOT).with_suffix("").parts), path))
    return out


@pytest.mark.parametrize("module,path", library_files(), ids=lambda x: str(x))
def test_imports_point_down(module, path):
    mine = group(module)
    assert mine in ALLOWED, f"{module} is in no layer of the rules; add its group to ALLOWED"
    bad = sorted(m for m in project_imports(path) if group(m) != mine and group(m) not in ALLOWED[mine])
    assert not bad, f"{module} ({mine}) imports {bad}: against the layering in DESIGN.md"


def test_rules_of_the_issue():
    """latency/ never imports predictor/; no library file imports the CLI, search or benchmarks;
    the leaves import nothing of the project above them."""
    for module, path in library_files():
        groups = {group(m) for m in project_imports(path)}
        if module.startswith("latency"):
            assert "predictor" not in groups, module
        if group(module) not in TOP:
            assert not groups & (TOP | {"benchmarks"}), module
        if group(module) not in TOP | {FIDELITY}:
            assert FIDELITY not in groups, module  # imported only by the CLI and the search
        if group(module) in LEAVES:
            assert groups <= {group(module)} | ALLOWED[group(module)], module


def test_the_rules_catch_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from predictor.io import load_predictor\n")
    assert "predictor" not in ALLOWED["latency"] and project_imports(bad) == {"predictor.io"}
