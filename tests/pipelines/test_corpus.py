"""CorpusWriter / CorpusReader over Icechunk: round trip, isolation of versions, aborts, crashes,
carry-over, concurrent commits, the commit lock. (Broken stores: tests/schemas/test_validate.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tests.support.corpus_fixtures import LENGTHS, J, make_seq, make_seqs, write_corpus
from schemas.versions import list_versions
from pipelines.writer import CorpusWriter
from schemas import manifests as M
from schemas import store as S
from schemas.errors import CorpusError, VersionConflictError
from schemas.reader import CorpusReader, open_corpus
from schemas.records import Reject
from schemas.validate import validate_corpus

ROOT = Path(__file__).resolve().parents[2]  # child processes run in the checkout


def _assert_matches(reader: CorpusReader, seqs) -> None:
    """Every sequence and view of ``seqs`` reads back exactly, in order."""
    assert reader.sequences.column("key").to_pylist() == [s.key for s in seqs]
    vid = 0
    for sid, s in enumerate(seqs):
        np.testing.assert_array_equal(reader.read_sequence(s.key)["joints_world"], s.joints_world)
        np.testing.assert_array_equal(reader.read_sequence(sid)["joints_world"], s.joints_world)
        for v in s.views:
            got = reader.read_view(vid)
            np.testing.assert_array_equal(got["keypoints_2d"], v.keypoints_2d)
            np.testing.assert_array_equal(got["joints_cam"], v.joints_cam)
            np.testing.assert_array_equal(got["in_view"], v.in_view)
            intr, extr = reader.camera(vid)
            np.testing.assert_array_equal(intr, v.intrinsics)
            np.testing.assert_array_equal(extr, v.extrinsics)
            vid += 1
    assert reader.views.num_rows == vid


def test_round_trip_arrays_manifests_attrs(tmp_path):
    seqs = make_seqs()
    rej = Reject("/data/bad.npz", "poses has shape (10, 3)", kind="amass", source_sha256="abc")
    snap = write_corpus(tmp_path / "c", seqs, tag="v1", rejects=[rej], build_info={"config": {"fps": 50}, "regressor_sha256": "r"})
    r = CorpusReader.open(tmp_path / "c")
    assert r.version_id == snap and r.fps == 50.0 and r.joint_set == "h36m17" and r.num_joints == J
    assert r.build_info["config"] == {"fps": 50} and r.build_info["regressor_sha256"] == "r"
    assert r.build_info["joint_set"] == "h36m17" and "package_version" in r.build_info
    _assert_matches(r, seqs)

    # Whole arrays equal the concatenation in add() order (an independent reference of the layout).
    np.testing.assert_array_equal(r.array(S.JOINTS_WORLD)[:], np.concatenate([s.joints_world for s in seqs]))
    views = [v for s in seqs for v in s.views]
    np.testing.assert_array_equal(r.array(S.KEYPOINTS_2D)[:], np.concatenate([v.keypoints_2d for v in views]))
    np.testing.assert_array_equal(r.array(S.EXTRINSICS)[:], np.stack([v.extrinsics for v in views]))
    for spec in S.ARRAYS:
        a = r.array(spec)
        assert a.dtype == spec.dtype and a.chunks == spec.chunks(J), spec.path

    # Manifests: offsets are the running sums of the hand-known lengths.
    seq_rows = r.sequences.to_pylist()
    assert [x["n_frames"] for x in seq_rows] == list(LENGTHS)
    assert [x["offset"] for x in seq_rows] == [0, 37, 37 + S.TIME_CHUNK + 311, 38 + S.TIME_CHUNK + 311]
    assert seq_rows[1]["betas"] == pytest.approx(seqs[1].betas.tolist())
    assert seq_rows[3]["source_sha256"] == "sha-CMU/01/03" and seq_rows[3]["split"] == "train"
    view_rows = r.views.to_pylist()
    assert [x["sequence_id"] for x in view_rows] == [0, 1, 1, 2, 2, 2, 3]
    assert [x["view_id"] for x in view_rows] == list(range(7))
    assert view_rows[2]["camera_id"] == "cam1" and view_rows[2]["trimmed_frames"] == seqs[1].views[1].trimmed_frames
    assert view_rows[2]["in_view_fraction"] == pytest.approx(seqs[1].views[1].in_view.all(-1).mean())
    # the writer counts out-of-view joints as it writes them (the build report reads no array back)
    assert [x["n_out_of_view"] for x in view_rows] == [int((~v.in_view).sum()) for v in views]
    assert r.rejects.to_pylist() == [{"source_path": "/data/bad.npz", "source_sha256": "abc", "kind": "amass",
                                      "reason": "poses has shape (10, 3)", "source_size": None,
                                      "source_mtime_ns": None, "source_inode": None}]
    for name, t in (("sequences", r.sequences), ("views", r.views), ("rejects", r.rejects)):
        assert t.schema.equals(M.MANIFESTS[name])

    # The read handles are read-only.
    with pytest.raises(Exception):
        r.array(S.JOINTS_WORLD)[0] = 0
    assert validate_corpus(tmp_path / "c") == []
    assert open_corpus(f"{tmp_path / 'c'}@v1").version_id == snap


def test_read_view_window_equals_slicing(tmp_path):
    seqs = make_seqs(lengths=(900, S.TIME_CHUNK + 500))
    write_corpus(tmp_path / "c", seqs)
    r = CorpusReader.open(tmp_path / "c")
    view = seqs[1].views[0]  # view 1: frames 900.. of the view arrays, so it crosses a chunk boundary
    np.testing.assert_array_equal(r.read_view(1)["keypoints_2d"], view.keypoints_2d)
    for a, b in ((0, 351), (S.TIME_CHUNK - 100, S.TIME_CHUNK + 251), (4000, None), (-351, None), (10, 10),
                 (S.TIME_CHUNK + 400, S.TIME_CHUNK + 9999)):
        got = r.read_view(1, a, b)
        for name, want in (("keypoints_2d", view.keypoints_2d), ("joints_cam", view.joints_cam),
                           ("in_view", view.in_view)):
            np.testing.assert_array_equal(got[name], want[a:b], err_msg=f"{name}[{a}:{b}]")
    with pytest.raises(KeyError):
        r.read_view(99)


def test_old_readers_unaffected_by_writes_and_commits(tmp_path):
    p = tmp_path / "c"
    v1_seqs = make_seqs(0, lengths=(50, S.TIME_CHUNK + 10))
    v1 = write_corpus(p, v1_seqs, tag="v1")
    r1 = CorpusReader.open(p)
    w = CorpusWriter(p)
    new = make_seqs(1, lengths=(3 * S.TIME_CHUNK, 20), prefix="KIT/")
    for s in new:
        w.add(s)  # > one chunk: chunks really are written into the uncommitted session
    _assert_matches(r1, v1_seqs)
    assert CorpusReader.open(p).version_id == v1  # uncommitted data is invisible to new readers too
    v2 = w.commit("second")
    assert v2 != v1
    _assert_matches(r1, v1_seqs)  # the open reader is pinned to its snapshot
    _assert_matches(CorpusReader.open(p, "v1"), v1_seqs)
    _assert_matches(CorpusReader.open(p, v1), v1_seqs)
    latest = CorpusReader.open(p)
    assert latest.version_id == v2
    _assert_matches(latest, new)


def test_abort_and_context_exit_leave_previous_version(tmp_path):
    p = tmp_path / "c"
    v1 = write_corpus(p, make_seqs(0, lengths=(40,)))
    w = CorpusWriter(p)
    w.add(make_seqs(1, lengths=(S.TIME_CHUNK + 1,), prefix="X/")[0])
    w.abort()
    w.abort()  # idempotent
    with pytest.raises(CorpusError):
        w.commit("too late")
    with pytest.raises(RuntimeError):
        with CorpusWriter(p) as w2:
            w2.add(make_seqs(2, lengths=(30,), prefix="Y/")[0])
            raise RuntimeError("build failed")
    with CorpusWriter(p) as w3:
        w3.add(make_seqs(3, lengths=(30,), prefix="Z/")[0])  # leaves the block without commit
    assert CorpusReader.open(p).version_id == v1
    assert [v.id for v in list_versions(p)] == [v1]


def test_process_dying_before_commit_leaves_previous_version(tmp_path):
    p = tmp_path / "c"
    v1 = write_corpus(p, make_seqs(0, lengths=(40,)))
    script = textwrap.dedent(f"""
        import os, numpy as np
        from tests.support.corpus_fixtures import make_seq
        from pipelines.writer import CorpusWriter
        w = CorpusWriter({str(p)!r})
        w.add(make_seq(np.random.default_rng(5), "crash/a", {2 * S.TIME_CHUNK + 3}))
        os._exit(3)
    """)
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 3, res.stderr
    assert CorpusReader.open(p).version_id == v1
    # The dead process held no lock and left nothing in the way of the next build.
    v2 = write_corpus(p, make_seqs(1, lengths=(10,)))
    assert [v.id for v in list_versions(p)] == [v2, v1]
    assert validate_corpus(p) == []


def test_add_from_carries_sequences_bit_identically(tmp_path):
    p = tmp_path / "c"
    old = make_seqs(0)
    write_corpus(p, old)
    parent = CorpusReader.open(p)
    fresh = make_seq(np.random.default_rng(9), "AAA/new", 77)
    with CorpusWriter(p) as w:
        assert w.add(fresh) == 0
        assert w.add_from(parent, old[3].key) == 1  # two chunks + 5 frames, three views
        assert w.add_from(parent, old[1].key) == 2
        w.commit("incremental")
    r = CorpusReader.open(p)
    _assert_matches(r, [fresh, old[3], old[1]])
    for key in (old[3].key, old[1].key):
        a = r.read_sequence(key)["joints_world"]
        b = parent.read_sequence(key)["joints_world"]
        assert a.tobytes() == b.tobytes()
    # Manifest rows carry over unchanged apart from ids and offsets.
    drop = ["sequence_id", "offset"]
    new_row = r.sequences.filter(pa.compute.equal(r.sequences["key"], old[3].key)).drop(drop).to_pylist()
    old_row = parent.sequences.filter(pa.compute.equal(parent.sequences["key"], old[3].key)).drop(drop).to_pylist()
    assert new_row == old_row
    nv = r.views.filter(pa.compute.equal(r.views["sequence_id"], 1)).drop(["view_id", "sequence_id", "offset"])
    ov = parent.views.filter(pa.compute.equal(parent.views["sequence_id"], 3)).drop(["view_id", "sequence_id", "offset"])
    assert nv.to_pylist() == ov.to_pylist()
    assert validate_corpus(p) == []
    with pytest.raises(KeyError):
        with CorpusWriter(p) as w:
            w.add_from(parent, "no/such/key")


def test_writer_rejects_bad_records(tmp_path):
    p = tmp_path / "c"
    rng = np.random.default_rng(0)
    with CorpusWriter(p) as w:
        s = make_seq(rng, "a", 10)
        w.add(s)
        with pytest.raises(ValueError, match="duplicate"):
            w.add(s)
        bad = make_seq(rng, "b", 10)
        bad.views[0].keypoints_2d = bad.views[0].keypoints_2d[:9]
        with pytest.raises(ValueError, match="keypoints_2d"):
            w.add(bad)
        nan = make_seq(rng, "c", 10)
        nan.joints_world[3, 2, 1] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            w.add(nan)
        w.commit("one good sequence")
    r = CorpusReader.open(p)
    assert r.sequences.column("key").to_pylist() == ["a"] and r.views.num_rows == 2
    assert validate_corpus(p) == []


def test_open_errors(tmp_path):
    with pytest.raises(CorpusError):
        CorpusReader.open(tmp_path / "missing")
    write_corpus(tmp_path / "c", make_seqs(0, lengths=(5,)), tag="v1")
    with pytest.raises(CorpusError):
        CorpusReader.open(tmp_path / "c", "v9")
    with pytest.raises(CorpusError):
        open_corpus(f"{tmp_path / 'c'}@NOTASNAPSHOTID")
    # A tag that already exists is refused before anything is committed.
    before = CorpusReader.open(tmp_path / "c").version_id
    with pytest.raises(CorpusError, match="already exists"):
        write_corpus(tmp_path / "c", make_seqs(1, lengths=(5,)), tag="v1")
    assert CorpusReader.open(tmp_path / "c").version_id == before


def test_concurrent_writers_threads_one_conflicts(tmp_path):
    p = tmp_path / "c"
    v1 = write_corpus(p, make_seqs(0, lengths=(20,)))
    w_a, w_b = CorpusWriter(p), CorpusWriter(p)  # both start from v1
    w_a.add(make_seq(np.random.default_rng(1), "A/x", 300))
    w_b.add(make_seq(np.random.default_rng(2), "B/x", 300))
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def run(name, w):
        barrier.wait()
        try:
            results[name] = w.commit(f"by {name}")
        except VersionConflictError as e:
            results[name] = e

    threads = [threading.Thread(target=run, args=(n, w)) for n, w in (("a", w_a), ("b", w_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [n for n, v in results.items() if isinstance(v, str)]
    lost = [n for n, v in results.items() if isinstance(v, VersionConflictError)]
    assert len(won) == 1 and len(lost) == 1, results
    versions = list_versions(p)
    assert [v.id for v in versions] == [results[won[0]], v1]
    r = CorpusReader.open(p)
    assert r.sequences.column("key").to_pylist() == [f"{won[0].upper()}/x"]
    assert validate_corpus(p) == []


def test_concurrent_writers_processes_never_corrupt(tmp_path):
    """Two processes each commit 3 versions, retrying on conflict: all 6 land, each one complete."""
    p = tmp_path / "c"
    write_corpus(p, make_seqs(0, lengths=(20,)))
    script = textwrap.dedent("""
        import sys, numpy as np
        from tests.support.corpus_fixtures import make_seq
        from pipelines.writer import CorpusWriter
        from schemas.errors import VersionConflictError
        path, who = sys.argv[1], sys.argv[2]
        done = 0
        for attempt in range(200):
            if done == 3:
                break
            with CorpusWriter(path) as w:
                n = 50 + 10 * done
                w.add(make_seq(np.random.default_rng(attempt), f"{who}/{done}", n))
                try:
                    w.commit(f"{who} {done}")
                    done += 1
                except VersionConflictError:
                    pass
        print(done)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(p), who], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for who in ("P", "Q")]
    outs = [pr.communicate(timeout=240) for pr in procs]
    for pr, (out, err) in zip(procs, outs):
        assert pr.returncode == 0, err
        assert out.split()[-1] == "3"
    versions = list_versions(p)
    assert len(versions) == 7
    assert sorted(v.message for v in versions[:6]) == ["P 0", "P 1", "P 2", "Q 0", "Q 1", "Q 2"]
    for v in versions:  # every version is complete and readable
        r = CorpusReader.open(p, v.id)
        assert r.sequences.num_rows == 1 and validate_corpus(p, v.id) == []
        who, i = v.message.split() if v.message[0] in "PQ" else ("", "")
        if who:
            assert r.sequences.column("key").to_pylist() == [f"{who}/{i}"]
            assert r.sequences.column("n_frames").to_pylist() == [50 + 10 * int(i)]


def test_commit_waits_for_the_repository_lock(tmp_path):
    """Commits are serialised by the file lock beside the repository: none lands while it is held."""
    from schemas.repository import commit_lock, lock_path

    p = tmp_path / "c"
    v1 = write_corpus(p, make_seqs(0, lengths=(20,)))
    assert lock_path(p) == tmp_path / "c.lock"
    w = CorpusWriter(p)
    w.add(make_seq(np.random.default_rng(1), "A/x", 30))
    done: dict[str, str] = {}
    lock = commit_lock(p)
    with lock:
        t = threading.Thread(target=lambda: done.setdefault("id", w.commit("waits")))
        t.start()
        t.join(1.0)
        assert t.is_alive() and "id" not in done
        assert CorpusReader.open(p).version_id == v1
    t.join(30)
    assert CorpusReader.open(p).version_id == done["id"] != v1
