"""Where two copies of a rule used to disagree, the one kept is pinned here."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.versions import tag_version
from pipelines.writer import CorpusWriter
from schemas.errors import CorpusError
from schemas.h36m import action_take, canonical_action
from schemas.reader import CorpusReader, open_corpus
from schemas.versions import split_path_at_version
from tests.support.corpus_fixtures import make_seq


def test_path_at_version_splits_on_the_last_at_unless_the_path_exists(tmp_path):
    assert split_path_at_version("/data/c@v1") == ("/data/c", "v1")
    assert split_path_at_version("/data/u@host/c@abc") == ("/data/u@host/c", "abc")
    assert split_path_at_version("s3://bucket/corpus@v2") == ("s3://bucket/corpus", "v2")
    assert split_path_at_version("/data/c") == ("/data/c", None)
    # the flows' copy split "/data/c@" into ("/data/c", None): a trailing '@' names no version, so the
    # whole string is the path (it is what the user typed; opening it says it is missing)
    assert split_path_at_version("/data/c@") == ("/data/c@", None)
    # a folder whose name holds '@' is a path, not PATH@VERSION (the flows' copy split it)
    odd = tmp_path / "runs@2026"
    odd.mkdir()
    assert split_path_at_version(str(odd)) == (str(odd), None)


def test_bad_tag_names_are_refused_by_the_writer_too(tmp_path):
    """Only ``tag_version`` used to check names; a build's ``--tag a/b`` went straight to Icechunk."""
    path = tmp_path / "c"
    rng = np.random.default_rng(0)
    for bad in ("", "a/b", "v1@x", "with space"):
        with CorpusWriter(path) as w:
            w.add(make_seq(rng, "A/s/one", 20))
            with pytest.raises(CorpusError, match="invalid tag name"):
                w.commit("tagged", tag=bad)
        with pytest.raises(CorpusError):
            CorpusReader.open(path)  # nothing was committed
    with CorpusWriter(path) as w:
        w.add(make_seq(rng, "A/s/one", 20))
        w.commit("ok", tag="v1")
    with pytest.raises(CorpusError, match="invalid tag name"):
        tag_version(path, "v1", "x/y")


def test_reader_answers_rows_of_a_sequence_and_its_views(tmp_path):
    path = tmp_path / "c"
    rng = np.random.default_rng(1)
    with CorpusWriter(path) as w:
        for i, n_views in enumerate((3, 1, 2)):
            w.add(make_seq(rng, f"A/s/{i}", 15 + i, n_views=n_views))
        w.commit("three")
    r = open_corpus(str(path))
    assert [len(r.view_rows(f"A/s/{i}")) for i in range(3)] == [3, 1, 2]
    assert [v["view_id"] for v in r.view_rows("A/s/2")] == [4, 5]
    assert r.sequence_row(1)["key"] == "A/s/1" and r.sequence_row("A/s/1")["n_frames"] == 16
    assert set(r.source_index()) == {f"/data/A/s/{i}.npz" for i in range(3)}
    flags = np.concatenate([r.read_view(v)["in_view"] for v in range(6)])
    assert r.out_of_view_fraction() == pytest.approx(float((~flags).mean()))
    with pytest.raises(KeyError):
        r.sequence_row("nope")


@pytest.mark.parametrize("name,action,take", [
    ("Walking 1", "Walking", "Walking#1"),
    ("TakingPhoto 1", "Photo", "Photo#1"),
    ("Photo 1", "Photo", "Photo#1"),
    ("WalkingDog", "WalkDog", "WalkDog#"),
    ("Walking 1.54138969", "Walking", "Walking#1"),
    # uplift.metrics' copy cut at the first space: "Sitting Down 2" became "Sitting"
    ("Sitting Down 2", "Sitting Down", "Sitting Down#2"),
    ("SittingDown", "SittingDown", "SittingDown#"),
])
def test_one_action_normaliser(name, action, take):
    assert canonical_action(name) == action
    assert action_take(name) == take
