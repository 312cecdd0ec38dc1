"""A real Dask cluster: ``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1 build into an S3
corpus while one worker is SIGKILLed mid-build; the result equals a LocalCluster build, array by array
and manifest by manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.s3_server import BUCKET, S3_ENV, create_bucket, start_s3_server

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env(endpoint: str) -> dict:
    from schemas.storage import S3_ENDPOINT_ENV

    # workers import the project: PYTHONPATH is inherited
    pp = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **S3_ENV, S3_ENDPOINT_ENV: endpoint, "PYTHONPATH": pp, "OMP_NUM_THREADS": "1"}


def _spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, cwd=REPO, start_new_session=True,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its nanny: it does not come back
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _wait_for(cond, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise TimeoutError(what)


def _build_cmd(inputs: Path, corpus: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "build-amass", str(inputs / "amass"), "--body-models",
            str(inputs / "body_models"), "--corpus", corpus, *extra]


def test_killed_worker_on_a_real_cluster_build_equals_local_build(tmp_path, monkeypatch):
    from distributed import Client

    from pipelines.hashing import corpus_checksums
    from schemas.reader import CorpusReader
    from tests.support.builds import make_inputs

    inputs = make_inputs(tmp_path / "in", n_sequences=6, duration_s=(2.0, 4.0))
    server, endpoint = start_s3_server()
    procs: list[subprocess.Popen] = []
    try:
        create_bucket(endpoint)
        env = _env(endpoint)
        sched_file = tmp_path / "scheduler.json"
        procs.append(_spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                             "--scheduler-file", str(sched_file)], env, tmp_path / "scheduler.log"))
        _wait_for(sched_file.exists, 60, "scheduler file")
        address = json.loads(sched_file.read_text())["address"]
        workers = [_spawn(["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                           "--host", "127.0.0.1", "--name", f"w{i}"], env, tmp_path / f"worker{i}.log")
                   for i in range(2)]
        procs += workers
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            # one source per shard: six tasks, so both workers get some (one 64 MB shard could all go to w1)
            build = subprocess.Popen(_build_cmd(inputs, f"s3://{BUCKET}/cluster", "--scheduler", address,
                                                "--shard-mb", "0.001"),
                                     env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
            procs.append(build)
            # kill the worker named w0 as soon as it is computing a sequence
            busy = _wait_for(lambda: next((w for w, keys in client.processing().items()
                                           if keys and "process_source" in str(keys)
                                           and client.scheduler_info()["workers"][w]["name"] == "w0"), None),
                             120, "no worker of the cluster started a sequence")
            assert busy and build.poll() is None, "the build ended before the kill"
            _kill(workers[0])
            out = build.communicate(timeout=600)[0]
            assert build.returncode == 0, out[-3000:]
            assert len(client.scheduler_info()["workers"]) == 1  # it really was gone
        # the reference: the same build on a LocalCluster
        ref = subprocess.run(_build_cmd(inputs, f"s3://{BUCKET}/local", "--workers", "2", "--shard-mb", "0.001"), env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=600)
        assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
        for k in (*S3_ENV, "MOCAP_CORPUS_S3_ENDPOINT"):
            monkeypatch.setenv(k, env[k])
        got = corpus_checksums(CorpusReader.open(f"s3://{BUCKET}/cluster"))
        want = corpus_checksums(CorpusReader.open(f"s3://{BUCKET}/local"))
        assert set(got) == set(want) and len(want) > 3
        for key in want:  # array by array, manifest by manifest
            assert got[key] == want[key], key
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                _kill(p)
        server.stop()
