"""The streaming dataset: batch content, epochs, sharding, resume and persistent workers (hand-built references)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from pipelines.writer import CorpusWriter
from schemas.reader import open_corpus
from schemas.records import SequenceData, ViewData
from schemas.skeletons import H36M_17
from schemas.store import JOINTS_CAM
from uplift.loader import close_loader, make_loader
from uplift.stream import StreamConfig, WindowStream
from uplift.windows import window_indices


def _corpus(path, lens, split="train", subject="S1", action="Walk", views=2, seed=0):
    """kp2d[..., 0] = frame index, kp2d[..., 1] = sequence*10 + camera: windows are checkable by value."""
    rng = np.random.default_rng(seed)
    w = CorpusWriter(path, num_joints=17, fps=50.0)
    for i, n in enumerate(lens):
        vs = []
        for c in range(views):
            kp = np.zeros((n, 17, 2), np.float32)
            kp[..., 0] = np.arange(n)[:, None]
            kp[..., 1] = i * 10 + c
            j3 = rng.normal(size=(n, 17, 3)).astype(np.float32)
            vs.append(ViewData("h36m", str(c), subject, "projected", kp, j3, rng.random((n, 17)) > 0.2,
                               np.zeros(11), np.zeros((3, 4))))
        w.add(SequenceData(key=f"{subject}/{action}/{i}", source="h36m", joints_world=np.zeros((n, 17, 3), np.float32),
                           views=vs, split=split if isinstance(split, str) else split[i], subject=subject,
                           action=action))
    w.commit("test corpus", tag="v1")
    return open_corpus(f"{path}@v1")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _corpus(tmp_path_factory.mktemp("c") / "c", [40, 700, 1500, 5, 300],
                   split=["train", "train", "train", "test", "train"])


CFG = StreamConfig(seq_len=9, s_out=2, s_in=(2, 4), batch_size=32, block_frames=256, buffer_blocks=2)


def _ids(batches):
    """(view, frame) of the non-flipped windows."""
    out = []
    for b in batches:
        keep = ~b["flipped"]
        out += list(zip(b["view"][keep].tolist(), b["frame"][keep].tolist()))
    return out


def test_training_batches_content(corpus):
    ds = WindowStream(corpus, CFG, split="train")
    views = ds.views
    seq_of = views["sequence_id"].to_numpy()
    nf = views["n_frames"].to_numpy()
    full = np.asarray(corpus.array(JOINTS_CAM)[:])
    off = views["offset"].to_numpy()
    n_batches = 0
    for b in ds:
        n_batches += 1
        B = b["view"].shape[0]
        assert B == 32 and b["keypoints_2d"].shape == (32, 5, 17, 2)
        h = B // 2
        kp, j3 = b["keypoints_2d"].numpy(), b["joints_3d"].numpy()
        for i in range(h):
            v, t = int(b["view"][i]), int(b["frame"][i])
            idx, ok = window_indices(t, nf[v], 5, 2)
            assert kp[i, :, 0, 0].tolist() == idx.tolist()
            assert np.all(kp[i, :, :, 1] == seq_of[v] * 10 + int(views["camera_id"][v].as_py()))
            assert b["valid"][i].numpy().tolist() == ok.tolist()
            ref = full[off[v] + idx]
            np.testing.assert_allclose(j3[i], ref - ref[:, :1], atol=1e-6)  # root-relative
            # flipped copy: left/right swapped, x negated
            perm = H36M_17.flip_permutation
            np.testing.assert_allclose(kp[h + i], kp[i][:, perm] * [-1, 1])
            np.testing.assert_allclose(j3[h + i], j3[i][:, perm] * [-1, 1, 1])
            assert b["keyframe"][h + i].tolist() == b["keyframe"][i].tolist()
            # key frames: every s_in/s_out-th token, at least one, with one of the m phases
            s_in = int(b["s_in"][i])
            kf = b["keyframe"][i].numpy()
            m = s_in // 2
            first = int(np.argmax(kf))
            assert first < m and kf.tolist() == [(k - first) % m == 0 for k in range(5)]
    assert n_batches == ds.batches_per_epoch() == (40 + 700 + 1500 + 300) * 2 // 16


def test_epoch_covers_every_frame_once_and_shuffles(corpus):
    cfg = StreamConfig(**{**CFG.__dict__, "drop_last": False})
    ds = WindowStream(corpus, cfg, split="train")
    ids = _ids(ds)
    expect = {(v, t) for v, n in enumerate(ds.views["n_frames"].to_numpy()) for t in range(n)}
    assert len(ids) == len(expect) and set(ids) == expect
    ds.set_epoch(1)
    ids1 = _ids(ds)
    assert set(ids1) == expect and ids1 != ids
    # same (seed, epoch) -> same order
    ds.set_epoch(0)
    assert _ids(ds) == ids


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_shards_disjoint_2_workers_x_2_ranks(corpus):
    cfg = StreamConfig(**{**CFG.__dict__, "drop_last": False})
    seen = Counter()
    for rank in range(2):
        ds = WindowStream(corpus, cfg, split="train", rank=rank, world_size=2)
        ds.set_epoch(3)
        seen.update(_ids(make_loader(ds, num_workers=2)))
    expect = {(v, t) for v, n in enumerate(WindowStream(corpus, cfg, split="train").views["n_frames"].to_numpy())
              for t in range(n)}
    assert set(seen) == expect and max(seen.values()) == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])  # DataLoader workers: slow
def test_resume_mid_epoch_reproduces_remaining_order(corpus, workers):
    ds = WindowStream(corpus, CFG, split="train")
    ds.set_epoch(2)
    full = list(make_loader(ds, num_workers=workers))
    k = 7
    ds2 = WindowStream(corpus, CFG, split="train")
    ds2.set_epoch(2, start_batch=k)
    rest = list(make_loader(ds2, num_workers=workers))
    assert len(rest) == len(full) - k
    for a, b in zip(full[k:], rest):
        for key in a:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("ring", [None, 1])
def test_workers_reuse_buffers_but_never_overwrite_a_batch_held(corpus, ring):
    """Workers write batches into a ring of reused shared-memory buffers; every batch the caller holds
    (here: all of them) keeps its content, equal to what workers without the ring yield. With a ring
    of one slot and two batches in flight per worker, only the release flags keep a worker from
    writing into a batch still on its way."""
    import multiprocessing as mp

    from uplift.worker_buffers import SLOT_KEY

    ds = WindowStream(corpus, CFG, split="train")
    ds.set_epoch(1)
    # the reference: a plain DataLoader, whose workers put every batch in fresh shared memory
    want = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                            multiprocessing_context=mp.get_context("spawn")))
    loader = make_loader(ds, num_workers=2, prefetch_factor=2)
    if ring is not None:
        loader.buffer_ring = ring
    got = list(loader)
    assert len(got) == len(want) > 4 * 2 * (2 + 2)  # many times the two rings of prefetch + 2 slots
    for a, b in zip(want, got):
        assert list(b) == list(a) and SLOT_KEY not in b
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert all(loader.buffer_flags)  # every slot released after its batch was copied out


def test_prefetch_thread_changes_nothing(corpus, monkeypatch):
    """Loading the next group in a thread (the default beyond 2 cores) yields the batches of in-line
    loads, and the thread really loads them."""
    import threading

    import uplift.stream as stream

    loaded_by = []
    real = stream.load_group

    def spy(*a, **k):
        loaded_by.append(threading.current_thread().name)
        return real(*a, **k)

    monkeypatch.setattr(stream, "load_group", spy)
    cfg = CFG.replace(block_frames=64, buffer_blocks=2)  # many groups
    got = {}
    for pf in (False, True):
        loaded_by.clear()
        with WindowStream(corpus, cfg.replace(prefetch_group=pf), split="train") as ds:  # open: may prefetch
            ds.set_epoch(1)
            got[pf] = list(ds)
        threaded = sum(name.startswith("group-prefetch") for name in loaded_by)
        assert (threaded >= len(loaded_by) - 1) if pf else threaded == 0, loaded_by
    assert len(got[True]) == len(got[False]) > 3
    for a, b in zip(got[False], got[True]):
        for key in a:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_exit_with_a_group_load_in_flight_is_clean(corpus, tmp_path):
    """A script that ends while the prefetch thread is loading a group exits cleanly: the load finishes
    before concurrent.futures refuses new work at interpreter exit (else Zarr's decoding fails in the
    load and Icechunk's runtime can abort the interpreter)."""
    import subprocess
    import sys
    import textwrap

    marker = tmp_path / "load"
    child = textwrap.dedent(f"""
        import time
        import uplift.stream as stream
        from uplift.stream import StreamConfig, WindowStream
        real = stream.load_group
        def slow(*a, **k):
            time.sleep(1.0)  # still loading when the script ends
            try:
                out = real(*a, **k)
            except BaseException as e:
                open({str(marker)!r}, "w").write("failed: " + repr(e))
                raise
            open({str(marker)!r}, "w").write("ok")
            return out
        stream.load_group = slow
        cfg = StreamConfig(seq_len=9, s_out=2, s_in=(2, 4), batch_size=32, block_frames=64, buffer_blocks=2,
                           prefetch_group=True)
        it = iter(WindowStream({f"{corpus.path}@{corpus.version_id}"!r}, cfg, split="train"))
        next(it)
    """)
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=100)
    assert r.returncode == 0, r.stderr[-2000:]
    assert marker.read_text() == "ok"
    assert "Task was destroyed" not in r.stderr and "Fatal" not in r.stderr, r.stderr[-2000:]


@pytest.mark.timeout(120)
def test_closing_an_open_stream_waits_for_the_load_in_flight(corpus, tmp_path):
    """An open stream prefetches in its thread; leaving its ``with`` block while that thread is loading a
    group waits for the load, so a script that ends right after exits cleanly too, and an iteration
    that goes on after the close loads its groups in line."""
    import subprocess
    import sys
    import textwrap

    marker = tmp_path / "load"
    child = textwrap.dedent(f"""
        import threading, time
        import uplift.stream as stream
        from uplift.stream import StreamConfig, WindowStream
        real = stream.load_group
        def slow(*a, **k):
            time.sleep(1.0)  # still loading when the with block ends
            out = real(*a, **k)
            with open({str(marker)!r}, "a") as f:
                f.write(threading.current_thread().name.split("_")[0] + "\\n")
            return out
        stream.load_group = slow
        cfg = StreamConfig(seq_len=9, s_out=2, s_in=(2, 4), batch_size=32, block_frames=64, buffer_blocks=2,
                           prefetch_group=True)
        with WindowStream({f"{corpus.path}@{corpus.version_id}"!r}, cfg, split="train") as ds:
            it = iter(ds)
            next(it)
        assert open({str(marker)!r}).read().split() == ["MainThread", "group-prefetch"]  # waited for
        for _ in range(20):
            next(it)  # the next groups load in line
        assert "group-prefetch" not in [t.name.split("_")[0] for t in threading.enumerate()]
    """)
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=100)
    assert r.returncode == 0, r.stderr[-2000:]
    loads = marker.read_text().split()
    assert loads[:2] == ["MainThread", "group-prefetch"] and set(loads[2:]) == {"MainThread"}, loads
    assert "Task was destroyed" not in r.stderr and "Fatal" not in r.stderr, r.stderr[-2000:]


def test_an_in_process_loader_prefetches_until_closed(corpus):
    """make_loader without workers opens the stream (its groups may load in a thread); close_loader
    stops that thread."""
    import threading

    def prefetchers():
        return [t for t in threading.enumerate() if t.name.startswith("group-prefetch")]

    cfg = CFG.replace(block_frames=64, buffer_blocks=2, prefetch_group=True)
    loader = make_loader(WindowStream(corpus, cfg, split="train"))
    it = iter(loader)
    for _ in range(12):  # past the first group: the next one loads in the stream's thread
        next(it)
    assert prefetchers()
    del it
    close_loader(loader)
    assert not prefetchers()


def test_prefetch_default_follows_the_cores(monkeypatch):
    from uplift.stream import use_prefetch

    for cores, expect in ((1, False), (2, False), (3, True), (16, True)):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert use_prefetch(CFG) is expect
        assert use_prefetch(CFG.replace(prefetch_group=True)) is True
        assert use_prefetch(CFG.replace(prefetch_group=False)) is False


def test_eval_stream_deterministic_and_aligned(corpus):
    ds = WindowStream(corpus, CFG, train=False, eval_s_in=4, split="test")
    batches = list(ds)
    ids = _ids(batches)
    assert ids == [(v, t) for v in range(2) for t in range(5)]  # corpus order, every frame once
    for b in batches:
        assert not b["flipped"].any()
        for i in range(len(b["frame"])):
            t = int(b["frame"][i])
            glob = t + (np.arange(5) - 2) * 2
            assert b["keyframe"][i].tolist() == (glob % 4 == 0).tolist()


def test_two_corpora_and_filters(tmp_path, corpus):
    other = _corpus(tmp_path / "o", [50], subject="S9", action="Sit")
    ds = WindowStream([corpus, other], CFG, train=False, subjects=["S9"])
    assert ds.num_windows == 100
    assert ds.views["corpus"].to_pylist() == [1, 1]


def test_separate_flips_and_groups_smaller_than_a_window(tmp_path):
    """Every window and its separate flipped copy exactly once, by value, also where a group holds
    fewer frames than a window (one-block groups over 1- and 3-frame sequences)."""
    corpus = _corpus(tmp_path / "t", [1, 3, 12], views=1)
    cfg = StreamConfig(seq_len=9, s_out=2, s_in=(2,), batch_size=4, block_frames=1, buffer_blocks=1,
                       in_batch_flip=False, drop_last=False)
    ds = WindowStream(corpus, cfg)
    nf = ds.views["n_frames"].to_numpy()
    seen = Counter()
    for b in ds:
        for i in range(len(b["view"])):
            v, t, fl = int(b["view"][i]), int(b["frame"][i]), bool(b["flipped"][i])
            idx, ok = window_indices(t, nf[v], 5, 2)
            # kp2d x = frame index on every joint; a flipped copy negates it
            assert (b["keypoints_2d"][i, :, :, 0].numpy() == (-1 if fl else 1) * idx[:, None]).all()
            assert b["valid"][i].tolist() == ok.tolist()
            seen[(v, t, fl)] += 1
    assert set(seen) == {(v, t, f) for v, n in enumerate(nf) for t in range(n) for f in (False, True)}
    assert max(seen.values()) == 1


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_persistent_workers_follow_set_epoch_and_shut_down(corpus):
    """One persistent 2-worker loader over epochs 0, 1 (and a resume inside epoch 1) yields exactly
    what a fresh 2-worker loader per epoch yields; close_loader stops the workers."""
    ref = WindowStream(corpus, CFG, split="train")
    ds = WindowStream(corpus, CFG, split="train")
    loader = make_loader(ds, num_workers=2, persistent=True, prefetch_factor=2)
    try:
        for epoch, start in ((0, 0), (1, 0), (1, 5)):
            ds.set_epoch(epoch, start)
            got = list(loader)
            ref.set_epoch(epoch, start)
            want = list(make_loader(ref, num_workers=2))
            assert len(got) == len(want) == ref.batches_per_epoch(2) - start
            for a, b in zip(got, want):
                for key in a:
                    assert torch.equal(a[key], b[key]), (epoch, start, key)
        workers = list(loader._iterator._workers)
        assert all(w.is_alive() for w in workers)
    finally:
        close_loader(loader)
    assert not any(w.is_alive() for w in workers)
