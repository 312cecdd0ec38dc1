"""A version conflict is retried in one layer, the build: both builds start again on top of the version
that won, up to COMMIT_ATTEMPTS builds in all (the flows' task does not retry it again)."""

from __future__ import annotations

import pytest

from pipelines import build_h36m as h36m
from pipelines.build_result import COMMIT_ATTEMPTS, on_top_of_conflicts
from schemas.errors import VersionConflictError


def _script(outcomes):
    """A build that fails with the scripted conflicts, then returns; ``calls`` counts the builds."""
    calls = []

    def build_once():
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return build_once, calls


def test_a_conflict_starts_the_build_again_until_it_lands():
    build_once, calls = _script([VersionConflictError("raced"), VersionConflictError("raced again"), "SNAP"])
    assert on_top_of_conflicts(build_once) == "SNAP" and len(calls) == 3


def test_conflicts_past_the_attempts_reach_the_caller_and_other_errors_at_once():
    build_once, calls = _script([VersionConflictError(f"raced {i}") for i in range(COMMIT_ATTEMPTS)])
    with pytest.raises(VersionConflictError, match=f"raced {COMMIT_ATTEMPTS - 1}"):
        on_top_of_conflicts(build_once)
    assert len(calls) == COMMIT_ATTEMPTS
    build_once, calls = _script([ValueError("bad input")])
    with pytest.raises(ValueError):
        on_top_of_conflicts(build_once)
    assert len(calls) == 1


def test_the_h36m_import_is_retried_on_a_conflict_as_the_amass_build_is(monkeypatch):
    build_once, calls = _script([VersionConflictError("raced"), "RESULT"])
    monkeypatch.setattr(h36m, "_import_once", lambda cfg: build_once())
    assert h36m.build_h36m(object()) == "RESULT" and len(calls) == 2
