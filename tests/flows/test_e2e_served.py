"""End to end through a real Prefect server: serve every deployment, run ``build-amass/local`` with the
CLI on a small generated AMASS tree (one broken file), validate the committed version, then
``pretrain/local`` and ``finetune/local`` through the client with the tiny config.
The session fixture stops everything and asserts no process we started is left."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from flows.server import prefect_exe
from tests.flows.conftest import artifacts_of, prefect_settings

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(prefect_stack):
    prefect_stack.start_serve(cwd=REPO)
    return prefect_stack


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from tests.support.builds import make_inputs

    return make_inputs(tmp_path_factory.mktemp("e2e"), n_sequences=3, seed=3, duration_s=(1.0, 2.0), broken=True)


def _cli_run(stack, deployment: str, params: dict, timeout_s: int = 240) -> tuple[str, str]:
    cmd = [prefect_exe(), "deployment", "run", deployment, "--watch", "--watch-timeout", str(timeout_s)]
    for k, v in params.items():
        cmd += ["-p", f"{k}={v}"]
    r = subprocess.run(cmd, env=stack.env(), capture_output=True, text=True, timeout=timeout_s + 30)
    assert r.returncode == 0, f"{deployment} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", r.stdout).group(1)
    return flow_run_id, r.stdout


@pytest.fixture(scope="module")
def built(served, inputs):
    corpus = inputs / "corpus"
    run_id, _ = _cli_run(served, "build-amass/local",
                         {"config": json.dumps({"amass_root": str(inputs / "amass"), "body_models": str(inputs / "body_models"),
                                                "corpus": str(corpus), "tag": "e2e", "n_workers": 1})})
    return corpus, run_id


def test_build_amass_deployment_commits_a_valid_version_and_lists_the_broken_file(served, built):
    from schemas.versions import resolve_version
    from schemas.validate import validate_corpus

    corpus, run_id = built
    assert validate_corpus(corpus, "e2e") == []
    with prefect_settings(served):
        arts = artifacts_of(run_id)
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
    assert run.state.is_completed()
    report = next(a for a in arts if a.key == "build-amass-report")
    assert "cut_poses.npz" in report.data and "Rejects (1)" in report.data
    assert resolve_version(corpus, "e2e") in report.data


def test_pretrain_then_finetune_deployments_write_run_dirs(served, built, tmp_path_factory):
    pytest.importorskip("uplift.train")
    from prefect.deployments import run_deployment

    corpus, _ = built
    runs = tmp_path_factory.mktemp("runs")
    with prefect_settings(served):
        pre = run_deployment("pretrain/local", timeout=300,
                             parameters={"corpus": [f"{corpus}@e2e"], "out_dir": str(runs / "pre"), "config": "tiny"})
        assert pre.state.is_completed(), pre.state
        ft = run_deployment("finetune/local", timeout=300,
                            parameters={"corpus": [f"{corpus}@e2e"], "init": str(runs / "pre"),
                                        "out_dir": str(runs / "ft"), "config": "tiny"})
        assert ft.state.is_completed(), ft.state
        arts = artifacts_of(ft.id)
    from flows.training import DONE_MARKER, find_checkpoint

    assert (runs / "ft" / DONE_MARKER).is_file()
    assert (find_checkpoint(runs / "ft") / "model.safetensors").stat().st_size > 0
    ft_cfg = json.loads((runs / "ft" / "config.json").read_text())
    assert ft_cfg["init"] and ft_cfg["uplift"]["train"]["lr"] == 2e-5  # fine-tuned from the pretrain run
    assert {"finetune-report", "finetune-run-dir"} <= {a.key for a in arts}


def test_prefect_yaml_deploys_every_flow_to_a_work_pool(prefect_stack):
    """`prefect deploy --all` (users with their own server and pools) registers the five deployments."""
    env = prefect_stack.env()
    pool = subprocess.run([prefect_exe(), "work-pool", "create", "mocap", "--type", "process"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert pool.returncode == 0, pool.stdout + pool.stderr
    r = subprocess.run([prefect_exe(), "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with prefect_settings(prefect_stack):
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            names = {(client.read_flow(d.flow_id).name, d.name, d.work_pool_name)
                     for d in client.read_deployments()}
    expected = {"build-amass", "build-h36m", "pretrain", "finetune", "evaluate"}
    assert {(f, "local", "mocap") for f in expected} <= names


def test_failed_build_says_why_in_watch_and_inspect(served, tmp_path):
    """`prefect deployment run --watch` and `prefect flow-run inspect` show the one-line reason of an
    expected failure (the state message), without a traceback."""
    reason = "/nonexistent: AMASS root is not a directory"
    cmd = [prefect_exe(), "deployment", "run", "build-amass/local", "--watch", "--watch-timeout", "240",
           "-p", "config=" + json.dumps({"amass_root": "/nonexistent", "body_models": str(tmp_path),
                                          "corpus": str(tmp_path / "c")})]
    r = subprocess.run(cmd, env=served.env(), capture_output=True, text=True, timeout=300)
    watched = r.stdout + r.stderr
    assert r.returncode == 1, watched[-3000:]
    assert reason in " ".join(watched.split()), watched[-3000:]  # rich wraps long lines
    assert "Traceback" not in watched, watched[-3000:]
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", r.stdout).group(1)
    inspect = subprocess.run([prefect_exe(), "flow-run", "inspect", run_id], env=served.env(), capture_output=True,
                             text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr[-2000:]
    assert reason in " ".join(inspect.stdout.split()), inspect.stdout[-3000:]
