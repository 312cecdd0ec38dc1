"""Loader throughput and memory: our block-streaming WindowStream vs an official-style in-memory generator.

Setting: N = 351 frames, s_out = 5 (71 tokens), J = 17, 2D + 3D + masks, batch 512 (256 windows + their
flipped copies), same machine, same run.

* ``ours_wps``: windows/s of ``WindowStream`` reading a local corpus (Icechunk/Zarr) of ``--frames``
  frames (first size), in its default setting on this machine: torch's intra-op threads on every
  core of the process (``--threads``, default all) and the group prefetch thread as
  ``uplift.stream.use_prefetch`` decides (off on 2 cores). ``ours_1thread_prefetch_wps``: one torch
  thread plus the prefetch thread, the setting before (both figures in one run, side by side).
* ``baseline_wps``: windows/s of a generator written the way the official code does it: every
  sequence in RAM, one window at a time in Python (slice at stride, ``np.pad(mode="edge")``, key-frame
  mask with a random phase, flipped copy), stacked into batches.
* ``rss_mb_1m`` / ``rss_mb_10m``: peak RSS of a fresh process that opens a corpus of 1 M / 10 M
  frames and streams ``--rss-batches`` batches from it (the loader's memory must not grow with size).
* Mixing, on the first corpus (500 sequences of 2,000 frames at 1 M frames): per 256-window batch
  (the distinct windows of a 512 batch), the number of distinct (sequence, view) sources, and the
  number of sources two consecutive batches share; ``distinct_sources_ratio`` / ``overlap_ratio`` =
  ours over a global shuffle of every window of the corpus (what the official generator does),
  averaged over the timed batches (which cross several shuffle groups).
* The baseline is one Python thread, as the official generator is (its per-window numpy work holds
  the GIL); BLAS threads are 1 for it.
* ``ours_pw_wps`` / ``baseline_pw_wps``: the same with per-window cameras (one of the 28 H36M
  cameras drawn per window, projected on the fly with distortion, flipped copy mirrored in world
  space), ours vs the official-style generator projecting each window in numpy.

Usage: ``python -m benchmarks.bench_loader [--sizes 1000000,10000000] [--workdir DIR] [--keep]``.
Last line: JSON with ``ours_wps``, ``baseline_wps``, ``ratio``, ``ours_1thread_prefetch_wps``,
``ratio_1thread_prefetch``, ``rss_mb_1m``, ``rss_mb_10m``,
``ours_2workers_wps``, ``ratio_2cores`` (ours through 2 DataLoader workers vs the single-threaded
baseline), ``distinct_sources_ratio``, ``overlap_ratio``, ``ours_pw_wps``, ``baseline_pw_wps``, ``ratio_pw``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

SEQ_LEN, S_OUT, S_IN, J, BATCH = 351, 5, (5, 10, 20), 17, 512
SEQ_FRAMES = 2000  # frames per synthetic sequence (one view each): 1 M frames = 500 sequences


def build_corpus(path: Path, frames: int, seed: int = 0) -> str:
    """A corpus of ``frames`` view frames: smooth synthetic motion, one view per sequence."""
    from pipelines.writer import CorpusWriter
    from schemas.records import SequenceData, ViewData

    rng = np.random.default_rng(seed)
    w = CorpusWriter(path, num_joints=J, fps=50.0)
    n_seq = math.ceil(frames / SEQ_FRAMES)
    for i in range(n_seq):
        n = min(SEQ_FRAMES, frames - i * SEQ_FRAMES)
        t = np.arange(n, dtype=np.float32)[:, None, None] / 50.0
        ph = rng.uniform(0, 6.28, size=(1, J, 3)).astype(np.float32)
        j3 = (0.3 * np.sin(t * 2.0 + ph) + np.array([0, 0, 4.0], np.float32)).astype(np.float32)
        kp = (j3[..., :2] / j3[..., 2:]).astype(np.float32)
        v = ViewData("h36m", "54138969", "S1", "projected", kp, j3, np.ones((n, J), bool), np.zeros(11),
                     np.zeros((3, 4)))
        world = j3 - np.array([0, 0, 3.1], np.float32)  # a person standing on the floor (z-up)
        w.add(SequenceData(key=f"bench/{i}", source="amass", joints_world=world, views=[v], split="train"))
    w.commit(f"bench {frames} frames", tag="bench")
    return f"{path}@bench"


# --------------------------------------------------------------------------------------------
# Baseline: the official per-sample generator, in memory
# --------------------------------------------------------------------------------------------

def official_style_batches(videos_3d, videos_2d, batch, seed=0, cameras=None):
    """Yield batches the way the official H36mSequenceGenerator + batching does: one window at a time.

    ``cameras`` (a list of Cameras): ``videos_3d`` are world joints; each window draws a camera and is
    projected (and its flipped copy mirrored in world space and projected) in numpy, as the official
    AMASS generator does.
    """
    from schemas import cameras as npcam
    from schemas.skeletons import H36M_17

    flip = H36M_17.flip_permutation
    rng = np.random.default_rng(seed)
    locs = np.concatenate([np.stack([np.full(len(v), i), np.arange(len(v))], 1) for i, v in enumerate(videos_3d)])
    rng.shuffle(locs)
    seq_len = (SEQ_LEN - 1) // S_OUT + 1
    stride = S_OUT
    left = (seq_len - 1) * stride // 2
    right = (seq_len - 1) * stride - left
    buf = []
    for s_i, i in locs:
        abs_mask_stride = S_IN[rng.integers(0, len(S_IN))]
        mask_stride = abs_mask_stride // stride
        v3, v2 = videos_3d[s_i], videos_2d[s_i]
        begin, end = i - left, i + right + 1
        pad_l = pad_r = 0
        if begin < 0:
            pad_l = math.ceil(-begin / stride)
            begin = begin + pad_l * stride
        if end > len(v3):
            pad_r = math.ceil((end - len(v3)) / stride)
            end = end - pad_r * stride
        s3, s2 = v3[begin:end:stride], v2[begin:end:stride]
        mask = np.ones(s3.shape[0], np.float32)
        if pad_l or pad_r:
            s3 = np.pad(s3, ((pad_l, pad_r), (0, 0), (0, 0)), mode="edge")
            s2 = np.pad(s2, ((pad_l, pad_r), (0, 0), (0, 0)), mode="edge")
            mask = np.pad(mask, (pad_l, pad_r))
        if cameras is not None:
            cam = cameras[rng.integers(0, len(cameras))]
            w = s3 - np.r_[(s3[:, 0, :2].max(0) + s3[:, 0, :2].min(0)) / 2, 0.0]

            def proj(w):
                xc = npcam.world_to_camera(w, cam)
                return npcam.normalize_pixels(npcam.project(xc, cam), cam.res_w, cam.res_h), xc

            s2, s3 = proj(w)
            wf = w[:, flip].copy()
            wf[..., 0] *= -1
            f2, f3 = proj(wf)
            s3, f3 = s3 - s3[:, :1], f3 - f3[:, :1]
        s3 = s3 - s3[:, :1]
        idx = (np.arange(seq_len) - seq_len // 2) * stride
        max_shift = int(np.ceil((mask_stride - 1) / 2))
        idx = idx + rng.integers(-max_shift, max_shift, endpoint=mask_stride % 2 != 0) * stride
        kf = idx % abs_mask_stride == 0
        buf.append((s2, s3, mask, kf))
        if cameras is None:
            f3 = s3[:, flip].copy()
            f3[..., 0] *= -1
            f2 = s2[:, flip].copy()
            f2[..., 0] *= -1
        buf.append((f2, f3, mask, kf))
        if len(buf) == batch:
            yield tuple(np.stack(x) for x in zip(*buf))
            buf = []


def measure_baseline(spec: str, n_batches: int, per_window: bool = False) -> float:
    from schemas.reader import open_corpus
    from schemas.cameras import H36M_SUBJECTS, h36m_rig
    from schemas.store import JOINTS_CAM, JOINTS_WORLD, KEYPOINTS_2D

    r = open_corpus(spec)
    kp, j3 = np.asarray(r.array(KEYPOINTS_2D)[:]), np.asarray(r.array(JOINTS_WORLD if per_window else JOINTS_CAM)[:])
    off, n = r.views["offset"].to_numpy(), r.views["n_frames"].to_numpy()
    if per_window:
        off = r.sequences["offset"].to_numpy()
    v2 = [kp[a:a + b] for a, b in zip(off, n)]
    v3 = [j3[a:a + b] for a, b in zip(off, n)]
    cams = [c for s in H36M_SUBJECTS for c in h36m_rig(s)] if per_window else None
    gen = official_style_batches(v3, v2, BATCH, cameras=cams)
    next(gen)
    t = time.perf_counter()
    for _ in range(n_batches):
        next(gen)
    return n_batches * BATCH / (time.perf_counter() - t)


def measure_ours(spec: str, n_batches: int, cameras: str = "precomputed", threads: int | None = None,
                 prefetch: bool | None = None) -> tuple[float, list[np.ndarray]]:
    """Windows/s and, per timed batch, the view (source) of each distinct window. ``threads``: torch
    intra-op threads (None: one per core of the process); ``prefetch``: ``StreamConfig.prefetch_group``."""
    import torch

    from uplift.stream import StreamConfig, WindowStream

    before = torch.get_num_threads()
    torch.set_num_threads(threads or process_cores())
    ds = WindowStream(spec, StreamConfig(seq_len=SEQ_LEN, s_out=S_OUT, s_in=S_IN, batch_size=BATCH, cameras=cameras,
                                         prefetch_group=prefetch))
    with ds:  # open: the prefetch thread may load (use_prefetch); closing stops it before the next measure
        it = iter(ds)
        try:
            next(it)
            sources = []
            t = time.perf_counter()
            for _ in range(n_batches):
                b = next(it)
                sources.append(b["view"][~b["flipped"]].numpy())
            return n_batches * BATCH / (time.perf_counter() - t), sources
        finally:
            it.close()
            torch.set_num_threads(before)


def process_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def measure_ours_workers(spec: str, n_batches: int, workers: int = 2) -> float:
    """Windows/s through ``make_loader`` with ``workers`` persistent worker processes (2 cores)."""
    from uplift.loader import close_loader, make_loader
    from uplift.stream import StreamConfig, WindowStream

    ds = WindowStream(spec, StreamConfig(seq_len=SEQ_LEN, s_out=S_OUT, s_in=S_IN, batch_size=BATCH))
    loader = make_loader(ds, num_workers=workers, persistent=True, prefetch_factor=4)
    try:
        it = iter(loader)
        for _ in range(2 * workers):  # worker start-up and first group loads excluded
            next(it)
        t = time.perf_counter()
        for _ in range(n_batches):
            next(it)
        return n_batches * BATCH / (time.perf_counter() - t)
    finally:
        close_loader(loader)


def mixing(batches: list[np.ndarray]) -> tuple[float, float]:
    """Mean distinct sources per batch and mean sources shared by consecutive batches."""
    sets = [set(b.tolist()) for b in batches]
    distinct = float(np.mean([len(s) for s in sets]))
    overlap = float(np.mean([len(a & b) for a, b in zip(sets, sets[1:])]))
    return distinct, overlap


def global_shuffle_batches(spec: str, n_batches: int, per_batch: int, seed: int = 0) -> list[np.ndarray]:
    """Sources of the first ``n_batches`` batches of a global shuffle of every window of the corpus."""
    from schemas.reader import open_corpus

    r = open_corpus(spec)
    src = np.repeat(np.arange(r.views.num_rows), r.views["n_frames"].to_numpy())
    order = np.random.default_rng(seed).permutation(len(src))[: n_batches * per_batch]
    return list(src[order].reshape(n_batches, per_batch))


def rss_child(spec: str, n_batches: int) -> None:
    """Child process: stream ``n_batches`` and print peak RSS in MB."""
    import torch

    from uplift.stream import StreamConfig, WindowStream

    torch.set_num_threads(1)
    with WindowStream(spec, StreamConfig(seq_len=SEQ_LEN, s_out=S_OUT, s_in=S_IN, batch_size=BATCH)) as ds:
        for i, _ in enumerate(ds):
            if i + 1 >= n_batches:
                break
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB. VmHWM (Linux): ``ru_maxrss`` survives ``execve``, so a child
    started from a big parent would report the parent's peak (the same figure for every corpus size)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000", help="corpus sizes in frames (first: throughput)")
    ap.add_argument("--batches", type=int, default=600,
                    help="timed batches of our loader (600 x 256 windows crosses ~5 shuffle groups, so group reads count)")
    ap.add_argument("--baseline-batches", type=int, default=40)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for our loader (default: all cores)")
    ap.add_argument("--rss-batches", type=int, default=600)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--_rss", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._rss:
        rss_child(a._rss[0], int(a._rss[1]))
        return
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_loader_"))
    work.mkdir(parents=True, exist_ok=True)
    specs = {}
    try:
        for n in sizes:
            path = work / f"corpus_{n}"
            if (path / "repo").exists() or path.exists():
                specs[n] = f"{path}@bench"
            else:
                t = time.perf_counter()
                specs[n] = build_corpus(path, n)
                print(f"built {n} frames in {time.perf_counter() - t:.1f} s", flush=True)
        first = specs[sizes[0]]
        ours, srcs = measure_ours(first, a.batches, threads=a.threads)
        base = measure_baseline(first, a.baseline_batches)
        ours_1t, _ = measure_ours(first, a.batches, threads=1, prefetch=True)
        print(f"ours {ours:.0f} windows/s ({a.threads or process_cores()} torch threads), official-style in-memory "
              f"{base:.0f} windows/s, x{ours / base:.1f}; one torch thread + prefetch thread {ours_1t:.0f} windows/s, "
              f"x{ours_1t / base:.1f}", flush=True)
        ours_2w = measure_ours_workers(first, a.batches)
        print(f"ours with 2 loader workers (2 cores) {ours_2w:.0f} windows/s, x{ours_2w / base:.1f}", flush=True)
        d_ours, o_ours = mixing(srcs)
        d_glob, o_glob = mixing(global_shuffle_batches(first, len(srcs), len(srcs[0])))
        print(f"mixing per {len(srcs[0])}-window batch: distinct sources {d_ours:.1f} (global shuffle {d_glob:.1f}, "
              f"x{d_ours / d_glob:.2f}); shared with the next batch {o_ours:.1f} (global {o_glob:.1f}, "
              f"x{o_ours / o_glob:.2f})", flush=True)
        ours_pw, _ = measure_ours(first, max(a.batches // 4, 1), cameras="per-window", threads=a.threads)
        base_pw = measure_baseline(first, max(a.baseline_batches // 4, 1), per_window=True)
        print(f"per-window cameras: ours {ours_pw:.0f} windows/s, official-style {base_pw:.0f} windows/s, "
              f"x{ours_pw / base_pw:.1f}", flush=True)
        rss = {}
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "--_rss", specs[n], str(a.rss_batches)],
                                 capture_output=True, text=True, check=True)
            rss[n] = float(out.stdout.strip().splitlines()[-1])
            print(f"peak RSS streaming {a.rss_batches} batches from {n} frames: {rss[n]:.0f} MB", flush=True)
        res = {"ours_wps": round(ours, 1), "baseline_wps": round(base, 1), "ratio": round(ours / base, 2),
               "rss_mb_1m": round(rss.get(1_000_000, rss[sizes[0]]), 1),
               "rss_mb_10m": round(rss.get(10_000_000, rss[sizes[-1]]), 1),
               "ours_1thread_prefetch_wps": round(ours_1t, 1), "ratio_1thread_prefetch": round(ours_1t / base, 2),
               "ours_2workers_wps": round(ours_2w, 1), "ratio_2cores": round(ours_2w / base, 2),
               "distinct_sources_ratio": round(d_ours / d_glob, 3), "overlap_ratio": round(o_ours / o_glob, 3),
               "ours_pw_wps": round(ours_pw, 1), "baseline_pw_wps": round(base_pw, 1),
               "ratio_pw": round(ours_pw / base_pw, 2), "sizes": sizes}
        print(json.dumps(res))
    finally:
        if not a.keep and not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
