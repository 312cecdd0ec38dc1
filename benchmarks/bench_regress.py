"""Mesh-free joint regression vs the full-mesh smplx path, on the procedural SMPL+H and SMPL-X models.

    .venv/bin/python -m benchmarks.bench_regress [--frames N] [--batch B] [--ref-batches 256,1024,4096] [--threads T]
        [--smplx-ref-batches 64,256,1024] [--no-smplx]

Both sides run in this process on the same frames (random poses incl. hands, 16 betas, 8 DMPLs) with
the same torch thread count. The body model is the synthetic SMPL+H stand-in, as dense as the real
one (up to 4 bones a vertex, every pose-corrective entry non-zero); its regressor file is in SPIN's
row order and goes through the same side resolution as a build. The reference is smplx.SMPLH in
float32 (its default, as the AMASS conversion runs it) over the whole mesh, then the 17 x 6890 H36M
regressor, timed at each batch of ``--ref-batches`` and credited with its best; ours includes the
per-betas contraction. The error is measured against the float64 reference on the first frames.
Ends with one JSON line: {"ours_fps", "reference_fps", "ratio", "max_abs_err_m", "batch",
"reference_batch", "reference_fps_by_batch", "bones_per_vertex_mean", "posedirs_nonzero_fraction",
"smplx": {the same for SMPL-X}}.

SMPL-X, by the same rules: the same frames (random poses incl. jaw, eyes and hands, 16 betas, 10
expression coefficients), the synthetic SMPL-X stand-in (as dense: every pose-corrective and shape entry
non-zero), the H36M regressor file in SPIN's order composed with the synthetic deformation transfer
and side-resolved as a build does. The reference is smplx.SMPLX in float32 over the whole 10475-vertex
mesh, the transfer onto SMPL's 6890 vertices, then the 17 x 6890 regressor, timed at each batch of
``--smplx-ref-batches`` (smaller than SMPL+H's: a 10475-vertex batch takes 1.5x the memory) and
credited with its best; ours includes the contraction with the composed 17 x 10475 regressor.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from tests.support.smplx_reference import (reference_joints, reference_joints_smplx, smplx_forward_joints,
                                                smplx_reference_model, smplx_x_forward_joints, smplx_x_reference_model)
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
    ap.add_argument("--smplx-ref-batches", default="64,256,1024",
                    help="frames per batch tried for the SMPL-X full-mesh reference; it is credited with its best")
    ap.add_argument("--no-smplx", action="store_true", help="measure SMPL+H only")
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
    if not args.no_smplx:
        smplx_result, smplx_rows = _smplx(args, poses, trans, betas, rng)
        result["smplx"] = smplx_result
        rows += smplx_rows
    width_ = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width_}}  {v}")
    print(json.dumps(result))
    return result


def _smplx(args, poses156, trans, betas, rng) -> tuple[dict, list]:
    """The SMPL-X measurement: same frames (the SMPL+H poses with jaw and eyes added), same rules."""
    from pipelines.deftrafo import compose_regressor, load_deformation_transfer
    from pipelines.synthetic.smplx_model import write_deformation_transfer, write_smplx_models

    T = len(poses156)
    poses = np.concatenate([poses156[:, :66], rng.normal(0.0, 0.2, (T, 9)), poses156[:, 66:]], axis=1)  # (T, 165)
    expression = rng.normal(0.0, 1.5, (T, 10))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = write_smplx_models(tmp, seed=args.seed, genders=("male",))
        deftrafo = write_deformation_transfer(tmp, seed=args.seed)
        h36m = write_body_model_tree(f"{tmp}/smplh", seed=args.seed)["J_regressor_h36m"]
        t_gen = time.perf_counter() - t0
        model = load_body_models(tmp, "smplx")["male"]
        transfer = load_deformation_transfer(deftrafo)
        spin = load_regressor(h36m)
        reg, order = resolve_regressor_order(compose_regressor(spin, transfer), [model])
        spin_ordered = spin[list(order.perm)]  # the same rows, on SMPL's vertices, for the reference
        density = model_density(model)
        body = smplx_x_reference_model(model, files["smplx_male"], 10, dtype=torch.float32)
        smplx_x_forward_joints(body, model, spin_ordered, transfer.matrix, poses[:8], trans[:8], betas,
                               expression[:8], 8, torch.float32)  # warm-up
        t_by_batch = {}
        for rb in [int(b) for b in args.smplx_ref_batches.split(",")]:
            t0 = time.perf_counter()
            ref32 = smplx_x_forward_joints(body, model, spin_ordered, transfer.matrix, poses, trans, betas,
                                           expression, rb, torch.float32)
            t_by_batch[rb] = time.perf_counter() - t0
        del body
        ref_batch = min(t_by_batch, key=t_by_batch.get)
        t_ref = t_by_batch[ref_batch]
        JointRegressor.from_model(model, reg, betas, batch=args.batch, num_expression=10)(
            poses[:8], trans[:8], expression=expression[:8])  # warm-up
        t0 = time.perf_counter()
        jr = JointRegressor.from_model(model, reg, betas, batch=args.batch, num_expression=10)
        t_contract = time.perf_counter() - t0
        ours = jr(poses, trans, expression=expression)
        t_ours = time.perf_counter() - t0
        n = min(args.check_frames, T)
        ref64 = reference_joints_smplx(model, files["smplx_male"], spin_ordered, transfer.matrix, poses[:n],
                                       trans[:n], betas, expression[:n])
    err64 = float(np.abs(ours[:n] - ref64).max())
    err32 = float(np.abs(ours - ref32).max())
    result = {"ours_fps": T / t_ours, "reference_fps": T / t_ref, "ratio": t_ref / t_ours, "max_abs_err_m": err64,
              "batch": args.batch, "reference_batch": ref_batch,
              "reference_fps_by_batch": {str(b): round(T / t, 1) for b, t in t_by_batch.items()}, "frames": T,
              "regressor_nonzeros": int(reg.nnz),
              "body_model": "synthetic SMPL-X stand-in (dense) + synthetic deformation transfer", **density}
    rows = [
        ("SMPL-X stand-in + transfer generation", f"{t_gen:.2f} s"),
        ("SMPL-X regressor rows", order.message),
        ("SMPL-X composed regressor non-zeros (17 x 10475)", f"{reg.nnz}"),
        ("SMPL-X bones per vertex (mean) / posedirs non-zero",
         f"{density['bones_per_vertex_mean']:.2f} / {density['posedirs_nonzero_fraction']:.1%}"),
        *[(f"SMPL-X reference (smplx f32 + transfer, batch {b})", f"{t:.3f} s  {T / t:,.0f} fps")
          for b, t in t_by_batch.items()],
        ("SMPL-X ours contraction", f"{t_contract * 1e3:.1f} ms"),
        ("SMPL-X ours total (batch %d)" % args.batch, f"{t_ours:.3f} s  {T / t_ours:,.0f} fps"),
        ("SMPL-X speed-up", f"{t_ref / t_ours:.1f} x"),
        (f"SMPL-X max |ours - smplx f64| ({n} frames)", f"{err64:.2e} m"),
        ("SMPL-X max |ours - smplx f32| (all frames)", f"{err32:.2e} m"),
    ]
    return result, rows


if __name__ == "__main__":
    main()
