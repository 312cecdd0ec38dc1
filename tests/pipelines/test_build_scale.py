"""Builds that scale: workers write their shards through forked Icechunk sessions (rows in key order
whatever order they finish in, 2 workers == 1 worker), no-op rebuilds decided from file status alone
(no source byte read), statistics recorded at write time, validation of what a rebuild recomputed."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.builds import build_config, make_inputs
from pipelines.build_amass import build_amass
from pipelines.build_result import BuildResult
from pipelines.hashing import corpus_checksums
from schemas.versions import list_versions
from schemas import store as S
from schemas.reader import CorpusReader
from schemas.validate import validate_corpus

# Small shards so that a few-second synthetic tree still makes several worker tasks.
SHARD_MB = 0.4


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("scale"), n_sequences=6, seed=4, duration_s=(2.0, 5.0))


def assert_same_corpus(a: CorpusReader, b: CorpusReader) -> None:
    """Array by array and manifest row by row."""
    sa, sb = corpus_checksums(a), corpus_checksums(b)
    assert set(sa) == set(sb)
    for key in sa:
        assert sa[key] == sb[key], key
    assert a.sequences.to_pylist() == b.sequences.to_pylist()
    assert a.views.to_pylist() == b.views.to_pylist()


@pytest.mark.slow
def test_two_workers_build_what_one_worker_builds(inputs, tmp_path):
    one = build_amass(build_config(inputs, tmp_path / "one", n_workers=1, shard_mb=SHARD_MB))
    two = build_amass(build_config(inputs, tmp_path / "two", n_workers=2, shard_mb=SHARD_MB))
    a, b = CorpusReader.open(tmp_path / "one"), CorpusReader.open(tmp_path / "two")
    assert_same_corpus(a, b)
    keys = a.sequences.column("key").to_pylist()
    assert keys == sorted(keys) and len(keys) >= 6
    # several shards, each starting on a chunk boundary: padding between them, and the layout validates
    offsets = a.views.column("offset").to_numpy()
    ends = offsets + a.views.column("n_frames").to_numpy()
    gaps = offsets[1:] - ends[:-1]
    assert (gaps > 0).any() and (offsets[1:][gaps > 0] % S.TIME_CHUNK == 0).all()
    assert a.store_format == S.STORE_FORMAT and validate_corpus(tmp_path / "one") == []
    # every sequence and view holds what a build with a single writer (one shard, no padding) holds
    build_amass(build_config(inputs, tmp_path / "single", shard_mb=1e6))
    single = CorpusReader.open(tmp_path / "single")
    for key in keys:
        for name, arr in single.read_sequence(key).items():
            np.testing.assert_array_equal(b.read_sequence(key)[name], arr)
        for va, vb in zip(single.view_rows(key), b.view_rows(key)):
            for name, arr in single.read_view(va["view_id"]).items():
                np.testing.assert_array_equal(b.read_view(vb["view_id"])[name], arr, err_msg=f"{key} {name}")
    assert one.n_frames == two.n_frames == int(a.sequences.column("n_frames").to_numpy().sum())
    # the build branch is gone, the layout snapshot is not listed as a version
    from schemas.repository import open_repository

    assert open_repository(tmp_path / "two").list_branches() == {"main"}
    assert [v.id for v in list_versions(tmp_path / "two")] == [two.version_id]


def test_shard_placement_is_in_job_order_whatever_finishes_first():
    """The driver places shards (gives them rows) in shard order even when later shards finish first."""
    from distributed import Client, LocalCluster

    from pipelines.fanout import held_results

    placed, done = [], []
    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        for i, out in held_results(client, _slow_first, [(0,), (1,), (2,)], summarize=_identity,
                                   place=lambda i, s: placed.append((i, s)) or (10 * i,),
                                   follow_up=_plus, max_in_flight=3):
            done.append((i, out))
    assert placed == [(0, 0), (1, 1), (2, 2)]
    assert sorted(done) == [(0, 0), (1, 11), (2, 22)]


def _slow_first(i):
    time.sleep(1.0 if i == 0 else 0.0)
    return i


def _identity(x):
    return x


def _plus(x, y):
    return x + y


# --------------------------------------------------------------------------------------------------
# No-op rebuilds from file status


class _Opens:
    """Records every file opened below the given roots while ``on`` (a Python audit hook: ``open``
    events cover ``open()``, ``io.open`` and ``os.open``)."""

    def __init__(self):
        self.on, self.roots, self.seen = False, (), []
        sys.addaudithook(self._hook)

    def _hook(self, event, args):
        if self.on and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if any(path.startswith(r) for r in self.roots):
                self.seen.append(path)

    def watch(self, *roots):
        self.roots = tuple(str(Path(r).resolve()) for r in roots) + tuple(str(r) for r in roots)
        self.seen, self.on = [], True
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.on = False


OPENS = _Opens()


@pytest.mark.slow
def test_noop_rebuild_reads_no_source_byte_and_status_changes_rehash(inputs, tmp_path):
    root = tmp_path / "in"
    shutil.copytree(inputs, root)
    corpus = tmp_path / "corpus"
    first = build_amass(build_config(root, corpus, shard_mb=SHARD_MB))
    # a fresh build hashes where it reads: on the workers, not in the driver's listing
    assert first.n_hashed == 0 and all(CorpusReader.open(corpus).sequences.column("source_sha256").to_pylist())

    with OPENS.watch(root / "amass", root / "body_models"):
        again = build_amass(build_config(root, corpus, shard_mb=SHARD_MB))
    assert again.up_to_date and again.version_id == first.version_id
    assert again.n_hashed == 0 and OPENS.seen == []  # neither sources nor body models nor the regressor

    # a touched file (new mtime, same bytes) is hashed again, found unchanged: nothing recomputed
    files = sorted((root / "amass").rglob("*_poses.npz"))
    st = files[0].stat()
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with OPENS.watch(root / "amass"):
        touched = build_amass(build_config(root, corpus, shard_mb=SHARD_MB))
    assert touched.up_to_date and touched.n_hashed == 1 and set(OPENS.seen) == {str(files[0].resolve())}
    assert touched.n_status_refreshed == 1 and touched.version_id != first.version_id  # recorded: read once only
    assert build_amass(build_config(root, corpus, shard_mb=SHARD_MB)).n_hashed == 0

    # same size, same mtime, same inode, other bytes: trusted unless --verify, which finds the change
    data = bytearray(files[1].read_bytes())
    st = files[1].stat()
    data[-30:] = b"\0" * 30  # the zip's end record: the file no longer parses
    with open(files[1], "r+b") as fh:  # in place: the inode stays
        fh.write(data)
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert build_amass(build_config(root, corpus, shard_mb=SHARD_MB)).up_to_date
    verified = build_amass(build_config(root, corpus, shard_mb=SHARD_MB, verify=True))
    assert not verified.up_to_date and verified.n_hashed == verified.n_sources
    assert [r.source_path for r in verified.rejects] == [str(files[1].resolve())]
    assert verified.n_recomputed == 0 and verified.n_carried == first.n_sequences - len(
        [k for k in CorpusReader.open(corpus, first.version_id).sequences.column("source_path").to_pylist()
         if k == str(files[1].resolve())])


@pytest.mark.slow
def test_rebuild_on_a_format_1_corpus_hashes_and_carries(inputs, tmp_path):
    """A version written before file status was recorded (format 1, no status columns) still reads,
    validates and serves as a rebuild's parent: its sources are hashed once, then trusted."""
    from tests.support.builds import build_config as cfg_of
    from schemas import manifests as M
    from tests.schemas.test_validate import _replace_manifest, _rewrite

    corpus = tmp_path / "corpus"
    build_amass(cfg_of(inputs, corpus, n_workers=1, shard_mb=1000))  # one shard: no padding, as format 1 laid out

    def as_format_1(g):
        r = CorpusReader.open(corpus)
        for name, table in (("sequences", r.sequences), ("views", r.views), ("rejects", r.rejects)):
            _replace_manifest(g, name, table.drop(list(M.ADDED_COLUMNS[name])))
        g.attrs[S.ATTR_FORMAT] = "mocap-corpus/1"
    _rewrite(corpus, as_format_1)
    old = CorpusReader.open(corpus)
    assert old.store_format == "mocap-corpus/1"
    assert {st[:3] for st in old.source_status().values()} == {(None, None, None)}  # no file status recorded
    assert validate_corpus(corpus) == []
    assert old.views.column("n_out_of_view").null_count == old.views.num_rows
    assert old.out_of_view_fraction() >= 0.0  # read from the in-view array
    again = build_amass(cfg_of(inputs, corpus, n_workers=1, shard_mb=1000))
    # hashed once, unchanged: nothing recomputed, the status recorded in a version of the same arrays
    assert again.up_to_date and again.n_hashed == again.n_sources == again.n_status_refreshed
    arrays = lambda r: {k: v for k, v in corpus_checksums(r).items() if k.startswith("array:")}
    assert again.version_id != old.version_id and arrays(CorpusReader.open(corpus)) == arrays(old)
    assert None not in {v for st in CorpusReader.open(corpus).source_status().values() for v in st}
    third = build_amass(cfg_of(inputs, corpus, n_workers=1, shard_mb=1000))
    assert third.up_to_date and third.n_hashed == 0 and third.version_id == again.version_id


# --------------------------------------------------------------------------------------------------
# Statistics at write time, validation of what was recomputed


def test_build_report_figures_come_from_the_manifests(inputs, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    build_amass(build_config(inputs, corpus, shard_mb=SHARD_MB))
    reader = CorpusReader.open(corpus)
    in_view = reader.array(S.IN_VIEW)
    rows = [(r["offset"], r["n_frames"]) for r in reader.views.to_pylist()]
    out = sum(int((~in_view[a:a + n]).sum()) for a, n in rows)
    assert reader.views.column("n_out_of_view").to_pylist() == [int((~in_view[a:a + n]).sum()) for a, n in rows]

    def no_arrays(self, spec):
        raise AssertionError(f"the report read array {spec.path}")

    fresh = CorpusReader.open(corpus)
    monkeypatch.setattr(CorpusReader, "array", no_arrays)
    result = BuildResult.from_reader(fresh, corpus=str(corpus), n_sources=0, up_to_date=False, elapsed_s=0.0, tag=None)
    assert result.out_of_view_fraction == pytest.approx(out / (sum(n for _, n in rows) * reader.num_joints))
    assert result.n_views == len(rows)


def test_validation_of_recomputed_sequences_reads_only_their_rows(inputs, tmp_path):
    from tests.schemas.test_validate import _rewrite

    corpus = tmp_path / "corpus"
    build_amass(build_config(inputs, corpus, shard_mb=SHARD_MB))
    r = CorpusReader.open(corpus)
    first, last = r.sequences.to_pylist()[0], r.sequences.to_pylist()[-1]
    view = r.view_rows(last["key"])[0]

    def nan_in_last(g):
        g[S.JOINTS_WORLD.path][last["offset"] + 1, 0, 0] = np.nan
        g[S.KEYPOINTS_2D.path][view["offset"] + 2, 3, 1] = np.nan
    _rewrite(corpus, nan_in_last)
    assert validate_corpus(corpus, keys=[first["key"]]) == []  # the broken sequence was not asked for
    problems = validate_corpus(corpus, keys=[last["key"]])
    assert any(S.JOINTS_WORLD.path in p and "NaN" in p for p in problems), problems
    assert any(S.KEYPOINTS_2D.path in p and "NaN" in p for p in problems), problems
    assert len(validate_corpus(corpus)) == len(problems)  # the full check finds exactly those


def test_a_killed_builds_branch_is_removed_by_gc(tmp_path):
    from tests.support.corpus_fixtures import write_corpus, make_seqs
    from pipelines.forked_writer import ForkedCorpusWriter
    from pipelines.gc import collect_garbage
    from schemas.repository import open_repository
    from schemas.versions import BUILD_BRANCH_PREFIX

    write_corpus(tmp_path / "c", make_seqs(0, lengths=(30, 40)))
    ForkedCorpusWriter(tmp_path / "c")  # a build that never committed nor aborted (killed)
    branches = open_repository(tmp_path / "c").list_branches()
    assert len(branches) == 2 and any(b.startswith(BUILD_BRANCH_PREFIX) for b in branches)
    collect_garbage(tmp_path / "c", grace_s=3600)  # a build started within the grace period may be running
    assert len(open_repository(tmp_path / "c").list_branches()) == 2
    time.sleep(1.1)
    collect_garbage(tmp_path / "c", grace_s=0)
    assert open_repository(tmp_path / "c").list_branches() == {"main"}
