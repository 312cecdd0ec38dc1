"""A real local Prefect server (temporary PREFECT_HOME, free loopback port) shared by the flow tests."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from flows.server import LocalStack, free_port, new_tag, tagged_processes


@pytest.fixture(scope="session")
def prefect_stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    stack = LocalStack(home=home, port=free_port(), tag=new_tag(), ui=False, log_dir=home / "logs")
    try:
        stack.start_server()
        yield stack
    finally:
        stack.stop()
        # Every process we started (server, serve, flow-run subprocesses, Dask workers) is gone.
        left = tagged_processes(stack.tag)
        assert not left, f"orphan processes: {[(p.pid, p.cmdline()[:3]) for p in left]}"


@contextlib.contextmanager
def prefect_settings(stack: LocalStack):
    """Point this process's Prefect client at the test server (and its result storage)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack.api_url, PREFECT_HOME: str(stack.home),
                                     PREFECT_LOCAL_STORAGE_PATH: str(Path(stack.home) / "storage")}):
        yield


@pytest.fixture
def prefect_api(prefect_stack):
    from prefect.logging.handlers import APILogWorker

    with prefect_settings(prefect_stack):
        yield prefect_stack
        APILogWorker.drain_all(timeout=5)  # send this test's run logs while the server is still up


def artifacts_of(flow_run_id) -> list:
    """Artifacts created by one flow run and its task runs (through the Prefect client)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
