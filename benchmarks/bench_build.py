"""Whole-build throughput vs the full-mesh reference, scaling with Dask workers, no-op rebuilds and
memory, measured side by side in one run.

Generates an AMASS-like corpus of at least ``--frames`` source frames (mixed 60-250 Hz) and builds it
to 50 Hz with 4 H36M views per sequence on a Dask LocalCluster of 1 and of ``--workers`` workers
(workers write their shards into the repository through forked Icechunk sessions; the driver only
places rows, merges and commits). The body model is the synthetic SMPL+H stand-in, as dense as the
real one; its regressor is in SPIN's row order and goes through the build's side resolution.

Baselines, timed here on a sample of the same sequences after one untimed warm-up pass (the fastest of
three timed passes), counted in source frames covered per second:
- ``ratio``: the official conversion, smplx's full SMPL+H mesh on every source frame;
- ``ratio_like_for_like``: the full mesh on only the source frames the resampling to 50 Hz needs, i.e.
  the official rate divided by ``needed_fraction``, the needed share of the WHOLE benchmark corpus
  (all its frame rates), counted from every file's frame count and rate.

Builds with 1 and N workers alternate, twice each (``--repeats``); the fastest of each counts.
Scaling: ``serial_share`` is the share of the 1-worker build the driver spends busy (not waiting for
workers, not starting the LocalCluster: listing, hashing, placing shards, merging forks, committing);
Amdahl's law projects the speed-up at 8, 32 and 128 workers from it. Memory: peak RSS of the driver
and of the largest worker, for builds of ``--memory-frames`` source frames (CLI builds, 2 workers).
No-op: ``--noop-files`` small sources are built once, then an unchanged rebuild is timed against
``mocap-corpus versions`` on the same corpus (both as CLI commands, the median of 3 runs each).

    .venv/bin/python -m benchmarks.bench_build [--frames 1000000] [--workers 2] \\
        [--memory-frames 300000,3000000] [--noop-files 10000]

Ends with one JSON line: source_fps, workers_1_fps, workers_2_fps, serial_share, speedup_projected,
reference_fps, ratio, reference_fps_like_for_like, ratio_like_for_like, needed_fraction, noop_ratio,
noop_rebuild_s, versions_s, memory (per corpus size: driver and worker peak MB), phases (where a
worker's time goes), peak_rss_mb, store_mb, out_of_view_fraction, ...
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-m", "flows.cli")


class PeakRSS:
    """Peak RSS of one process (the driver) and of the largest of its descendants (a Dask worker), and
    of all together, sampled every ``interval`` seconds."""

    def __init__(self, pid: int | None = None, interval: float = 0.1):
        self.pid = pid or os.getpid()
        self.interval, self._stop = interval, threading.Event()
        self.driver = self.worker = self.total = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                me = psutil.Process(self.pid)
                driver = me.memory_info().rss
                workers = [p.memory_info().rss for p in me.children(recursive=True) if p.is_running()]
                self.driver = max(self.driver, driver)
                self.worker = max(self.worker, max(workers, default=0))
                self.total = max(self.total, driver + sum(workers))
            except psutil.Error:
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def needed_fraction(files: list[Path], fps: float) -> tuple[float, int]:
    """(share of source frames the resampling to ``fps`` needs, source frames) over every file."""
    from pipelines.amass import read_amass
    from pipelines.resample import plan_resample

    total = needed = 0
    for path in files:
        seq = read_amass(path)
        total += seq.n_frames
        needed += len(plan_resample(seq.n_frames, seq.fps, fps).needed)
    return needed / total, total


def reference_fps(body_models: Path, regressor: Path, amass_files: list[Path], frames: int, batch: int,
                  repeats: int = 3) -> float:
    """Source frames/s of the full-mesh reference on sequences of this corpus: smplx.SMPLH forward in
    float32 (the official conversion's precision), then the regressor, on every source frame of a
    sample of ``frames`` frames. Model set-up not timed; one untimed warm-up pass first, then the
    fastest of ``repeats`` timed passes (on a loaded machine: the least disturbed one)."""
    import torch

    from tests.support.smplx_reference import smplx_forward_joints, smplx_reference_model
    from pipelines.amass import read_amass
    from pipelines.body_model import load_body_model
    from pipelines.sequence import resolved_regressor

    torch.set_num_threads(2)  # the whole machine, like the build's two workers
    reg, _ = resolved_regressor(str(regressor), str(body_models))
    bodies: dict[str, tuple] = {}
    sample, done = [], 0
    for path in amass_files:
        seq = read_amass(path)
        if seq.model_type != "smplh":
            continue
        if seq.gender not in bodies:
            model = load_body_model(body_models / "smplh" / seq.gender / "model.npz",
                                    body_models / "dmpls" / seq.gender / "model.npz")
            bodies[seq.gender] = (model, *smplx_reference_model(model, model.num_betas + 8, dtype=torch.float32))
        n = min(frames - done, seq.n_frames)
        sample.append((seq, n))
        done += n
        if done >= frames:
            break

    def run(seq, n):
        model, body, width = bodies[seq.gender]
        smplx_forward_joints(body, width, model, reg, seq.poses[:n], seq.trans[:n], seq.betas, seq.dmpls[:n],
                             batch, torch.float32)

    run(sample[0][0], min(sample[0][1], batch))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for seq, n in sample:
            run(seq, n)
        times.append(time.perf_counter() - t0)
    return done / min(times)


def phases(body_models: Path, files: list[Path], fps: float, max_files: int) -> dict:
    """Seconds a worker spends per phase on ``max_files`` files, in one process: reading (and hashing)
    the file, regressing joints at ``fps``, the in-view placement search + projecting the views, and
    checking + writing the shard through a fork."""
    import tempfile as tf

    from pipelines.amass import read_amass
    from pipelines.forked_writer import ForkedCorpusWriter, Shard, write_shard
    from pipelines.placement import place_and_project
    from pipelines.sequence import _sequence_rng, sequence_joints
    from pipelines.writer import sequence_parts
    from schemas import store as S
    from schemas.records import SequenceData

    regressor = body_models / "J_regressor_h36m.npy"
    out = {"read_s": 0.0, "regress_s": 0.0, "place_project_s": 0.0, "write_s": 0.0, "source_frames": 0}
    sequence_joints(read_amass(files[0]), body_models, regressor, fps)  # warm: body models, regressor order
    parts = []
    for path in files[:max_files]:
        t = time.perf_counter()
        seq = read_amass(path)
        out["read_s"] += time.perf_counter() - t
        t = time.perf_counter()
        joints = sequence_joints(seq, body_models, regressor, fps)
        out["regress_s"] += time.perf_counter() - t
        t = time.perf_counter()
        segs = place_and_project(joints, rig="h36m", cameras_per_sequence=4, rng=_sequence_rng(0, seq.key))
        out["place_project_s"] += time.perf_counter() - t
        out["source_frames"] += seq.n_frames
        parts += [sequence_parts(SequenceData(key=f"{seq.key}#{i}", source="amass", joints_world=g.joints_world,
                                              views=g.views, fps=fps), S.ARRAYS) for i, g in enumerate(segs)]
    with tf.TemporaryDirectory() as d:
        w = ForkedCorpusWriter(Path(d) / "c")
        t = time.perf_counter()
        shard = Shard(parts, 17)
        starts = w.add_shard(shard.summary())
        w.merge(write_shard(w.fork(), shard, starts))
        out["write_s"] += time.perf_counter() - t
        w.abort()
    return out


def phases_in_worker_like_process(body_models: Path, amass_root: Path, fps: float, max_files: int) -> dict:
    """``phases`` in a fresh process with one BLAS/OpenMP thread, as a Dask worker of the build runs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = ("import json, sys; from pathlib import Path; from benchmarks.bench_build import phases; "
            "files = sorted(Path(sys.argv[2]).rglob('*_poses.npz')); "
            "print(json.dumps(phases(Path(sys.argv[1]), files, float(sys.argv[3]), int(sys.argv[4]))))")
    out = subprocess.run([sys.executable, "-c", code, str(body_models), str(amass_root), str(fps), str(max_files)],
                         cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed_build(cfg) -> tuple[object, float, PeakRSS]:
    from pipelines.build_amass import build_amass

    with PeakRSS() as rss:
        t0 = time.perf_counter()
        report = build_amass(cfg)
        return report, time.perf_counter() - t0, rss


def cli(*args: str, timeout: float = 3600) -> float:
    """Wall seconds of one CLI command (as a user runs it); raises if it fails."""
    t0 = time.perf_counter()
    subprocess.run([*CLI, *args], cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=timeout)
    return time.perf_counter() - t0


def cli_build_args(amass: Path, body_models: Path, corpus: Path, workers: int) -> list[str]:
    return ["build-amass", str(amass), "--body-models", str(body_models), "--corpus", str(corpus),
            "--workers", str(workers)]


def memory_at(work: Path, body_models: Path, frames: int, workers: int, seed: int) -> dict:
    """Peak RSS (MB) of the driver and of the largest worker for a CLI build of ``frames`` source frames."""
    from pipelines.synthetic.motions import write_amass_tree

    amass = work / f"amass_{frames}"
    # durations drawn from the same range at every corpus size: memory is compared across corpus
    # sizes, not across file sizes
    write_amass_tree(amass, seed=seed + 1, total_frames=frames, smplx_fraction=0.0)
    corpus = work / f"corpus_{frames}"
    proc = subprocess.Popen([*CLI, *cli_build_args(amass, body_models, corpus, workers)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with PeakRSS(proc.pid) as rss:
        t0 = time.perf_counter()
        if proc.wait(timeout=7200) != 0:
            raise RuntimeError(f"the {frames}-frame build failed")
        wall = time.perf_counter() - t0
    import shutil

    shutil.rmtree(amass)
    shutil.rmtree(corpus)
    return {"source_frames": frames, "driver_mb": round(rss.driver / 1e6, 1), "worker_mb": round(rss.worker / 1e6, 1),
            "build_s": round(wall, 1)}


def noop_ratio(work: Path, body_models: Path, n_files: int, workers: int, seed: int) -> dict:
    """A corpus of ``n_files`` small sources built once; then (median of 3) an unchanged rebuild vs
    ``mocap-corpus versions``, both as CLI commands."""
    from pipelines.synthetic.motions import write_amass_tree

    amass, corpus = work / "amass_noop", work / "corpus_noop"
    write_amass_tree(amass, n_sequences=n_files, seed=seed + 2, duration_s=(0.2, 0.4), smplx_fraction=0.0)
    build_s = cli(*cli_build_args(amass, body_models, corpus, workers))
    noop = statistics.median(cli(*cli_build_args(amass, body_models, corpus, workers)) for _ in range(3))
    versions = statistics.median(cli("versions", str(corpus)) for _ in range(3))
    return {"files": n_files, "first_build_s": round(build_s, 1), "noop_rebuild_s": round(noop, 3),
            "versions_s": round(versions, 3), "noop_ratio": round(noop / versions, 2)}


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def amdahl(serial: float, n: int) -> float:
    return 1.0 / (serial + (1.0 - serial) / n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="source frames to generate (at least)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reference-frames", type=int, default=4000)
    ap.add_argument("--reference-batch", type=int, default=1024, help="frames per smplx forward pass")
    ap.add_argument("--memory-frames", default="", help="comma-separated corpus sizes for the memory builds")
    ap.add_argument("--noop-files", type=int, default=0, help="sources of the no-op rebuild corpus (0: skip)")
    ap.add_argument("--phase-files", type=int, default=8, help="files timed phase by phase in one process")
    ap.add_argument("--repeats", type=int, default=2, help="builds per worker count (1 and N alternate); the fastest counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from pipelines.build_amass import BuildConfig, build_amass
    from pipelines.synthetic.body_model import write_body_model_tree
    from pipelines.synthetic.motions import write_amass_tree

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_build_"))
    body_models, amass_root = work / "body_models", work / "amass"
    write_body_model_tree(body_models, seed=args.seed)
    t0 = time.perf_counter()
    files = write_amass_tree(amass_root, n_sequences=64, seed=args.seed, total_frames=args.frames,
                             smplx_fraction=0.0)
    gen_s = time.perf_counter() - t0
    fraction, corpus_frames = needed_fraction(files, 50.0)

    def cfg(corpus: Path, workers: int) -> BuildConfig:
        return BuildConfig(amass_root=amass_root, body_models=body_models, corpus=corpus, fps=50.0,
                           cameras_per_sequence=4, rig="h36m", n_workers=workers, seed=args.seed)

    # warm-up: page cache and imports, untimed (a small build of two files)
    warm_root = work / "warm"
    for f in files[:2]:
        (warm_root / f.relative_to(amass_root)).parent.mkdir(parents=True, exist_ok=True)
        (warm_root / f.relative_to(amass_root)).write_bytes(f.read_bytes())
    build_amass(cfg(work / "corpus_warm", 1).model_copy(update={"amass_root": warm_root}))

    # 1 and N workers alternately, ``--repeats`` times each; the fastest of each counts (on a shared
    # machine: the least disturbed run, as for the reference)
    runs, walls = {}, {}
    for rep in range(args.repeats):
        for w in sorted({1, args.workers}):
            corpus = work / f"corpus_w{w}"
            if corpus.exists():
                import shutil

                shutil.rmtree(corpus)
            report, wall, rss = timed_build(cfg(corpus, w))
            walls.setdefault(w, []).append(round(wall, 2))
            if w not in runs or wall < runs[w][1]:
                runs[w] = (report, wall, rss)
    report, build_s, rss = runs[args.workers]
    r1, t1, _ = runs[1]
    timing1 = r1.timings
    serial = timing1["driver_busy_s"] / (t1 - timing1["cluster_s"])
    fps = {w: runs[w][0].source_frames / runs[w][1] for w in runs}
    t0 = time.perf_counter()
    noop = build_amass(cfg(work / f"corpus_w{args.workers}", args.workers))
    noop_s = time.perf_counter() - t0
    assert noop.up_to_date and noop.n_hashed == 0, "the unchanged rebuild recomputed or read something"

    ref_fps = reference_fps(body_models, body_models / "J_regressor_h36m.npy", files, args.reference_frames,
                            args.reference_batch)
    ref_like = ref_fps / fraction
    ph = phases_in_worker_like_process(body_models, amass_root, 50.0, args.phase_files)
    memory = [memory_at(work, body_models, int(f), args.workers, args.seed)
              for f in args.memory_frames.split(",") if f.strip()]
    noop_big = noop_ratio(work, body_models, args.noop_files, args.workers, args.seed) if args.noop_files else None

    from pipelines.body_model import load_body_models, model_density

    density = model_density(load_body_models(body_models)["male"])
    source_fps = fps[args.workers]
    store_mb = dir_size(work / f"corpus_w{args.workers}") / 1e6
    projected = {n: round(amdahl(serial, n), 1) for n in (8, 32, 128)}
    phase_total = sum(ph[k] for k in ("read_s", "regress_s", "place_project_s", "write_s"))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench_build (1 and {args.workers} workers)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("sources / rejects", f"{report.n_sources} / {len(report.rejects)}"),
        ("source frames", f"{report.source_frames:,}"),
        ("output sequence frames (50 Hz) / view frames", f"{report.n_frames:,} / {report.n_frames * 4:,}"),
        ("generation time", f"{gen_s:.1f} s"),
        *[(f"build time, {w} worker(s)", f"{runs[w][1]:.1f} s ({fps[w]:,.0f} source frames/s)") for w in runs],
        ("1 worker: LocalCluster start+stop / driver busy / worker task time",
         f"{timing1['cluster_s']:.1f} / {timing1['driver_busy_s']:.1f} / {timing1['worker_s']:.1f} s"),
        ("serial share (driver busy / build time without the LocalCluster)", f"{serial:.1%}"),
        ("Amdahl speed-up at 8 / 32 / 128 workers", " / ".join(f"{v}x" for v in projected.values())),
        ("measured speed-up at 2 workers (Amdahl)", f"{fps.get(2, 0) / fps[1]:.2f}x ({amdahl(serial, 2):.2f}x)"),
        ("body model: bones per vertex (mean) / posedirs non-zero",
         f"{density['bones_per_vertex_mean']:.2f} / {density['posedirs_nonzero_fraction']:.1%}"),
        ("reference source frames/s, every frame (official, warmed up)", f"{ref_fps:,.0f}"),
        ("ratio", f"{source_fps / ref_fps:.1f}x"),
        ("needed source frames, whole corpus (resampling to 50 Hz)", f"{fraction:.1%} of {corpus_frames:,}"),
        ("reference like for like (official / needed fraction)", f"{ref_like:,.0f}"),
        ("ratio like for like", f"{source_fps / ref_like:.1f}x"),
        ("worker phases: read / regress / place+project / write",
         " / ".join(f"{ph[k] / phase_total:.0%}" for k in ("read_s", "regress_s", "place_project_s", "write_s"))),
        ("peak RSS driver / largest worker (timed build)", f"{rss.driver / 1e6:,.0f} / {rss.worker / 1e6:,.0f} MB"),
        *[(f"peak RSS driver / worker, {m['source_frames']:,} frames", f"{m['driver_mb']:,.0f} / {m['worker_mb']:,.0f} MB")
          for m in memory],
        ("store size", f"{store_mb:,.1f} MB"),
        ("no-op rebuild (in process)", f"{noop_s:.2f} s"),
        *([(f"no-op rebuild / `versions`, {noop_big['files']:,} files (CLI)",
            f"{noop_big['noop_rebuild_s']:.2f} / {noop_big['versions_s']:.2f} s = {noop_big['noop_ratio']:.2f}x")]
          if noop_big else []),
        ("out-of-view fraction (2D joints)", f"{report.out_of_view_fraction:.6f}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
    print(json.dumps({
        "source_fps": round(source_fps, 1), "workers": args.workers,
        "workers_1_fps": round(fps[1], 1), "workers_2_fps": round(fps.get(2, 0.0), 1),
        "serial_share": round(serial, 4), "speedup_projected": projected,
        "speedup_measured_2": round(fps.get(2, 0.0) / fps[1], 3), "timings_1_worker": timing1,
        "build_walls_s": {str(w): v for w, v in walls.items()},
        "reference_fps": round(ref_fps, 1), "ratio": round(source_fps / ref_fps, 2),
        "reference_fps_like_for_like": round(ref_like, 1), "ratio_like_for_like": round(source_fps / ref_like, 2),
        "needed_fraction": round(fraction, 4), "corpus_source_frames": corpus_frames,
        "source_frames": report.source_frames, "body_model": "synthetic SMPL+H stand-in (dense)",
        "bones_per_vertex_mean": round(density["bones_per_vertex_mean"], 3),
        "posedirs_nonzero_fraction": round(density["posedirs_nonzero_fraction"], 4),
        "phases": {k: round(v, 3) if isinstance(v, float) else v for k, v in ph.items()},
        "peak_rss_mb": round(rss.total / 1e6, 1), "driver_rss_mb": round(rss.driver / 1e6, 1),
        "worker_rss_mb": round(rss.worker / 1e6, 1), "memory": memory,
        "store_mb": round(store_mb, 1), "noop_rebuild_s": round(noop_s, 3),
        "noop_ratio": noop_big["noop_ratio"] if noop_big else None, "noop": noop_big,
        "out_of_view_fraction": report.out_of_view_fraction}))


if __name__ == "__main__":
    main()
