"""Corpora on object storage: every corpus command against a real S3-compatible server on 127.0.0.1.

The server is moto's standalone server (``moto[server]``), spoken to through the real Icechunk S3
client and boto3 (only to create the bucket); nothing of Icechunk or the store is mocked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.s3_server import BUCKET, S3_ENV, create_bucket, start_s3_server
from flows.cli import app
from schemas.errors import ConfigError, VersionConflictError
from schemas.storage import S3_ENDPOINT_ENV, is_url, parse_location, s3_parts

runner = CliRunner()


@pytest.fixture(scope="module")
def s3():
    """The endpoint of a running S3 server with bucket ``corpora``; the AWS env vars point at it."""
    server, endpoint = start_s3_server()
    mp = pytest.MonkeyPatch()
    for k, v in {**S3_ENV, S3_ENDPOINT_ENV: endpoint}.items():
        mp.setenv(k, v)
    create_bucket(endpoint)
    yield endpoint
    mp.undo()
    server.stop()


def run(*args, ok: bool = True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_locations_keep_urls_and_reject_unknown_schemes():
    assert parse_location("s3://bucket/a/b/") == "s3://bucket/a/b"
    assert parse_location(Path("s3://bucket/a")) == "s3://bucket/a"  # what Path() made of it, repaired
    assert parse_location("rel/dir") == Path("rel/dir") and not is_url("rel/dir")
    assert s3_parts("s3://bucket/a/b") == ("bucket", "a/b") and s3_parts("s3://bucket") == ("bucket", "")
    with pytest.raises(ConfigError, match="unsupported"):
        parse_location("gs://bucket/a")
    with pytest.raises(ConfigError, match="no bucket"):
        parse_location("s3:///a")


def test_every_corpus_command_on_s3(s3, tmp_path, monkeypatch):
    from pipelines.synthetic.h36m import DEFAULT_ACTIONS, write_h36m_files

    # small: two subjects (train S1, test S9), two actions, short sequences
    write_h36m_files(tmp_path / "h36m", subjects=("S1", "S9"), actions=tuple(DEFAULT_ACTIONS)[:2], frames=60,
                     missing_cameras={})
    url = f"s3://{BUCKET}/cli/h36m"
    monkeypatch.delenv(S3_ENDPOINT_ENV)  # the endpoint option instead of the env var
    run("--s3-endpoint", s3, "build-h36m", tmp_path / "h36m", "--corpus", url, "--detections", "gt", "--tag", "gt")
    assert os.environ[S3_ENDPOINT_ENV] == s3
    run("build-h36m", tmp_path / "h36m", "--corpus", url, "--tag", "cpn")
    assert not (Path.cwd() / "s3:").exists()  # nothing written to a local folder named after the URL
    from schemas.versions import list_versions

    versions = list_versions(url)
    assert [v.tags for v in versions] == [["cpn"], ["gt"]]
    listing = run("versions", url).output
    assert versions[0].id in listing and url in listing
    assert "valid" in run("validate", url, "--version", "gt").output
    run("tag", url, versions[1].id, "first")
    assert run("tag", url, versions[0].id, "first", ok=False).exit_code == 1  # tags stay immutable on S3
    assert "unchanged:" in run("diff", url, "first", "cpn").output
    run("rejects", url, "--version", "cpn")
    assert "data_3d_h36m.npz" in run("export-vp3d", url, "--version", "gt", "--out", tmp_path / "export").output

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"preset": "tiny", "train": {"epochs": 1, "batch_size": 8},
                                  "steps_per_epoch": 2, "eval_every": 0, "block_frames": 256}))
    run("train", "--config", config, "--corpus", f"{url}@cpn", "--out", tmp_path / "run")
    corpora = json.loads((tmp_path / "run" / "corpora.json").read_text())
    assert corpora["train"] == [f"{url}@{versions[0].id}"]
    assert "mpjpe_mm" in run("evaluate", tmp_path / "run", "--corpus", f"{url}@cpn").output

    missing = run("versions", f"s3://{BUCKET}/nothing-here", ok=False)
    assert missing.exit_code == 1 and "no corpus repository" in missing.output


def test_racing_commit_is_refused_by_icechunk_on_s3(s3, monkeypatch):
    """No lock on S3: when both writers pass the head check, Icechunk's conditional ref update decides."""
    import numpy as np

    from schemas.reader import CorpusReader
    from pipelines.writer import CorpusWriter
    from schemas.versions import list_versions
    from tests.support.corpus_fixtures import make_seq

    url = f"s3://{BUCKET}/race"
    rng = np.random.default_rng(0)
    a, b = CorpusWriter(url), CorpusWriter(url)
    a.add(make_seq(rng, "D/s/a", 30))
    b.add(make_seq(rng, "D/s/b", 30))
    won = a.commit("a")
    base = b._base
    # the race window: b read the branch head before a's commit landed
    monkeypatch.setattr(b._repo, "lookup_branch", lambda branch: base)
    with pytest.raises(VersionConflictError, match="conflict"):
        b.commit("b")
    assert [v.id for v in list_versions(url)] == [won]
    assert CorpusReader.open(url).sequences.column("key").to_pylist() == ["D/s/a"]


@pytest.mark.slow
def test_two_concurrent_builds_both_commit_one_rebased(s3, tmp_path):
    """Build B commits while build A computes; A's commit conflicts, A rebuilds on top of B and commits."""
    from distributed import LocalCluster

    from pipelines.build_amass import build_amass
    from schemas.reader import CorpusReader
    from schemas.versions import list_versions
    from tests.support.builds import build_config, make_inputs

    inputs = make_inputs(tmp_path / "in", n_sequences=3, duration_s=(1.0, 2.0))
    url = f"s3://{BUCKET}/concurrent"
    reports = {}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        def cfg(fps):
            return build_config(inputs, url, fps=fps, scheduler=cluster.scheduler_address)

        def b_meanwhile(done, total, info):
            if "b" not in reports:
                reports["b"] = build_amass(cfg(30.0))

        reports["a"] = build_amass(cfg(25.0), progress=b_meanwhile)
    a, b = reports["a"], reports["b"]
    versions = list_versions(url)
    assert [v.id for v in versions] == [a.version_id, b.version_id]  # a on top of b, both committed
    assert CorpusReader.open(url, a.version_id).fps == 25.0 and CorpusReader.open(url, b.version_id).fps == 30.0
    again = build_amass(build_config(inputs, url, fps=25.0))  # the S3 parent is found: nothing to redo
    assert again.up_to_date and again.version_id == a.version_id and len(list_versions(url)) == 2


@pytest.mark.slow
def test_two_worker_build_equals_one_worker_build_on_s3(s3, tmp_path):
    """Workers write their shards straight into the S3 repository through forked sessions; 2 workers
    build what 1 builds, array by array and row by row, and no build branch is left behind."""
    from tests.support.builds import build_config, make_inputs
    from pipelines.build_amass import build_amass
    from schemas.reader import CorpusReader
    from schemas.repository import open_repository
    from tests.pipelines.test_build_scale import SHARD_MB, assert_same_corpus

    inputs = make_inputs(tmp_path / "in", n_sequences=4, duration_s=(2.0, 4.0))
    for n in (1, 2):
        build_amass(build_config(inputs, f"s3://{BUCKET}/workers{n}", n_workers=n, shard_mb=SHARD_MB))
    one, two = CorpusReader.open(f"s3://{BUCKET}/workers1"), CorpusReader.open(f"s3://{BUCKET}/workers2")
    assert_same_corpus(one, two)
    assert one.sequences.num_rows >= 4
    assert open_repository(f"s3://{BUCKET}/workers2").list_branches() == {"main"}
