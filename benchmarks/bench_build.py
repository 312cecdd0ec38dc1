"""Whole-build throughput vs the full-mesh reference, measured side by side in one run.

Generates an AMASS-like corpus of at least ``--frames`` source frames (mixed 60-250 Hz), builds it
to 50 Hz with 4 H36M views per sequence on a Dask LocalCluster, rebuilds it unchanged (a no-op), and
times the reference (smplx SMPL+H forward pass + regressor) on a sample of the same sequences. The
body model is the synthetic SMPL+H stand-in, as dense as the real one; its regressor is in SPIN's
row order and goes through the build's side resolution.

Our build regresses only the source frames that the resampling to 50 Hz needs. Two baselines, both
timed here on the same sample, both counted in source frames covered per second:
- ``ratio``: the official conversion, the full mesh on every source frame;
- ``ratio_like_for_like``: the full mesh on the needed source frames only.

    .venv/bin/python benchmarks/bench_build.py [--frames 1000000] [--workers 2]

Ends with one JSON line: source_fps, reference_fps, ratio, reference_fps_like_for_like,
ratio_like_for_like, needed_fraction, bones_per_vertex_mean, posedirs_nonzero_fraction, peak_rss_mb,
store_mb, noop_rebuild_s, out_of_view_fraction.
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


def reference_rates(body_models: Path, regressor: Path, amass_files: list[Path], frames: int, fps: float,
                    batch: int) -> tuple[float, float, float]:
    """Source frames/s of the full-mesh reference on sequences of this corpus: smplx.SMPLH forward in
    float32 (the official conversion's precision) then the regressor, on (a) every source frame and
    (b) only the frames the resampling to ``fps`` needs, counted as the source frames they cover.
    Model set-up not timed. Returns (rate_all, rate_needed_only, needed_fraction)."""
    import torch

    from benchmarks.harness.smplx_reference import smplx_forward_joints, smplx_reference_model
    from pipelines.amass import read_amass
    from pipelines.sequence import resolved_regressor
    from pipelines.body_model import load_body_model
    from pipelines.resample import plan_resample

    torch.set_num_threads(2)  # the whole machine, like the build's two workers
    reg, _ = resolved_regressor(str(regressor), str(body_models))
    bodies: dict[str, tuple] = {}
    done = needed = 0
    t_all = t_needed = 0.0
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
                             seq.dmpls[:n], batch, torch.float32)
        t_all += time.perf_counter() - t0
        idx = plan_resample(n, seq.fps, fps).needed
        t0 = time.perf_counter()
        smplx_forward_joints(body, width, model, reg, seq.poses[idx], seq.trans[idx], seq.betas,
                             seq.dmpls[idx], batch, torch.float32)
        t_needed += time.perf_counter() - t0
        done += n
        needed += len(idx)
        if done >= frames:
            break
    return done / t_all, done / t_needed, needed / done


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="source frames to generate (at least)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reference-frames", type=int, default=4000)
    ap.add_argument("--reference-batch", type=int, default=1024, help="frames per smplx forward pass")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from pipelines.build_amass import BuildConfig, build_amass
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

    ref_fps, ref_like_fps, needed_fraction = reference_rates(
        body_models, body_models / "J_regressor_h36m.npy", files, args.reference_frames, cfg.fps, args.reference_batch)
    from pipelines.body_model import load_body_models, model_density

    density = model_density(load_body_models(body_models)["male"])
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
        ("body model: bones per vertex (mean) / posedirs non-zero",
         f"{density['bones_per_vertex_mean']:.2f} / {density['posedirs_nonzero_fraction']:.1%}"),
        ("regressor rows", report.regressor_order.get("message", "") if report.regressor_order else ""),
        ("reference source frames/s, every frame (official)", f"{ref_fps:,.0f}"),
        ("ratio", f"{source_fps / ref_fps:.1f}x"),
        ("needed source frames (resampling to 50 Hz)", f"{needed_fraction:.1%}"),
        ("reference source frames/s, needed frames only", f"{ref_like_fps:,.0f}"),
        ("ratio like for like", f"{source_fps / ref_like_fps:.1f}x"),
        ("peak RSS (driver + workers)", f"{rss.peak / 1e6:,.0f} MB"),
        ("store size", f"{store_mb:,.1f} MB"),
        ("no-op rebuild", f"{noop_s:.2f} s"),
        ("out-of-view fraction (2D joints)", f"{report.out_of_view_fraction:.6f}"),
        ("flagged views", f"{report.n_flagged}"),
    ]:
        table.add_row(k, v)
    Console().print(table)
    print(json.dumps({"source_fps": round(source_fps, 1), "reference_fps": round(ref_fps, 1),
                      "ratio": round(source_fps / ref_fps, 2),
                      "reference_fps_like_for_like": round(ref_like_fps, 1),
                      "ratio_like_for_like": round(source_fps / ref_like_fps, 2),
                      "needed_fraction": round(needed_fraction, 4), "source_frames": report.source_frames,
                      "body_model": "synthetic SMPL+H stand-in (dense)",
                      "bones_per_vertex_mean": round(density["bones_per_vertex_mean"], 3),
                      "posedirs_nonzero_fraction": round(density["posedirs_nonzero_fraction"], 4),
                      "peak_rss_mb": round(rss.peak / 1e6, 1),
                      "store_mb": round(store_mb, 1), "noop_rebuild_s": round(noop_s, 2),
                      "out_of_view_fraction": report.out_of_view_fraction}))


if __name__ == "__main__":
    main()
