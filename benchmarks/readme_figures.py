"""Rewrite the README's figures section from ``benchmarks/RESULTS.md`` (no figure typed by hand).

    python -m benchmarks.readme_figures [--check]

Everything between the ``<!-- figures:begin -->`` and ``<!-- figures:end -->`` markers is replaced
by RESULTS.md's header and table. ``--check`` exits 1 when the README is not what RESULTS.md gives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def figures_section(results_md: str) -> str:
    """The README text for RESULTS.md: its description and table, without its title."""
    body = [ln for ln in results_md.strip().splitlines() if not ln.startswith("# ")]
    note = ("Generated from [benchmarks/RESULTS.md](benchmarks/RESULTS.md) by `make bench` "
            "(`benchmarks/readme_figures.py`); do not edit by hand.")
    return "\n".join([BEGIN, note, *body, END])


def render(readme: str, results_md: str) -> str:
    """``readme`` with its marked section replaced; raises ValueError when the markers are missing."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} ... {END} section")
    return readme[:start] + figures_section(results_md) + readme[end + len(END):]


def update_readme(readme: Path = REPO / "README.md", results: Path = REPO / "benchmarks" / "RESULTS.md",
                  check: bool = False) -> bool:
    """Rewrite (or with ``check`` only compare) the README section; True when it was up to date."""
    old = readme.read_text()
    new = render(old, results.read_text())
    if not check and new != old:
        readme.write_text(new)
    return new == old


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that the README matches RESULTS.md")
    a = ap.parse_args(argv)
    same = update_readme(check=a.check)
    if a.check and not same:
        print("README figures differ from benchmarks/RESULTS.md: run `python -m benchmarks.readme_figures`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
