"""Random 351-frame window reads from a ~1M-frame view array in an Icechunk corpus.

Compares the store layout of ``schemas.store`` (TIME_CHUNK-frame chunks, Blosc-LZ4) with and without
sharding, one window per call, and the block-read pattern (read one chunk, cut many windows).

    .venv/bin/python -m benchmarks.corpus_window_reads [--frames 1000000] [--windows 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import icechunk
import numpy as np
import zarr

from schemas.store import KEYPOINTS_2D, TIME_CHUNK

WINDOW = 351


def make_view_array(path: str | Path, n_frames: int, num_joints: int = 17, *, shards: int | None = None,
                    seed: int = 0) -> float:
    """Write a smooth random (n_frames, J, 2) float32 keypoint array into a fresh repo; returns seconds."""
    rng = np.random.default_rng(seed)
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    chunks = KEYPOINTS_2D.chunks(num_joints)
    shard_shape = None if shards is None else (chunks[0] * shards, *chunks[1:])
    # the store's own codec (Blosc-LZ4): zarr's default (zstd) is not what a corpus holds
    arr = zarr.create_array(session.store, name=KEYPOINTS_2D.path, shape=KEYPOINTS_2D.shape(n_frames, num_joints),
                            dtype=KEYPOINTS_2D.dtype, chunks=chunks, shards=shard_shape,
                            compressors=KEYPOINTS_2D.compressors())
    t0 = time.perf_counter()
    step = shard_shape[0] if shard_shape else chunks[0] * 16
    for a in range(0, n_frames, step):
        n = min(step, n_frames - a)
        # Smooth trajectories compress like real motion does (random noise would not).
        block = np.cumsum(rng.normal(0, 0.003, (n, num_joints, 2)), axis=0, dtype=np.float32)
        arr[a:a + n] = np.clip(block, -1, 1)
    session.commit("bench")
    return time.perf_counter() - t0


def window_reads_per_s(path: str | Path, n_windows: int, seed: int = 0) -> float:
    """One random 351-frame window per call through zarr (the naive loader)."""
    session = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path))).readonly_session(branch="main")
    arr = zarr.open_array(session.store, path=KEYPOINTS_2D.path, mode="r")
    starts = np.random.default_rng(seed).integers(0, arr.shape[0] - WINDOW, n_windows)
    arr[0:WINDOW]  # warm metadata
    t0 = time.perf_counter()
    for s in starts:
        arr[s:s + WINDOW]
    return n_windows / (time.perf_counter() - t0)


def block_windows_per_s(path: str | Path, n_blocks: int, per_block: int = 64, seed: int = 0) -> float:
    """Read whole chunk-aligned blocks and cut ``per_block`` random windows from each (the buffered loader)."""
    session = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path))).readonly_session(branch="main")
    arr = zarr.open_array(session.store, path=KEYPOINTS_2D.path, mode="r")
    rng = np.random.default_rng(seed)
    n_chunks = arr.shape[0] // TIME_CHUNK
    t0 = time.perf_counter()
    n = 0
    for c in rng.integers(0, n_chunks - 1, n_blocks):
        block = arr[c * TIME_CHUNK:(c + 2) * TIME_CHUNK]  # two chunks, so windows may cross a boundary
        for s in rng.integers(0, len(block) - WINDOW, per_block):
            np.ascontiguousarray(block[s:s + WINDOW])
            n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--windows", type=int, default=2000)
    args = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, shards in (("unsharded", None), ("sharded x16", 16)):
            p = Path(tmp) / label.replace(" ", "_")
            w = make_view_array(p, args.frames, shards=shards)
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            one, block = window_reads_per_s(p, args.windows), block_windows_per_s(p, 50)
            print(f"{label:12s} write {w:5.2f} s  store {size / 1e6:6.1f} MB  "
                  f"one-window reads {one:7.0f}/s  block reads {block:8.0f} windows/s")
            res.setdefault("one_window_per_s", round(one, 1))  # the unsharded layout, as stored
            res.setdefault("block_windows_per_s", round(block, 1))
            res[f"one_window_per_s_{'sharded' if shards else 'unsharded'}"] = round(one, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
