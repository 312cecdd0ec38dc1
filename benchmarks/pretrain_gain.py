"""Proxy experiment: does pre-training on a large AMASS-like corpus help a small H36M/CPN-like task?

Synthetic, CPU, tiny model, same fine-tuning budget:
* large corpus ("AMASS-like"): many subjects (bone lengths) and a broad family of motions, two random
  cameras per sequence, exact projected 2D;
* small corpus ("H36M/CPN-like"): few subjects, a narrower motion family, one camera, 2D with
  detector-like noise (Gaussian jitter plus rare gross outliers); a held-out subject is the test split.
Runs (all through ``uplift.train.train``): scratch = ``--steps`` steps on the small corpus;
pretrained = ``--pretrain-steps`` on the large corpus, then the same ``--steps`` steps on the small one
starting from those weights (same optimiser settings, so only the initialisation differs).
Reports test MPJPE (mm, all frames, action-averaged) at each s_in; the paper's claim is that
pre-training helps, most at sparse input (s_in = 20).

Usage: ``python benchmarks/pretrain_gain.py [--steps 1000] [--pretrain-steps 4000] [--seed 0]``.
Last line: JSON with ``mpjpe_scratch_mm``, ``mpjpe_pretrained_mm`` (s_in = 20) and per-s_in figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from schemas.skeletons import H36M_17

J = 17
S_IN = (5, 10, 20)
MODEL = {"seq_len": 81, "s_out": 5, "strides": [3, 3], "paddings": [[0, 0], [0, 0]], "d_joint": 16,
         "d_temp": 64, "depth_joint": 2, "depth_temp": 2, "num_heads": 4}

# Rest pose (metres, z up, subject facing -y): offsets of each joint from its parent.
_REST = np.array([[0, 0, 0], [-0.13, 0, 0], [0, 0, -0.45], [0, 0, -0.44], [0.13, 0, 0], [0, 0, -0.45],
                  [0, 0, -0.44], [0, 0, 0.23], [0, 0, 0.25], [0, -0.02, 0.12], [0, 0, 0.12], [0.17, 0, 0],
                  [0, 0, -0.28], [0, 0, -0.25], [-0.17, 0, 0], [0, 0, -0.28], [0, 0, -0.25]], np.float64)


def _rot(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) axis-angle -> (..., 3, 3)."""
    th = np.linalg.norm(axis_angle, axis=-1, keepdims=True)[..., None]
    k = axis_angle / np.maximum(np.linalg.norm(axis_angle, axis=-1, keepdims=True), 1e-12)
    K = np.zeros(axis_angle.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 0] = -k[..., 2], k[..., 1], k[..., 2]
    K[..., 1, 2], K[..., 2, 0], K[..., 2, 1] = -k[..., 0], -k[..., 1], k[..., 0]
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)


def motion(rng: np.random.Generator, n: int, scale: np.ndarray, amp: float, fmax: float) -> np.ndarray:
    """(n, J, 3) world joints: forward kinematics of sinusoidal joint rotations, walking root."""
    t = np.arange(n)[:, None, None] / 50.0
    freq = rng.uniform(0.2, fmax, size=(2, J, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(2, J, 3))
    a = rng.uniform(0, amp, size=(2, J, 3))
    aa = (a[0] * np.sin(2 * np.pi * freq[0] * t + phase[0]) + 0.5 * a[1] * np.sin(2 * np.pi * freq[1] * t + phase[1]))
    aa[:, 0] *= [0.3, 0.3, 1.5]  # root: mostly turning about the vertical
    R = _rot(aa)
    rest = _REST * scale[:, None]
    glob_R = np.empty_like(R)
    pos = np.empty((n, J, 3))
    for j, p in enumerate(H36M_17.parents):
        if p < 0:
            glob_R[:, j], pos[:, j] = R[:, j], 0.0
        else:
            glob_R[:, j] = glob_R[:, p] @ R[:, j]
            pos[:, j] = pos[:, p] + np.einsum("nij,j->ni", glob_R[:, p], rest[j])
    drift = np.cumsum(rng.normal(0, 0.004, size=(n, 1, 3)) * [1, 1, 0], axis=0)
    return (pos + drift + [0, 0, 0.95]).astype(np.float32)


def camera_view(rng: np.random.Generator, world: np.ndarray, noise: float, outliers: float):
    """World joints -> camera-frame joints and normalised 2D (pinhole, f = 2.3 normalised units)."""
    yaw = rng.uniform(0, 2 * np.pi)
    dist, height = rng.uniform(4.0, 6.0), rng.uniform(1.0, 2.0)
    centre = world[:, 0].mean(0)
    eye = centre + np.array([np.cos(yaw) * dist, np.sin(yaw) * dist, height - centre[2]])
    fwd = centre - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])  # camera x right, y down, z forward
    cam = ((world - eye) @ R.T).astype(np.float32)
    kp = 2.3 * cam[..., :2] / cam[..., 2:]
    kp = kp + rng.normal(0, noise, size=kp.shape)
    bad = rng.random(kp.shape[:2]) < outliers
    kp[bad] += rng.normal(0, 0.1, size=(int(bad.sum()), 2))
    return cam, kp.astype(np.float32)


def build(path: Path, rng, n_subjects, seqs_per_subject, n_frames, views, amp, fmax, noise, outliers,
          test_subjects=()):
    from pipelines.writer import CorpusWriter
    from schemas.records import SequenceData, ViewData

    w = CorpusWriter(path, num_joints=J, fps=50.0)
    for s in range(n_subjects):
        scale = rng.uniform(0.85, 1.15, size=J)
        subj = f"S{s}"
        for q in range(seqs_per_subject):
            world = motion(rng, n_frames, scale, amp, fmax)
            vs = []
            for c in range(views):
                cam, kp = camera_view(rng, world, noise, outliers)
                vs.append(ViewData("h36m", str(c), subj, "cpn" if noise else "projected", kp, cam,
                                   np.ones((n_frames, J), bool), np.zeros(11), np.zeros((3, 4))))
            w.add(SequenceData(key=f"{subj}/{q}", source="h36m" if noise else "amass", joints_world=world,
                               views=vs, subject=subj, action=f"Act{q % 4}",
                               split="test" if subj in test_subjects else "train"))
    w.commit("synthetic", tag="v1")
    return f"{path}@v1"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000, help="steps on the small corpus (both runs)")
    ap.add_argument("--pretrain-steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()

    import torch

    from uplift.train import RunConfig, train

    torch.set_num_threads(2)
    t_start = time.perf_counter()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="pretrain_gain_"))
    rng = np.random.default_rng(a.seed)
    large = build(work / "amass_like", rng, n_subjects=40, seqs_per_subject=5, n_frames=1000, views=2,
                  amp=0.6, fmax=1.5, noise=0.0, outliers=0.0)
    small = build(work / "h36m_like", rng, n_subjects=4, seqs_per_subject=4, n_frames=600, views=1,
                  amp=0.4, fmax=1.0, noise=0.008, outliers=0.01, test_subjects=("S3",))
    print(f"corpora built in {time.perf_counter() - t_start:.0f} s", flush=True)

    def cfg(steps, eval_every=1):
        epochs = 4
        return RunConfig(preset="tiny", model=MODEL, finetune=False, seed=a.seed, eval_every=eval_every,
                         eval_s_in=list(S_IN), steps_per_epoch=max(steps // epochs, 1), block_frames=1024,
                         buffer_blocks=4,
                         train={"s_in": list(S_IN), "batch_size": a.batch, "epochs": epochs, "lr": a.lr,
                                "weight_decay": a.lr * 0.01, "decay_rate": 0.9, "ema_decay": None})

    def test_mpjpe(res):
        return {r["s_in"]: r["mpjpe_mm"] for r in res.eval_table if r["action"] == "*" and r["frames"] == "all"}

    t = time.perf_counter()
    scratch = test_mpjpe(train(cfg(a.steps, eval_every=4), work / "scratch", small))
    print(f"scratch ({a.steps} steps, {time.perf_counter() - t:.0f} s): {scratch}", flush=True)
    t = time.perf_counter()
    pre = train(cfg(a.pretrain_steps, eval_every=0), work / "pretrain", large)
    print(f"pre-training ({a.pretrain_steps} steps): {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    ft = test_mpjpe(train(cfg(a.steps, eval_every=4), work / "finetune", small, init=pre.checkpoint))
    print(f"pre-trained + fine-tuned ({a.steps} steps, {time.perf_counter() - t:.0f} s): {ft}", flush=True)
    res = {"mpjpe_scratch_mm": round(scratch[20], 2), "mpjpe_pretrained_mm": round(ft[20], 2),
           "per_s_in": {str(s): {"scratch_mm": round(scratch[s], 2), "pretrained_mm": round(ft[s], 2)} for s in S_IN},
           "steps": a.steps, "pretrain_steps": a.pretrain_steps, "seconds": round(time.perf_counter() - t_start, 1)}
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
