"""The fast tier's rule reports itself: a test over the limit that is not marked ``slow`` is named in the
run's summary (tests/conftest.py), a marked one or a quick one is not."""

from __future__ import annotations

import os
from pathlib import Path

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


def test_an_unmarked_test_over_the_limit_is_named_and_a_marked_one_is_not(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makeconftest("""
        import tests.conftest as tiers
        from tests.conftest import pytest_runtest_protocol, pytest_terminal_summary

        tiers.SLOW_TEST_S = 0.2
    """)
    pytester.makeini("[pytest]\nmarkers =\n    slow: long\n")
    pytester.makepyfile(test_timed="""
        import time

        import pytest

        def test_quick():
            pass

        def test_long_unmarked():
            time.sleep(0.3)

        @pytest.mark.slow
        def test_long_marked():
            time.sleep(0.3)
    """)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3)
    head, sep, flagged = result.stdout.str().partition("not marked slow")
    assert sep, head
    assert "test_long_unmarked" in flagged
    assert "test_long_marked" not in flagged and "test_quick" not in flagged
