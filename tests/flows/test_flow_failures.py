"""Failures that say why: an expected error ends the flow run Failed with its one-line reason as the
state message and no traceback in the run's logs; an unexpected error keeps its traceback."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from schemas.records import Reject

pytestmark = pytest.mark.slow


def run_logs(flow_run_id) -> str:
    """Every log line of a flow run and its task runs, as the UI shows them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def server_state(flow_run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


@pytest.fixture
def scripted_build(monkeypatch):
    """build_amass / validate_corpus replaced: ``plan`` says what the next build does."""
    import pipelines.build_amass as build
    from tests.flows.test_flows_fake import FakeReport

    plan = {"build": None, "problems": [], "calls": 0}

    def build_amass(cfg, progress=None):
        plan["calls"] += 1
        if isinstance(plan["build"], BaseException):
            raise plan["build"]
        return plan["build"](cfg) if plan["build"] else FakeReport(corpus=str(cfg.corpus))

    monkeypatch.setattr(build, "build_amass", build_amass)
    validate = types.ModuleType("schemas.validate")
    validate.validate_corpus = lambda path, version=None, keys=None: list(plan["problems"])
    monkeypatch.setitem(sys.modules, "schemas.validate", validate)
    return plan


def _args(tmp_path, root=None):
    from pipelines.build_amass import BuildConfig

    return dict(config=BuildConfig(amass_root=root or tmp_path / "amass", body_models=tmp_path / "bm",
                                   corpus=tmp_path / "corpus"))


def _failed_cleanly(state, reason: str) -> None:
    run_id = state.state_details.flow_run_id
    on_server = server_state(run_id)
    assert on_server.is_failed()
    assert on_server.message == reason  # what --watch, `prefect flow-run inspect` and the UI show
    logs = run_logs(run_id)
    assert reason in logs
    assert "Traceback" not in logs, logs[-3000:]


def test_config_error_fails_with_its_reason_and_no_traceback(prefect_api, tmp_path):
    """The real build, with an AMASS root that does not exist (the ConfigError of the issue)."""
    from flows.build_amass import build_amass_flow

    (tmp_path / "bm").mkdir()
    state = build_amass_flow(**_args(tmp_path, root=Path("/nonexistent")), return_state=True)
    _failed_cleanly(state, "/nonexistent: AMASS root is not a directory")


def test_reject_everything_build_fails_with_a_reason(prefect_api, scripted_build, tmp_path):
    from flows.build_amass import build_amass_flow
    from tests.flows.test_flows_fake import FakeReport

    bad = Reject(str(tmp_path / "amass" / "A" / "x_poses.npz"), "not a readable .npz (zip) file", "amass")
    scripted_build["build"] = lambda cfg: FakeReport(corpus=str(cfg.corpus), n_sequences=0, n_frames=0, n_views=0,
                                                     rejects=[bad, bad])
    state = build_amass_flow(**_args(tmp_path), return_state=True)
    _failed_cleanly(state, f"{tmp_path / 'corpus'}: every source was rejected (2 files), e.g. "
                           f"{bad.source_path}: {bad.reason}")


def test_validation_failure_fails_with_a_reason(prefect_api, scripted_build, tmp_path):
    from flows.build_amass import build_amass_flow

    scripted_build["problems"] = ["views: offset 12 past the end of keypoints_2d"]
    state = build_amass_flow(**_args(tmp_path), return_state=True)
    _failed_cleanly(state, f"{tmp_path / 'corpus'}: version SNAP123 failed validation (1 problems): "
                           "views: offset 12 past the end of keypoints_2d")


def test_typed_error_in_the_task_is_not_retried_and_has_no_traceback(prefect_api, scripted_build, tmp_path):
    from flows.build_amass import build_amass_flow
    from schemas.errors import AmassFormatError

    scripted_build["build"] = AmassFormatError("/data/x.npz", "poses has shape (3,), expected (T, 156)")
    state = build_amass_flow(**_args(tmp_path), return_state=True)
    _failed_cleanly(state, "/data/x.npz: poses has shape (3,), expected (T, 156)")
    assert scripted_build["calls"] == 1


def test_unexpected_error_keeps_its_traceback(prefect_api, scripted_build, tmp_path, monkeypatch):
    from flows.build_amass import build_amass_flow, run_build

    monkeypatch.setattr(run_build, "retry_delay_seconds", 0)
    scripted_build["build"] = ZeroDivisionError("a bug, not bad input")
    state = build_amass_flow(**_args(tmp_path), return_state=True)
    run_id = state.state_details.flow_run_id
    assert server_state(run_id).is_failed()
    logs = run_logs(run_id)
    assert "Traceback" in logs and "ZeroDivisionError: a bug, not bad input" in logs
