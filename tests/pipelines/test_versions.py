"""Corpus versions: list (newest first, tags, totals), tag (immutable), resolve, diff."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from tests.support.corpus_fixtures import make_seq

from schemas.reader import CorpusReader, open_corpus
from pipelines.writer import CorpusWriter
from schemas.versions import diff_versions, list_versions, resolve_version, tag_exists, tag_version
from schemas.errors import CorpusError


def _commit(path, seqs, message, tag=None):
    with CorpusWriter(path) as w:
        for s in seqs:
            w.add(s)
        return w.commit(message, tag=tag)


@pytest.fixture()
def three_versions(tmp_path):
    """v1: a b c d x; v2: a (carried), b (new sha), c (new config), d (longer), e (new), x dropped; v3: a."""
    rng = np.random.default_rng(0)
    p = tmp_path / "c"
    a, b, c, d, x = (make_seq(rng, k, T, n_views=1) for k, T in (("A/a", 10), ("A/b", 20), ("A/c", 30),
                                                               ("A/d", 40), ("A/x", 5)))
    v1 = _commit(p, [a, b, c, d, x], "first", tag="v1")
    parent = CorpusReader.open(p)
    b2 = make_seq(rng, "A/b", 20, n_views=1, sha="sha-other")
    c2 = make_seq(rng, "A/c", 30, n_views=1, config_hash="cfg2")
    d2 = make_seq(rng, "A/d", 41, n_views=1)  # same sha and config, different length
    e = make_seq(rng, "A/e", 7, n_views=2)
    with CorpusWriter(p) as w:
        w.add_from(parent, "A/a")
        for s in (b2, c2, d2, e):
            w.add(s)
        v2 = w.commit("second")  # "A/x" dropped
    v3 = _commit(p, [a], "third", tag="latest-good")
    return p, v1, v2, v3


def test_list_versions_newest_first_with_tags_and_totals(three_versions):
    p, v1, v2, v3 = three_versions
    vs = list_versions(p)
    assert [v.id for v in vs] == [v3, v2, v1]  # the repository's initial empty snapshot is not a version
    assert [v.message for v in vs] == ["third", "second", "first"]
    assert vs[2].tags == ["v1"] and vs[1].tags == [] and vs[0].tags == ["latest-good"]
    assert (vs[2].n_sequences, vs[2].n_frames, vs[2].n_views) == (5, 105, 5)
    assert (vs[1].n_sequences, vs[1].n_frames, vs[1].n_views) == (5, 10 + 20 + 30 + 41 + 7, 6)
    assert (vs[0].n_sequences, vs[0].n_frames, vs[0].n_views) == (1, 10, 1)
    now = datetime.now(timezone.utc)
    for v in vs:
        assert v.time.tzinfo is not None and v.time.utcoffset() == timedelta(0)
        assert now - timedelta(minutes=10) < v.time <= now + timedelta(seconds=5)
    assert vs[0].time >= vs[1].time >= vs[2].time
    with pytest.raises(CorpusError):
        list_versions(p, branch="nope")


def test_resolve_version(three_versions):
    p, v1, v2, v3 = three_versions
    assert resolve_version(p, "v1") == v1
    assert resolve_version(p, "main") == v3
    assert resolve_version(p, None) == v3
    assert resolve_version(p, v2) == v2
    for bad in ("v7", "0" * 20, ""):
        with pytest.raises(CorpusError):
            resolve_version(p, bad)
    with pytest.raises(CorpusError):
        resolve_version(p.parent / "missing", "main")


def test_tag_version_is_immutable(three_versions):
    p, v1, v2, v3 = three_versions
    tag_version(p, v2, "paper")
    assert resolve_version(p, "paper") == v2
    assert CorpusReader.open(p, "paper").version_id == v2
    assert open_corpus(f"{p}@paper").version_id == v2
    with pytest.raises(CorpusError, match="already exists"):
        tag_version(p, v3, "paper")
    with pytest.raises(CorpusError, match="already exists"):
        tag_version(p, v2, "paper")  # even to the same snapshot: a tag is created once
    assert resolve_version(p, "paper") == v2
    tag_version(p, "v1", "also-v1")  # a version named by its tag
    assert resolve_version(p, "also-v1") == v1
    with pytest.raises(CorpusError):
        tag_version(p, "no-such-version", "x")
    with pytest.raises(CorpusError):
        tag_version(p, v1, "main")  # a branch's name
    assert sorted(t for v in list_versions(p) for t in v.tags) == ["also-v1", "latest-good", "paper", "v1"]


def test_diff_versions(three_versions):
    p, v1, v2, v3 = three_versions
    d = diff_versions(p, "v1", v2)
    assert d.added == ["A/e"]
    assert d.removed == ["A/x"]
    assert d.changed == ["A/b", "A/c", "A/d"]  # sha256, config_hash, n_frames
    assert d.unchanged == 1  # A/a, carried over
    back = diff_versions(p, v2, "v1")
    assert (back.added, back.removed, back.changed, back.unchanged) == (["A/x"], ["A/e"], d.changed, 1)
    same = diff_versions(p, v1, "v1")
    assert (same.added, same.removed, same.changed, same.unchanged) == ([], [], [], 5)
    last = diff_versions(p, v2, "main")
    assert (last.added, last.removed, last.changed, last.unchanged) == ([], ["A/b", "A/c", "A/d", "A/e"], [], 1)


def test_tag_exists_names_tags_only(three_versions, tmp_path):
    """The demo's "was this imported already" check: a tag, not a branch or a snapshot id, and no
    corpus at all is no tag."""
    p, v1, v2, v3 = three_versions
    assert tag_exists(p, "v1") and tag_exists(p, "latest-good")
    assert not tag_exists(p, "main") and not tag_exists(p, v2) and not tag_exists(p, "v9")
    assert not tag_exists(tmp_path / "nowhere", "v1")
