"""The wheel ships the product only, and the product leans on no test or benchmark code."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("schemas", "pipelines", "flows", "uplift")


def test_the_wheel_ships_only_the_four_packages():
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = find_packages(where=REPO, include=include)
    assert {p.split(".")[0] for p in shipped} == set(PRODUCT), shipped


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_product_module_imports_tests_or_benchmarks():
    """Fault injection, fixtures and benchmark-only code live outside the product (tests/support,
    benchmarks/): no product behaviour depends on them."""
    offenders = [str(p.relative_to(REPO)) for pkg in PRODUCT for p in sorted((REPO / pkg).rglob("*.py"))
                 if _imported_roots(p) & {"tests", "benchmarks"}]
    assert offenders == []
