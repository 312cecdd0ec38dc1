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


def test_results_md_is_what_results_json_gives():
    """RESULTS.md is regenerated from results.json (what the benchmark scripts wrote) and compared: a figure
    edited by hand in RESULTS.md and the README together no longer passes."""
    import json

    from benchmarks.run_all import RESULTS_JSON, RESULTS_MD, results_markdown

    assert results_markdown(json.loads(RESULTS_JSON.read_text())) == RESULTS_MD.read_text(), \
        "benchmarks/RESULTS.md differs from benchmarks/results.json: run python benchmarks/run_all.py --render-only"


def test_every_row_names_its_machine_and_date():
    from benchmarks.run_all import results_markdown

    entry = {"script": "benchmarks/bench_model.py", "args": ["--rounds", "1"], "machine": "1 core X, load 0.1",
             "started": "2030-01-02T03:04:05+00:00",
             "result": {"params_351": 1e6, "params_81": 1e6, "flops_351": 1e6, "flops_81": 1e6, "pps_cpu_351": 10.0,
                        "keyframe_speedup_351": 2.0}}
    rows = [ln for ln in results_markdown({"model": entry}).splitlines() if ln.startswith("| model")]
    assert rows and all(ln.endswith("| 1 core X, load 0.1, 2030-01-02 |") for ln in rows), rows


def test_readme_types_no_figure_outside_the_generated_section():
    """Throughput figures (thousands of windows/frames a second, hours of training) appear in the README
    only inside the generated section: none typed by hand elsewhere."""
    import re

    text = (REPO / "README.md").read_text()
    outside = text[:text.find(readme_figures.BEGIN)] + text[text.find(readme_figures.END):]
    typed = re.findall(r"\b\d{1,3}(?:,\d{3})+\s*(?:windows|frames|poses)/s|\b\d+(?:\.\d+)?\s*h\b(?! *=)|"
                       r"~?\d+x headroom", outside)
    assert not typed, typed
