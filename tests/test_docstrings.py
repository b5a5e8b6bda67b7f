"""Every public function, class and method of the library packages says in one line what it is."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mnas_jax", "latency", "predictor", "calibration")


def _missing(tree: ast.AST, where: str) -> list[str]:
    out = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            if not (ast.get_docstring(node) or "").strip():
                out.append(f"{where}:{node.lineno} {node.name}")
            if isinstance(node, ast.ClassDef):
                out += _missing(node, where)
    return out


def test_every_public_function_has_a_docstring() -> None:
    missing = [m for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py"))
               for m in _missing(ast.parse(f.read_text()), str(f.relative_to(ROOT)))]
    assert not missing, "public API without a docstring:\n" + "\n".join(missing)
