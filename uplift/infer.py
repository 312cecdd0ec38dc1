"""Whole-video inference with a sliding window.

A video has ``T`` frames; 2D input exists only at key frames ``t mod s_in == 0``. A window is centred
on every ``s_out``-th frame ``c = 0, s_out, 2 s_out, ...`` (up to the first ``c >= T - 1``); its tokens
are frames ``c + (i - n_out // 2) * s_out`` and its key-frame mask is aligned to the global frame
indices (``uplift.keyframes``, the rule training and evaluation use). Tokens outside the video are
edge-padded: frames before 0 repeat frame 0's 2D, frames after the last key frame repeat the last key
frame's 2D (so padding never invents a key frame's 2D). The centre output of each window gives the
pose at ``c``; linear interpolation between consecutive centres gives every frame.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from schemas.bounds import MAX_POSITION_M, beyond
from schemas.errors import CheckpointError, InputError
from uplift.augment import H36M_FLIP_PERM, flip_2d, flip_3d
from uplift.config import check_s_in
from uplift.keyframes import keyframe_mask, window_frames


def window_centers(num_frames: int, s_out: int) -> np.ndarray:
    """``(C,)`` centre frames ``0, s_out, ...``; the last is the first multiple of s_out >= T - 1."""
    last = -(-(num_frames - 1) // s_out) * s_out
    return np.arange(0, last + 1, s_out)


def video_windows(poses_2d: np.ndarray, s_in: int, s_out: int, n_out: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a video into windows.

    poses_2d: (T, J, 2), only frames with ``t % s_in == 0`` are read.
    Returns windows (C, n_out, J, 2) float32, keyframes (C, n_out) bool, frame indices (C, n_out) int
    (global, may lie outside [0, T)).
    """
    t = poses_2d.shape[0]
    if t < 1:
        raise ValueError("empty video")
    centers = window_centers(t, s_out)
    frames = window_frames(n_out, s_out, centers)  # (C, n_out)
    keyframes = keyframe_mask(n_out, s_out, s_in, centre=centers)
    last_key = ((t - 1) // s_in) * s_in
    # Where a key frame lies outside the video, use the nearest real key frame (edge padding).
    source = np.clip(frames, 0, last_key)
    windows = np.zeros(frames.shape + poses_2d.shape[1:], dtype=np.float32)
    windows[keyframes] = poses_2d[source[keyframes]]
    return windows, keyframes, frames


@torch.no_grad()
def predict_centers(model: nn.Module, windows, keyframes, *, batch_size: int = 128, test_flip: bool = False,
                    flip_perm=H36M_FLIP_PERM, principal_point=None, device=None) -> np.ndarray:
    """Centre 3D pose of every window: ``(C, J, 3)`` float32.

    windows: (C, n_out, J, 2); keyframes: (C, n_out). ``test_flip`` averages with the prediction for the
    mirrored input (mirrored back); ``principal_point`` (2,) selects the camera-kept flip ``x -> 2 c_x - x``.
    """
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    out = []
    try:
        for i in range(0, len(windows), batch_size):
            x = torch.as_tensor(windows[i : i + batch_size], dtype=torch.float32, device=device)
            kf = torch.as_tensor(keyframes[i : i + batch_size], dtype=torch.bool, device=device)
            center = model(x, kf).center
            if test_flip:
                flipped = model(flip_2d(x, flip_perm, principal_point), kf).center
                center = 0.5 * (center + flip_3d(flipped, flip_perm))
            out.append(center.float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out, axis=0)


def upsample_centers(center_poses: np.ndarray, s_out: int, num_frames: int) -> np.ndarray:
    """Linear interpolation in time of poses at frames ``0, s_out, 2 s_out, ...`` to ``(T, J, 3)``.

    center_poses: (C, J, 3) with ``(C - 1) * s_out >= T - 1``.
    """
    c = center_poses.shape[0]
    if (c - 1) * s_out < num_frames - 1:
        raise ValueError(f"{c} centres at stride {s_out} do not reach frame {num_frames - 1}")
    t = np.arange(num_frames)
    k0 = np.minimum(t // s_out, c - 1)
    k1 = np.minimum(k0 + 1, c - 1)
    w = ((t - k0 * s_out) / s_out)[:, None, None]
    return ((1.0 - w) * center_poses[k0] + w * center_poses[k1]).astype(np.float32)


def infer_video(model: nn.Module, poses_2d: np.ndarray, s_in: int, *, batch_size: int = 128,
                test_flip: bool = True, flip_perm=H36M_FLIP_PERM, principal_point=None,
                device=None) -> np.ndarray:
    """3D poses ``(T, J, 3)`` (root-relative as trained, metres) for a video ``poses_2d (T, J, 2)``
    whose 2D is only read at frames ``t % s_in == 0``. ``s_in`` must be a multiple of the model's s_out
    (``keyframe_mask`` refuses others)."""
    cfg = model.cfg
    windows, keyframes, _ = video_windows(np.asarray(poses_2d), s_in, cfg.s_out, cfg.n_out)
    centers = predict_centers(model, windows, keyframes, batch_size=batch_size, test_flip=test_flip,
                              flip_perm=flip_perm, principal_point=principal_point, device=device)
    return upsample_centers(centers, cfg.s_out, poses_2d.shape[0])


# ----------------------------------------------------------------------------------------------------
# A trained checkpoint on one video (``flows.inference`` reads the 2D files and converts pixels)
# ----------------------------------------------------------------------------------------------------


def default_s_in(cfg) -> int:
    """The checkpoint's largest training input stride (the sparsest 2D it learned to uplift)."""
    return int(max(cfg.train.s_in))


def resolve_s_in(cfg, s_in: int | None) -> int:
    """``s_in`` or the checkpoint's default; a ``ConfigError`` unless it is a positive multiple of s_out."""
    s_in = default_s_in(cfg) if s_in is None else int(s_in)
    return check_s_in(s_in, cfg.model.s_out, f" (the model was trained with {list(cfg.train.s_in)})")


def infer_normalised(ck, uv: np.ndarray, *, s_in: int | None = None, use_ema: bool = True,
                     batch_size: int = 128) -> np.ndarray:
    """Root-relative 3D poses ``(T, J, 3)`` float32 in metres (camera axes) with a loaded checkpoint.

    ``ck``: an ``uplift.checkpoint.Checkpoint``; ``uv``: ``(T, J, 2)`` 2D normalised like the corpus
    (``schemas`` pixel convention), read at frames ``t % s_in == 0`` (``s_in``: see ``resolve_s_in``).
    """
    model = ck.weights_for_eval(use_ema)
    cfg = ck.config
    uv = np.asarray(uv, np.float32)
    if not np.isfinite(uv).all():  # NaN in, NaN out: refused before the model runs
        raise InputError("<keypoints>", f"{int((~np.isfinite(uv)).sum())} 2D values are NaN or inf (after the cast "
                                        f"to float32)")
    pred = infer_video(model, uv, resolve_s_in(cfg, s_in), batch_size=batch_size, test_flip=cfg.train.test_flip)
    root = cfg.train.root_joint
    out = (pred - pred[:, root:root + 1]).astype(np.float32)
    bad = beyond(out, MAX_POSITION_M)  # after the last cast: what is returned is what is checked
    if bad:
        raise CheckpointError(ck.path, f"the prediction holds {bad} m; the checkpoint's weights cannot be used")
    return out
