"""Mesh-free joint regression vs the full-mesh smplx path, on the procedural SMPL+H model.

    .venv/bin/python benchmarks/bench_regress.py [--frames N] [--batch B] [--ref-batches 256,1024,4096] [--threads T]

Both sides run in this process on the same frames (random poses incl. hands, 16 betas, 8 DMPLs) with
the same torch thread count. The body model is the synthetic SMPL+H stand-in, as dense as the real
one (up to 4 bones a vertex, every pose-corrective entry non-zero); its regressor file is in SPIN's
row order and goes through the same side resolution as a build. The reference is smplx.SMPLH in
float32 (its default, as the AMASS conversion runs it) over the whole mesh, then the 17 x 6890 H36M
regressor, timed at each batch of ``--ref-batches`` and credited with its best; ours includes the
per-betas contraction. The error is measured against the float64 reference on the first frames.
Ends with one JSON line: {"ours_fps", "reference_fps", "ratio", "max_abs_err_m", "batch",
"reference_batch", "reference_fps_by_batch", "bones_per_vertex_mean", "posedirs_nonzero_fraction"}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from benchmarks.harness.smplx_reference import reference_joints, smplx_forward_joints, smplx_reference_model
from pipelines.body_model import load_body_models, load_regressor, model_density
from pipelines.regressor_order import resolve_regressor_order
from pipelines.regress import JointRegressor
from pipelines.synthetic.body_model import write_body_model_tree


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=4096, help="frames per batch, ours")
    ap.add_argument("--ref-batches", default="256,1024,4096",
                    help="frames per batch tried for the full-mesh reference; it is credited with its best")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check-frames", type=int, default=256, help="frames compared with the float64 reference")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    T = args.frames
    poses = rng.normal(0.0, 0.4, (T, 156))
    trans = rng.normal(0.0, 1.0, (T, 3))
    betas = rng.uniform(-3.0, 3.0, 16)
    dmpls = rng.normal(0.0, 1.5, (T, 8))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = write_body_model_tree(tmp, seed=args.seed)
        t_gen = time.perf_counter() - t0
        models = load_body_models(tmp)
        model = models["male"]
        reg, order = resolve_regressor_order(load_regressor(files["J_regressor_h36m"]), list(models.values()))
    density = model_density(model)

    # Reference: full mesh, float32, at each batch size; the best one counts.
    body, width = smplx_reference_model(model, model.num_betas + 8, dtype=torch.float32)
    smplx_forward_joints(body, width, model, reg, poses[:8], trans[:8], betas, dmpls[:8], 8, torch.float32)  # warm-up
    t_by_batch = {}
    for rb in [int(b) for b in args.ref_batches.split(",")]:
        t0 = time.perf_counter()
        ref32 = smplx_forward_joints(body, width, model, reg, poses, trans, betas, dmpls, rb, torch.float32)
        t_by_batch[rb] = time.perf_counter() - t0
    ref_batch = min(t_by_batch, key=t_by_batch.get)
    t_ref = t_by_batch[ref_batch]

    # Ours: contraction for these betas + all frames.
    JointRegressor.from_model(model, reg, betas, batch=args.batch)(poses[:8], trans[:8], dmpls[:8])  # warm-up
    t0 = time.perf_counter()
    jr = JointRegressor.from_model(model, reg, betas, batch=args.batch)
    t_contract = time.perf_counter() - t0
    ours = jr(poses, trans, dmpls)
    t_ours = time.perf_counter() - t0

    n = min(args.check_frames, T)
    ref64 = reference_joints(model, reg, poses[:n], trans[:n], betas, dmpls[:n])
    err64 = float(np.abs(ours[:n] - ref64).max())
    err32 = float(np.abs(ours - ref32).max())

    result = {"ours_fps": T / t_ours, "reference_fps": T / t_ref, "ratio": t_ref / t_ours,
              "max_abs_err_m": err64, "batch": args.batch, "reference_batch": ref_batch,
              "reference_fps_by_batch": {str(b): round(T / t, 1) for b, t in t_by_batch.items()},
              "frames": T, "body_model": "synthetic SMPL+H stand-in (dense)", **density}
    rows = [
        ("frames", f"{T}"), ("torch threads", f"{args.threads}"),
        ("model tree generation", f"{t_gen:.2f} s"),
        ("regressor rows", order.message),
        ("bones per vertex (mean) / posedirs non-zero",
         f"{density['bones_per_vertex_mean']:.2f} / {density['posedirs_nonzero_fraction']:.1%}"),
        ("(joint, bone) pairs / bones / pose cols", f"{len(jr.pair_joint)} / {len(jr.chain)} / {len(jr.pose_cols)}"),
        *[(f"reference (smplx f32, batch {b})", f"{t:.3f} s  {T / t:,.0f} fps") for b, t in t_by_batch.items()],
        ("reference credited (best batch)", f"{ref_batch}"),
        ("ours contraction", f"{t_contract * 1e3:.1f} ms"),
        ("ours total (batch %d)" % args.batch, f"{t_ours:.3f} s  {T / t_ours:,.0f} fps"),
        ("speed-up", f"{t_ref / t_ours:.1f} x"),
        (f"max |ours - smplx f64| ({n} frames)", f"{err64:.2e} m"),
        ("max |ours - smplx f32| (all frames)", f"{err32:.2e} m"),
    ]
    width_ = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width_}}  {v}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
