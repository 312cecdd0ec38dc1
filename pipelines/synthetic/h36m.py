"""Synthetic stand-ins for the VideoPose3D Human3.6M files (same keys, same pickled nesting).

Motion: a procedural 32-joint H36M-layout skeleton (bone lengths close to the real subjects', scaled
per subject) walking on a circle around the world origin, sitting, or standing and gesturing; z-up,
metres, 50 Hz. 2D: the 17 kept joints projected through the real H36M cameras of the subject
(distortion on). The CPN-like file adds a few pixels of jitter, occasional left/right swaps and
outliers. Some 2D sequences are a few frames longer than the 3D one, as in the real data.

Quirks of the real files that the importer must survive are reproduced on request: subjects with 2D
but no 3D (the CPN file's S2-S4) and ``None`` for a camera of one S11 action.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from pipelines.h36m import VP3D_METADATA, reduce_32_to_17, save_vp3d_npz, vp3d_filenames
from schemas.cameras import H36M_SUBJECTS, h36m_camera, project, world_to_camera
from schemas.skeletons import H36M_17

FPS = 50.0
DEFAULT_ACTIONS = ("Directions 1", "Walking", "Walking 1", "Sitting 1", "Photo")  # real subjects have both Walking and "Walking 1"
# 32-joint indices of the H36M layout (VideoPose3D's h36m skeleton).
HIP, R_HIP, R_KNEE, R_ANKLE, R_TOE, R_TOE_END = 0, 1, 2, 3, 4, 5
L_HIP, L_KNEE, L_ANKLE, L_TOE, L_TOE_END = 6, 7, 8, 9, 10
SPINE, SPINE1, NECK, HEAD, HEAD_END = 11, 12, 13, 14, 15
L_COLLAR, L_SHOULDER, L_ELBOW, L_WRIST, L_THUMB, L_THUMB_END, L_HAND, L_HAND_END = range(16, 24)
R_COLLAR, R_SHOULDER, R_ELBOW, R_WRIST, R_THUMB, R_THUMB_END, R_HAND, R_HAND_END = range(24, 32)

# Bone lengths in metres, close to the H36M subjects' averages.
BONES = {"hip": 0.13, "thigh": 0.45, "shin": 0.44, "foot": 0.15, "spine": 0.23, "thorax": 0.25,
         "neck": 0.11, "head": 0.115, "shoulder": 0.15, "upper_arm": 0.28, "forearm": 0.25}


def _motion_kind(action: str) -> str:
    a = action.lower()
    if "walk" in a:
        return "walk"
    if "sit" in a:
        return "sit"
    return "stand"


def _rng(seed: int, *names: str) -> np.random.Generator:
    """An independent stream per (seed, names): reproducible whatever else is generated."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def skeleton_motion(n_frames: int, kind: str, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """(n_frames, 32, 3) float32 world positions (z-up, metres) of a procedural H36M-layout body.

    ``kind``: "walk" (a circle of ~0.9 m radius around the origin), "sit" (pelvis at chair height,
    arms gesturing) or "stand" (swaying, turning, gesturing near the origin).
    """
    t = np.arange(n_frames) / FPS
    b = {k: v * scale for k, v in BONES.items()}
    phase0, rate = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 1.1)  # gait cycles per second
    if kind == "walk":
        radius = rng.uniform(0.7, 1.1)
        ang = phase0 + 1.3 * t / radius * rng.choice([-1.0, 1.0])  # ~1.3 m/s along the circle
        root = np.stack([radius * np.cos(ang), radius * np.sin(ang), np.full_like(t, 0.92 * scale)], -1)
        vel = np.gradient(root, axis=0)
        yaw = np.arctan2(vel[:, 1], vel[:, 0])
        gait = 2 * np.pi * rate * t
        hip_r, hip_l = 0.45 * np.sin(gait), 0.45 * np.sin(gait + np.pi)
        knee_r = 0.6 * np.clip(np.sin(gait - 1.2), 0, None) + 0.05
        knee_l = 0.6 * np.clip(np.sin(gait + np.pi - 1.2), 0, None) + 0.05
        arm_r, arm_l = -0.35 * np.sin(gait), 0.35 * np.sin(gait)
        elbow_r = elbow_l = np.full_like(t, 0.3)
    else:
        centre = rng.uniform(-0.4, 0.4, size=2)
        yaw = rng.uniform(-np.pi, np.pi) + 0.6 * np.sin(2 * np.pi * 0.1 * t + phase0)
        sway = 0.03 * np.sin(2 * np.pi * 0.3 * t)[:, None] * np.array([1.0, 0.5])
        if kind == "sit":
            height, hip, knee = 0.48 * scale, np.pi / 2, np.pi / 2
        else:
            height, hip, knee = 0.92 * scale, 0.05, 0.05
        root = np.concatenate([centre + sway, np.full((n_frames, 1), height)], -1)
        hip_r = hip + 0.05 * np.sin(2 * np.pi * 0.2 * t)
        hip_l = hip + 0.05 * np.sin(2 * np.pi * 0.2 * t + 1.0)
        knee_r = knee_l = np.full_like(t, knee)
        g = 2 * np.pi * rate * 0.4 * t  # slow gestures
        arm_r = 0.8 + 0.7 * np.sin(g + phase0)
        arm_l = 0.3 + 0.4 * np.sin(0.7 * g)
        elbow_r = 0.9 + 0.5 * np.sin(1.3 * g)
        elbow_l = 0.5 + 0.3 * np.sin(g + 1.0)

    fwd = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], -1)  # (T, 3)
    left = np.stack([-np.sin(yaw), np.cos(yaw), np.zeros_like(yaw)], -1)
    up = np.broadcast_to(np.array([0.0, 0.0, 1.0]), fwd.shape)

    def swing(angle):  # unit vector hanging down, swung forward by ``angle`` (radians)
        a = np.asarray(angle)[:, None]
        return np.sin(a) * fwd - np.cos(a) * up

    X = np.zeros((n_frames, 32, 3))
    X[:, HIP] = root
    for side, s, h, k, j in (("r", -1.0, hip_r, knee_r, (R_HIP, R_KNEE, R_ANKLE, R_TOE, R_TOE_END)),
                             ("l", 1.0, hip_l, knee_l, (L_HIP, L_KNEE, L_ANKLE, L_TOE, L_TOE_END))):
        X[:, j[0]] = root + s * b["hip"] * left
        X[:, j[1]] = X[:, j[0]] + b["thigh"] * swing(h)
        X[:, j[2]] = X[:, j[1]] + b["shin"] * swing(h - k)
        X[:, j[3]] = X[:, j[2]] + b["foot"] * (0.9 * fwd - 0.44 * up)
        X[:, j[4]] = X[:, j[3]] + 0.05 * scale * fwd
    X[:, SPINE] = root + 0.5 * b["spine"] * up
    X[:, SPINE1] = root + b["spine"] * up
    X[:, NECK] = X[:, SPINE1] + b["thorax"] * up
    X[:, HEAD] = X[:, NECK] + b["neck"] * up + 0.06 * scale * fwd  # "neck/nose" sits forward
    X[:, HEAD_END] = X[:, HEAD] + b["head"] * up
    for s, a, e, j in ((1.0, arm_l, elbow_l, (L_COLLAR, L_SHOULDER, L_ELBOW, L_WRIST, L_THUMB, L_THUMB_END, L_HAND, L_HAND_END)),
                       (-1.0, arm_r, elbow_r, (R_COLLAR, R_SHOULDER, R_ELBOW, R_WRIST, R_THUMB, R_THUMB_END, R_HAND, R_HAND_END))):
        X[:, j[0]] = X[:, NECK]  # the collar joints coincide with the neck in the real data
        X[:, j[1]] = X[:, NECK] + s * b["shoulder"] * left - 0.02 * scale * up
        X[:, j[2]] = X[:, j[1]] + b["upper_arm"] * swing(a)
        X[:, j[3]] = X[:, j[2]] + b["forearm"] * swing(a + e)
        X[:, j[4]] = X[:, j[3]] + 0.04 * scale * (fwd + s * left) / np.sqrt(2)
        X[:, j[5]] = X[:, j[4]] + 0.02 * scale * fwd
        X[:, j[6]] = X[:, j[3]] + 0.08 * scale * swing(a + e)
        X[:, j[7]] = X[:, j[6]] + 0.02 * scale * swing(a + e)
    return X.astype(np.float32)


def project_17(joints_world_17: np.ndarray, subject: str, cam_index: int) -> np.ndarray:
    """(T, 17, 3) world metres -> (T, 17, 2) float32 pixels through the real H36M camera (distortion on)."""
    cam = h36m_camera(subject, cam_index)
    return project(world_to_camera(joints_world_17, cam), cam, distort=True).astype(np.float32)


def cpn_like(gt_px: np.ndarray, rng: np.random.Generator, jitter_px: float = 3.0, swap_prob: float = 0.02,
             outlier_prob: float = 0.005, outlier_px: tuple[float, float] = (20.0, 80.0)) -> np.ndarray:
    """(T, 17, 2) pixels with CPN-like errors: Gaussian jitter, whole-frame left/right swaps, outliers."""
    px = gt_px.astype(np.float64) + rng.normal(0.0, jitter_px, size=gt_px.shape)
    swap = rng.random(len(px)) < swap_prob
    px[swap] = px[swap][:, H36M_17.flip_permutation]
    out = rng.random(px.shape[:2]) < outlier_prob
    n = int(out.sum())
    ang, mag = rng.uniform(0, 2 * np.pi, n), rng.uniform(*outlier_px, n)
    px[out] += np.stack([mag * np.cos(ang), mag * np.sin(ang)], -1)
    return px.astype(np.float32)


def write_h36m_files(out_dir: str | os.PathLike, seed: int = 0, subjects: Iterable[str] = H36M_SUBJECTS,
                     actions: Iterable[str] = DEFAULT_ACTIONS, frames: int = 200,
                     extra_2d_frames: tuple[int, ...] = (0, 0, 2, 5),
                     subjects_2d_only: Iterable[str] = ("S2",),
                     missing_cameras: Mapping[tuple[str, str], Iterable[int]] | None = None) -> dict[str, Path]:
    """Write ``data_3d_h36m.npz``, ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` and ``data_2d_h36m_gt.npz``.

    Each (subject, action) gets ``frames`` 3D frames (+/- 10 %, drawn) and 2D sequences longer by one
    of ``extra_2d_frames`` (drawn per sequence, the same for every camera and both 2D files).
    ``subjects_2d_only`` get 2D but no 3D (projected through S1's cameras). ``missing_cameras``
    maps (subject, action) -> camera indices stored as ``None`` in both 2D files; by default camera 1
    of S11's first action. Returns {"3d", "cpn", "gt"} -> paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    subjects, actions = list(subjects), list(actions)
    if missing_cameras is None:
        missing_cameras = {("S11", actions[0]): (1,)} if "S11" in subjects and actions else {}
    pos3d: dict[str, dict[str, np.ndarray]] = {}
    cpn: dict[str, dict[str, list]] = {}
    gt: dict[str, dict[str, list]] = {}
    for subject in sorted(set(subjects) | set(subjects_2d_only)):
        only_2d = subject not in subjects
        cam_subject = "S1" if subject not in H36M_SUBJECTS else subject
        scale = _rng(seed, "scale", subject).uniform(0.94, 1.06)
        if not only_2d:
            pos3d[subject] = {}
        cpn[subject], gt[subject] = {}, {}
        for action in actions:
            rng = _rng(seed, subject, action)
            n = max(2, int(round(frames * rng.uniform(0.9, 1.1))))
            extra = int(rng.choice(extra_2d_frames)) if len(extra_2d_frames) else 0
            X32 = skeleton_motion(n + extra, _motion_kind(action), rng, scale)
            if not only_2d:
                pos3d[subject][action] = X32[:n].copy()
            X17 = reduce_32_to_17(X32)
            missing = set(missing_cameras.get((subject, action), ()))
            gt_list, cpn_list = [], []
            for c in range(4):
                if c in missing:
                    gt_list.append(None)
                    cpn_list.append(None)
                    continue
                px = project_17(X17, cam_subject, c)
                gt_list.append(px)
                cpn_list.append(cpn_like(px, _rng(seed, "cpn", subject, action, str(c))))
            gt[subject][action], cpn[subject][action] = gt_list, cpn_list

    n3, n_cpn = vp3d_filenames("h36m", "cpn")
    n_gt = vp3d_filenames("h36m", "gt")[1]
    paths = {"3d": out / n3, "cpn": out / n_cpn, "gt": out / n_gt}
    save_vp3d_npz(paths["3d"], positions_3d=pos3d)
    save_vp3d_npz(paths["cpn"], positions_2d=cpn, metadata=dict(VP3D_METADATA))
    save_vp3d_npz(paths["gt"], positions_2d=gt, metadata=dict(VP3D_METADATA))
    return paths
