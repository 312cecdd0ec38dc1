"""Killed builds, killed Dask workers and concurrent builds lose nothing and corrupt nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from pipelines.build import BuildConfig, build_amass
from pipelines.checksums import corpus_checksums
from pipelines.corpus import CorpusReader
from pipelines.faults import ENV as FAULT_ENV
from pipelines.versions import list_versions
from schemas.errors import CorpusError
from schemas.validate import validate_corpus

KILL_TRIALS = 10


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from pipelines.synthetic.body_model import write_body_model_tree
    from pipelines.synthetic.motions import write_amass_tree

    root = tmp_path_factory.mktemp("crash")
    write_body_model_tree(root / "body_models", seed=0)
    write_amass_tree(root / "amass", n_sequences=8, seed=5, duration_s=(2.0, 6.0), smplx_fraction=0.0)
    return root


def _cfg(root: Path, corpus: Path, **kw) -> BuildConfig:
    return BuildConfig(amass_root=root / "amass", body_models=root / "body_models", corpus=corpus,
                       n_workers=1, **kw)


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("reference") / "corpus"
    build_amass(_cfg(inputs, corpus))
    return corpus_checksums(CorpusReader.open(corpus))


def _build_cmd(root: Path, corpus: Path, tag: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "pipelines.cli", "build-amass", str(root / "amass"),
           "--body-models", str(root / "body_models"), "--corpus", str(corpus), "--workers", "1"]
    return cmd + (["--tag", tag] if tag else [])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _assert_no_half_written_version(corpus: Path) -> None:
    """After a crash the latest version is either absent or a complete, valid one."""
    if not corpus.exists():
        return
    try:
        reader = CorpusReader.open(corpus)
    except CorpusError:
        return  # no commit yet: nothing to see
    assert validate_corpus(corpus, reader.version_id) == []


def test_sigkilled_builds_rerun_to_identical_content(inputs, reference, tmp_path):
    """>= 10 SIGKILLs at named phases and random times; each rerun equals an uninterrupted build."""
    faults = ["write:1", "write:3", "write:6", "commit", None, None, None, None, None, None]
    rng = np.random.default_rng(7)
    for trial, fault in enumerate(faults[:KILL_TRIALS]):
        corpus = tmp_path / f"trial{trial}"
        env = {**os.environ, **({FAULT_ENV: fault} if fault else {})}
        proc = subprocess.Popen(_build_cmd(inputs, corpus), env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if fault is None:
            time.sleep(float(rng.uniform(2.0, 9.0)))
        else:
            proc.wait(timeout=300)
        killed = proc.poll() is None or proc.returncode == -signal.SIGKILL
        _kill_group(proc)
        _assert_no_half_written_version(corpus)
        report = build_amass(_cfg(inputs, corpus))
        assert corpus_checksums(CorpusReader.open(corpus, report.version_id)) == reference, (trial, fault)
        assert validate_corpus(corpus) == []
        if fault is not None:
            assert killed, f"fault {fault} did not kill the build"


def test_killed_dask_worker_build_still_completes(inputs, reference, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        killed = []

        def kill_one_worker(done, total, info):
            if not killed and done >= 1:
                pid = next(iter(cluster.workers.values())).process.pid
                for child in psutil.Process(pid).children(recursive=True) or [psutil.Process(pid)]:
                    child.kill()
                killed.append(pid)

        cfg = _cfg(inputs, tmp_path / "corpus", scheduler=cluster.scheduler_address, max_in_flight=8)
        report = build_amass(cfg, progress=kill_one_worker)
    assert killed, "no worker was killed"
    assert not report.rejects or all("cut" not in r.source_path for r in report.rejects)
    assert corpus_checksums(CorpusReader.open(tmp_path / "corpus")) == reference


def test_two_concurrent_builds_and_a_pinned_reader(inputs, tmp_path):
    corpus = tmp_path / "corpus"
    first = build_amass(_cfg(inputs, corpus, tag="old"))
    before = corpus_checksums(CorpusReader.open(corpus, "old"))
    n_before = len(list_versions(corpus))

    # Two builds with different data settings, so both have something to commit.
    procs = [subprocess.Popen(_build_cmd(inputs, corpus) + ["--fps", fps], start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for fps in ("25", "30")]
    seen = []
    stop = threading.Event()

    def keep_reading():
        while not stop.is_set():
            seen.append(corpus_checksums(CorpusReader.open(corpus, "old")) == before)

    reader_thread = threading.Thread(target=keep_reading)
    reader_thread.start()
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        stop.set()
        reader_thread.join()
        for p in procs:
            if p.poll() is None:
                _kill_group(p)
    assert seen and all(seen), "a reader pinned to the old version saw it change"
    codes = [p.returncode for p in procs]
    committed = sum(c == 0 for c in codes)
    for code, text in zip(codes, outputs):
        if code != 0:
            assert "conflict" in text.lower(), text[-2000:]
    assert committed >= 1
    versions = list_versions(corpus)
    assert len(versions) == n_before + committed  # each successful build is one commit, in sequence
    assert first.version_id in [v.id for v in versions]
    assert validate_corpus(corpus) == []
    assert corpus_checksums(CorpusReader.open(corpus, "old")) == before
