"""`mocap-corpus gc`: reclaims what killed or aborted builds left, never a tagged or branch-reachable version."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from pipelines.hashing import corpus_checksums
from flows.cli import app
from schemas.reader import CorpusReader
from pipelines.writer import CorpusWriter
from schemas.repository import open_repository
from pipelines.gc import collect_garbage, store_bytes
from schemas.versions import list_versions
from schemas.validate import validate_corpus
from tests.support.corpus_fixtures import make_seq

runner = CliRunner()


def _commit(path, key: str, T: int, tag=None) -> str:
    with CorpusWriter(path) as w:
        w.add(make_seq(np.random.default_rng(T), key, T))
        return w.commit(f"{key}", tag=tag)


def _garbage(path) -> None:
    """What a killed build leaves: chunks of an aborted build, and a snapshot whose branch never moved."""
    with CorpusWriter(path) as w:
        w.add(make_seq(np.random.default_rng(7), "aborted/0", 3000))  # abort: chunks stay on disk
    w = CorpusWriter(path)
    w.add(make_seq(np.random.default_rng(8), "killed/0", 3000))
    for app_ in w._arrays.values():
        app_.finish()
    w._session.flush("killed before the branch moved")  # as a SIGKILL inside the commit would leave it
    # a SIGKILL inside a chunk write: the object's staging file, never renamed into place
    (path / "chunks" / "7DFN7ZGC6S07H94RP390#1").write_bytes(b"\0" * 262_144)


def _snapshot_of_everything(path) -> dict:
    repo = open_repository(path)
    refs = {t: repo.lookup_tag(t) for t in repo.list_tags()} | {"branch:main": repo.lookup_branch("main")}
    ids = [v.id for v in list_versions(path)]
    return {"refs": refs, "ids": ids, "sums": {i: corpus_checksums(CorpusReader.open(path, i)) for i in ids}}


def test_gc_reclaims_garbage_and_keeps_every_reachable_version(tmp_path):
    p = tmp_path / "c"
    _commit(p, "a/0", 200, tag="v1")
    _commit(p, "b/0", 300)  # untagged, reachable through main's history
    _commit(p, "c/0", 400)
    clean = store_bytes(p)
    before = _snapshot_of_everything(p)
    _garbage(p)
    dirty = store_bytes(p)
    assert dirty > clean
    # a running build's data is younger than the default grace period: nothing goes
    assert collect_garbage(p).bytes_deleted == 0 and store_bytes(p) == dirty
    res = runner.invoke(app, ["gc", str(p), "--grace", "0"])
    assert res.exit_code == 0, res.output
    assert "bytes deleted" in res.output and "1 (262,144 bytes)" in res.output  # the half-written file
    assert store_bytes(p) == clean  # back to exactly one clean history
    after = _snapshot_of_everything(p)
    assert after == before  # same tags, same branch tip, same versions with the same content
    assert all(validate_corpus(p, i) == [] for i in after["ids"])


def test_gc_with_expiry_keeps_tagged_versions_and_the_tip(tmp_path):
    p = tmp_path / "c"
    v1 = _commit(p, "a/0", 200, tag="v1")
    v2 = _commit(p, "b/0", 300)
    v3 = _commit(p, "c/0", 400)
    sums = {v: corpus_checksums(CorpusReader.open(p, v)) for v in (v1, v3)}
    res = runner.invoke(app, ["gc", str(p), "--grace", "0", "--expire-untagged-older-than", "0"])
    assert res.exit_code == 0, res.output
    assert corpus_checksums(CorpusReader.open(p, "v1")) == sums[v1]
    assert corpus_checksums(CorpusReader.open(p)) == sums[v3] and CorpusReader.open(p).version_id == v3
    assert v2 not in {v.id for v in list_versions(p)}  # the untagged, expired one is gone from history


def test_gc_during_a_running_build_keeps_its_data(tmp_path):
    p = tmp_path / "c"
    _commit(p, "a/0", 200, tag="v1")
    w = CorpusWriter(p)
    w.add(make_seq(np.random.default_rng(3), "running/0", 5000))
    for app_ in w._arrays.values():
        app_.finish()  # its chunks are on disk, unreachable until it commits
    collect_garbage(p)  # default grace period
    v = w.commit("after gc")
    assert validate_corpus(p, v) == []
    assert CorpusReader.open(p, v).read_sequence("running/0")["joints_world"].shape[0] == 5000
