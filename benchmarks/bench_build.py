"""Whole-build throughput vs the full-mesh reference, measured side by side in one run.

Generates an AMASS-like corpus of at least ``--frames`` source frames (mixed 60-250 Hz), builds it
to 50 Hz with 4 H36M views per sequence on a Dask LocalCluster, rebuilds it unchanged (a no-op), and
times the reference (smplx SMPL+H forward pass + regressor) on a sample of the same frames.

    .venv/bin/python benchmarks/bench_build.py [--frames 1000000] [--workers 2]

Ends with one JSON line: source_fps, reference_fps, ratio, peak_rss_mb, store_mb, noop_rebuild_s,
out_of_view_fraction.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import psutil


class PeakRSS:
    """Samples the summed RSS of this process and its children (the Dask workers)."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                procs = [me, *me.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def reference_rate(body_models: Path, regressor: Path, amass_files: list[Path], frames: int) -> float:
    """Frames/s of the full-mesh reference on frames of this corpus: smplx.SMPLH forward in float32
    (the official conversion's precision), batch 256, then the regressor; model set-up not timed."""
    import torch

    from pipelines.amass import read_amass
    from pipelines.body_model import load_body_model, load_regressor
    from pipelines.regress import smplx_forward_joints, smplx_reference_model

    torch.set_num_threads(2)  # the whole machine, like the build's two workers
    reg = load_regressor(regressor)
    bodies: dict[str, tuple] = {}
    done, elapsed = 0, 0.0
    for path in amass_files:
        seq = read_amass(path)
        if seq.model_type != "smplh":
            continue
        if seq.gender not in bodies:
            model = load_body_model(body_models / "smplh" / seq.gender / "model.npz",
                                    body_models / "dmpls" / seq.gender / "model.npz")
            bodies[seq.gender] = (model, *smplx_reference_model(model, model.num_betas + 8, dtype=torch.float32))
        model, body, width = bodies[seq.gender]
        n = min(frames - done, seq.n_frames)
        t0 = time.perf_counter()
        smplx_forward_joints(body, width, model, reg, seq.poses[:n], seq.trans[:n], seq.betas,
                             seq.dmpls[:n], 256, torch.float32)
        elapsed += time.perf_counter() - t0
        done += n
        if done >= frames:
            break
    return done / elapsed


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="source frames to generate (at least)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reference-frames", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from pipelines.build import BuildConfig, build_amass
    from pipelines.synthetic.body_model import write_body_model_tree
    from pipelines.synthetic.motions import write_amass_tree

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_build_"))
    body_models, amass_root, corpus = work / "body_models", work / "amass", work / "corpus"
    write_body_model_tree(body_models, seed=args.seed)
    t0 = time.perf_counter()
    files = write_amass_tree(amass_root, n_sequences=64, seed=args.seed, total_frames=args.frames,
                             smplx_fraction=0.0)
    gen_s = time.perf_counter() - t0

    cfg = BuildConfig(amass_root=amass_root, body_models=body_models, corpus=corpus, fps=50.0,
                      cameras_per_sequence=4, rig="h36m", n_workers=args.workers, seed=args.seed)
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        report = build_amass(cfg)
        build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    noop = build_amass(cfg)
    noop_s = time.perf_counter() - t0
    assert noop.up_to_date, "the unchanged rebuild recomputed something"

    ref_fps = reference_rate(body_models, body_models / "J_regressor_h36m.npy", files, args.reference_frames)
    source_fps = report.source_frames / build_s
    out_frames = report.n_frames * 4
    store_mb = dir_size(corpus) / 1e6

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench_build ({args.workers} workers)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in [
        ("sources / rejects", f"{report.n_sources} / {len(report.rejects)}"),
        ("source frames", f"{report.source_frames:,}"),
        ("output sequence frames (50 Hz)", f"{report.n_frames:,}"),
        ("output view frames", f"{out_frames:,}"),
        ("generation time", f"{gen_s:.1f} s"),
        ("build time", f"{build_s:.1f} s"),
        ("source frames/s (whole build)", f"{source_fps:,.0f}"),
        ("output view frames/s", f"{out_frames / build_s:,.0f}"),
        ("reference frames/s (smplx forward + regressor)", f"{ref_fps:,.0f}"),
        ("ratio", f"{source_fps / ref_fps:.1f}x"),
        ("peak RSS (driver + workers)", f"{rss.peak / 1e6:,.0f} MB"),
        ("store size", f"{store_mb:,.1f} MB"),
        ("no-op rebuild", f"{noop_s:.2f} s"),
        ("out-of-view fraction (2D joints)", f"{report.out_of_view_fraction:.6f}"),
        ("flagged views", f"{report.n_flagged}"),
    ]:
        table.add_row(k, v)
    Console().print(table)
    print(json.dumps({"source_fps": round(source_fps, 1), "reference_fps": round(ref_fps, 1),
                      "ratio": round(source_fps / ref_fps, 2), "peak_rss_mb": round(rss.peak / 1e6, 1),
                      "store_mb": round(store_mb, 1), "noop_rebuild_s": round(noop_s, 2),
                      "out_of_view_fraction": report.out_of_view_fraction}))


if __name__ == "__main__":
    main()
