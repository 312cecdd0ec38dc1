"""Integrity inside whole builds (issue 23): bad files become reject rows and the build commits the rest;
a file swapped between listing and reading is recorded under the hash of what was read, so the next
build notices; a tag that cannot be made leaves ``main`` and the tags as they were; the command line
says so in one line with exit code 1."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support import REPO
from tests.support.builds import CLI, build_config, make_inputs
from tests.support.hostile_cases import amass_arrays
from pipelines import build_amass as B
from pipelines.build_amass import build_amass
from schemas.errors import CorpusError
from schemas.reader import CorpusReader
from schemas.repository import open_repository


def _save(path: Path, **overrides) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # np.savez would append ".npz" to a name ending in ".NPZ"
        np.savez(fh, **{**amass_arrays(frames=60), **overrides})
    return path


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory):
    """Two good synthetic sequences plus one file per class a build must reject and go on."""
    tmp = tmp_path_factory.mktemp("integrity_build")
    root = make_inputs(tmp / "in", n_sequences=2, seed=4, duration_s=(1.0, 1.5))
    bad = root / "amass" / "Bad" / "s1"
    _save(bad / "far_poses.npz", trans=np.full((60, 3), 3.4e38))
    _save(bad / "huge_poses.npz", trans=np.full((60, 3), 1e300))
    _save(bad / "slow_poses.npz", mocap_framerate=np.array(1e-6))
    _save(bad / "a_poses.npz")
    _save(bad / "a_poses.NPZ")  # the same sequence key as a_poses.npz
    outside = _save(tmp / "elsewhere" / "secret_poses.npz")
    os.symlink(outside, bad / "link_poses.npz")
    with open(bad / "sparse_poses.npz", "wb") as fh:
        fh.truncate(4 << 40)  # 4 TiB, nothing on disk
    corpus = tmp / "corpus"
    result = build_amass(build_config(root, corpus, tag="v1"))
    return root, corpus, result


def _reasons(result) -> dict[str, str]:
    return {os.path.basename(r.source_path): r.reason for r in result.rejects}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bad_sources_become_rejects_and_the_build_commits_the_rest(hostile_tree):
    root, corpus, result = hostile_tree
    reasons = _reasons(result)
    assert set(reasons) == {"far_poses.npz", "huge_poses.npz", "slow_poses.npz", "a_poses.npz", "link_poses.npz",
                            "sparse_poses.npz"}, reasons
    assert "beyond the documented bound of 10000" in reasons["far_poses.npz"]
    assert "beyond the documented bound of 10000" in reasons["huge_poses.npz"]
    assert "1-1000 Hz" in reasons["slow_poses.npz"]
    assert "collides with that of" in reasons["a_poses.npz"] and "a_poses.NPZ" in reasons["a_poses.npz"]
    assert "outside the AMASS root" in reasons["link_poses.npz"]
    assert "over the 1073741824-byte limit" in reasons["sparse_poses.npz"]
    reader = CorpusReader.open(corpus, "v1")
    keys = set(reader.sequences.column("key").to_pylist())
    assert "Bad/s1/a_poses" in keys  # the first of the colliding pair is built
    assert len(keys) >= 3
    for k in keys:  # and every frame committed is finite and plausible
        assert np.abs(reader.read_sequence(k)["joints_world"]).max() < 1e4


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_file_swapped_between_listing_and_reading_is_noticed_by_the_next_build(tmp_path, monkeypatch):
    root = make_inputs(tmp_path / "in", n_sequences=2, seed=6, duration_s=(1.0, 1.5))
    files = sorted((root / "amass").rglob("*_poses.npz"))
    target, other = files[0], files[1]
    original, swapped = target.read_bytes(), other.read_bytes()
    real_list = B.list_sources

    def list_then_swap(r, *args, **kw):
        out = real_list(r, *args, **kw)  # hashes the original (or trusts no status: a first build)
        target.write_bytes(swapped)  # swapped before the workers read it
        return out

    monkeypatch.setattr(B, "list_sources", list_then_swap)
    corpus = tmp_path / "corpus"
    build_amass(build_config(root, corpus))
    monkeypatch.setattr(B, "list_sources", real_list)
    row = next(r for rows in CorpusReader.open(corpus).source_index().values() for r in rows
               if r["key"].startswith(str(target.relative_to(root / "amass").with_suffix(""))))
    assert row["source_sha256"] == hashlib.sha256(swapped).hexdigest()  # the bytes the motion came from

    target.write_bytes(original)  # swapped back: the version holds the other file's motion
    again = build_amass(build_config(root, corpus))
    assert not again.up_to_date and again.n_recomputed == 1, "the next build did not notice the swap"
    row = next(r for rows in CorpusReader.open(corpus).source_index().values() for r in rows
               if r["key"] == row["key"])
    assert row["source_sha256"] == hashlib.sha256(original).hexdigest()


def test_a_tag_that_fails_after_the_commit_moves_main_back(tmp_path, monkeypatch):
    """Tags are checked before the commit; should creating one still fail (the store refusing it), the
    branch is moved back: the command reports a failure and has committed nothing."""
    from tests.support.corpus_fixtures import make_seqs, write_corpus
    from pipelines import writer as W

    p = tmp_path / "c"
    write_corpus(p, make_seqs(0, lengths=(20,)), tag="v1")
    repo = open_repository(p)
    before = (repo.lookup_branch("main"), sorted(repo.list_tags()))

    def refuse(*a, **kw):
        raise CorpusError(f"{p}: cannot create tag 'v2': refused by the store")

    monkeypatch.setattr(W, "create_tag", refuse)
    with pytest.raises(CorpusError, match="refused by the store"):
        write_corpus(p, make_seqs(1, lengths=(30,)), tag="v2")
    repo = open_repository(p)
    assert (repo.lookup_branch("main"), sorted(repo.list_tags())) == before
    assert CorpusReader.open(p).n_frames == 20


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.mark.timeout(600)
def test_cli_refuses_a_branch_name_as_tag_before_building(tmp_path):
    root = make_inputs(tmp_path / "in", n_sequences=1, seed=2, duration_s=(1.0, 1.2))
    corpus = tmp_path / "corpus"
    line = _error_line(_cli("build-amass", root / "amass", "--body-models", root / "body_models", "--corpus", corpus,
                            "--workers", "1", "--tag", "main"))
    assert "invalid tag name 'main'" in line and str(corpus) in line
    assert not corpus.exists() or not any(corpus.iterdir())  # nothing built, nothing committed


@pytest.mark.timeout(300)
def test_cli_train_refuses_a_yaml_alias_bomb_in_one_line(tmp_path):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text("preset: tiny\ntrain_subjects:\n  - &a [x, x, x, x, x, x, x, x, x, x]\n  - [*a, *a, *a, *a]\n")
    line = _error_line(_cli("train", "--config", cfg, "--corpus", tmp_path / "none", "--out", tmp_path / "run"))
    assert str(cfg) in line and "anchors and aliases" in line
