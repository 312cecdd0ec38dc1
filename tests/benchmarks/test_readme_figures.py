"""The README's figures are RESULTS.md's, rewritten by a script: none is typed by hand."""

from __future__ import annotations

import pytest

from benchmarks import readme_figures
from benchmarks.readme_figures import REPO


def test_render_replaces_only_the_marked_section():
    readme = f"intro\n{readme_figures.BEGIN}\n| old | 1 |\n{readme_figures.END}\nafter\n"
    results = "# Benchmark results\n\nmeasured on X\n\n| measure | ours |\n|---|---|\n| a | 42 |\n"
    out = readme_figures.render(readme, results)
    assert out.startswith("intro\n") and out.endswith("\nafter\n")
    assert "| a | 42 |" in out and "| old | 1 |" not in out and "# Benchmark results" not in out
    assert readme_figures.render(out, results) == out  # idempotent
    with pytest.raises(ValueError):
        readme_figures.render("no markers", results)


def test_readme_figures_match_results_md():
    assert readme_figures.update_readme(REPO / "README.md", REPO / "benchmarks" / "RESULTS.md", check=True), \
        "README figures differ from benchmarks/RESULTS.md: run python benchmarks/readme_figures.py"
