"""Shared pytest setup: keep numeric libraries to the cores CI has, tests off the network, and the fast
tier fast.

Tiers: ``make test`` (CI) runs every test; ``make test-fast`` (``pytest -m "not slow"``) is the loop a
developer runs while working and must stay under 3 minutes on 2 cores. The rule that keeps it so: a test
that takes over ``SLOW_TEST_S`` seconds, setup, call and teardown together (a module fixture that builds a
corpus is set up in its first test), is marked ``@pytest.mark.slow``. The terminal summary lists any
unmarked test that went over; it reports and never fails, since timings move with the machine's load.
"""

import os
import time

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLED", "false")

SLOW_TEST_S = 20.0
_unmarked_over: list[tuple[float, str]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0 = time.perf_counter()
    yield
    seconds = time.perf_counter() - t0
    if seconds > SLOW_TEST_S and item.get_closest_marker("slow") is None:
        _unmarked_over.append((seconds, item.nodeid))


def pytest_terminal_summary(terminalreporter):
    if _unmarked_over:
        terminalreporter.write_sep("=", f"over {SLOW_TEST_S:.0f} s but not marked slow (mark them: tests/conftest.py)",
                                   yellow=True)
        for seconds, nodeid in sorted(_unmarked_over, reverse=True):
            terminalreporter.write_line(f"{seconds:7.1f}s {nodeid}")
