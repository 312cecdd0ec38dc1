"""Integrity at every door (issue 23): each crafted input ends as a typed error naming the file and the
limit it broke, or as a reject row of a build that goes on, within seconds and a few hundred MB.

All cases of ``tests.support.integrity_cases`` run once, each in its own forked child of a fresh
interpreter under a memory and a CPU limit (``hostile_runner.run_suite``): a case that hangs or bombs
fails its own test. One test per case, named by its class.
"""

from __future__ import annotations

import pytest

from tests.support.hostile_runner import integrity_summary, run_suite
from tests.support.integrity_cases import CASES, CATEGORIES

ISSUE_CLASSES = {"amplification", "work_before_budget", "unbounded_reader", "parameter_range", "implausible_value",
                 "lying_version", "failure_after_commit", "untyped"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    work = tmp_path_factory.mktemp("integrity")
    return {r["name"]: r for r in run_suite(work, suite="integrity")}


@pytest.mark.slow  # the suite behind ``results`` runs every case in its own child (~8 s on 2 cores)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.category}-{c.name}")
def test_integrity_case(results, case):
    r = results[case.name]
    want = "a typed error naming the file" if case.expect == "typed" else "a normal return"
    assert r["ok"], (f"{case.name} ({case.category}): expected {want} saying {case.match!r}, got {r['outcome']} "
                     f"in {r.get('seconds', 0):.1f} s (rss +{r.get('rss_mb', 0):.0f} MB, over budget: "
                     f"{r['over_budget']}, payload ran: {r['payload_ran']}): {r['message']}")
    assert r["seconds"] < 60  # "within seconds": the runner's hang limit, never a wall-clock figure asserted


def test_every_class_of_the_issue_has_cases():
    assert set(CATEGORIES) == ISSUE_CLASSES
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.slow
def test_summary_counts_failures_per_class(results):
    counts = integrity_summary(list(results.values()))
    assert counts["integrity_cases"] == len(CASES) and counts["integrity_failures"] == 0
    assert sum(v["cases"] for v in counts["integrity_by_class"].values()) == len(CASES)
    # the counter is not a constant: two failed cases of one class are counted there
    fake = [{**r, "ok": False} if i < 2 else r for i, r in enumerate(results.values())]
    bad = integrity_summary(fake)
    first = CASES[0].category
    assert bad["integrity_failures"] == 2 and bad["integrity_by_class"][first]["failures"] >= 1
