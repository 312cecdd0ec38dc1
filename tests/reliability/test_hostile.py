"""Hostile files (issue 16): every crafted file ends as a typed error naming it, never a signal, hang or bomb.

All cases run once, each in its own forked child of a fresh interpreter (``hostile_runner.run_suite``),
so a segfault in one fails that case's test instead of killing pytest.
"""

import json
import subprocess
import sys

import pytest

from tests.support import REPO
from tests.support.hostile_cases import CASES
from tests.support.hostile_runner import run_suite, summary


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    return {r["name"]: r for r in run_suite(work)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_case(results, case):
    r = results[case.name]
    want = "typed error naming the file" if case.expect == "typed" else "a normal load"
    assert r["ok"], (f"{case.name} ({case.category}): expected {want}, got {r['outcome']} "
                     f"(rss +{r.get('rss_mb', 0):.0f} MB, over budget: {r['over_budget']}, "
                     f"payload ran: {r['payload_ran']}): {r['message']}")


def test_summary_counts_what_failed(results):
    counts = summary(list(results.values()))
    assert counts["hostile_cases"] == len(CASES)
    assert counts["hostile_crashes"] == counts["hostile_hangs"] == counts["hostile_over_budget"] == 0
    # the counters are not constants: a crash, a hang and a bomb are each counted
    fake = [{**r, "outcome": o, "over_budget": b, "ok": False} for r, (o, b) in
            zip(list(results.values())[:3], [("crash", False), ("hang", False), ("typed", True)])]
    bad = summary(fake)
    assert (bad["hostile_crashes"], bad["hostile_hangs"], bad["hostile_over_budget"]) == (1, 1, 1)


def test_runner_isolates_a_segfault_and_a_hang(tmp_path):
    """The runner itself: a child that segfaults is a crash, one that never returns is a hang.

    Run from a fresh interpreter (as run_suite does), never forked from this multi-threaded pytest.
    """
    code = (
        "import json, sys; from pathlib import Path; from tests.support import hostile_runner as h\n"
        "from tests.support.hostile_cases import Case\n"
        "crash = Case('segfault', 'self_test', lambda w: ('ctypes:string_at', [0], ''))\n"
        "hang = Case('hang', 'self_test', lambda w: ('time:sleep', [30], ''))\n"
        "w = Path(sys.argv[1])\n"
        "print(json.dumps([h.run_case(crash, w)['outcome'], h.run_case(hang, w, hang_s=1.0)['outcome']]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["crash", "hang"], out.stderr[-2000:]


def test_each_case_has_its_own_payload_marker(tmp_path):
    """A payload that runs in one case marks that case only, never the cases run after it.

    The first case's target leaves its marker (``open(marker, "w")``); the second does nothing."""
    code = (
        "import json, sys; from pathlib import Path; from tests.support import hostile_runner as h\n"
        "from tests.support.hostile_cases import Case\n"
        "w = Path(sys.argv[1])\n"
        "ran = Case('ran', 'self_test', lambda d: ('builtins:open', [str(h.payload_marker(w, ran)), 'w'], ''),\n"
        "           expect='loads')\n"
        "clean = Case('clean', 'self_test', lambda d: ('builtins:len', ['abc'], ''), expect='loads')\n"
        "print(json.dumps([h.run_case(ran, w)['payload_ran'], h.run_case(clean, w)['payload_ran']]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False], out.stderr[-2000:]
