"""Whole-video inference with a sliding window.

A video has ``T`` frames; 2D input exists only at key frames ``t mod s_in == 0``. A window is centred
on every ``s_out``-th frame ``c = 0, s_out, 2 s_out, ...`` (up to the first ``c >= T - 1``); its tokens
are frames ``c + (i - n_out // 2) * s_out`` and its key-frame mask is aligned to the global frame
indices. Tokens outside the video are edge-padded: frames before 0 repeat frame 0's 2D, frames after the
last key frame repeat the last key frame's 2D (so padding never invents a key frame's 2D). The centre
output of each window gives the pose at ``c``; linear interpolation between consecutive centres
gives every frame.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from uplift.augment import H36M_FLIP_PERM, flip_2d, flip_3d


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
    frames = centers[:, None] + (np.arange(n_out) - n_out // 2)[None, :] * s_out  # (C, n_out)
    keyframes = frames % s_in == 0
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
    whose 2D is only read at frames ``t % s_in == 0``. ``s_in`` must be a multiple of the model's s_out."""
    cfg = model.cfg
    if s_in % cfg.out_stride:
        raise ValueError(f"s_in {s_in} is not a multiple of s_out {cfg.out_stride}")
    windows, keyframes, _ = video_windows(np.asarray(poses_2d), s_in, cfg.out_stride, cfg.n_out)
    centers = predict_centers(model, windows, keyframes, batch_size=batch_size, test_flip=test_flip,
                              flip_perm=flip_perm, principal_point=principal_point, device=device)
    return upsample_centers(centers, cfg.out_stride, poses_2d.shape[0])


# ----------------------------------------------------------------------------------------------------
# Files in, file out: what ``mocap-corpus infer`` and the ``infer`` flow call
# ----------------------------------------------------------------------------------------------------

NUM_JOINTS = 17


def _camera_index(path, camera: str | int | None, n_cams: int) -> int:
    """``camera``: an index 0..3 or an H36M camera id (``"54138969"``) -> index; InputError otherwise."""
    from schemas.cameras import H36M_CAMERA_IDS
    from schemas.errors import InputError

    if camera is None:
        raise InputError(path, f"a VideoPose3D 2D file needs --camera (index 0..{n_cams - 1} or an H36M camera id)")
    c = str(camera)
    if c in H36M_CAMERA_IDS:
        return H36M_CAMERA_IDS.index(c)
    if c.isdigit() and int(c) < n_cams:
        return int(c)
    raise InputError(path, f"no camera {camera!r}: use an index 0..{n_cams - 1} or one of {list(H36M_CAMERA_IDS)}")


def read_keypoints(path, *, subject: str | None = None, action: str | None = None, camera=None,
                   width: float | None = None, height: float | None = None) -> tuple[np.ndarray, float, float]:
    """2D keypoints in pixels ``(T, 17, 2)`` float64 and the image size ``(width, height)``.

    ``path``: a VideoPose3D-format 2D ``.npz`` (``positions_2d[subject][action][camera]``, read through
    the restricted unpickler; the image size defaults to that H36M camera's) or a plain ``(T, 17, 2)``
    (or ``(T, 17, 3)`` with a confidence column) ``.npy`` in pixels, which needs ``width``/``height``.
    Every problem is an ``InputError`` naming the file and saying what is wrong, in one line.
    """
    from pathlib import Path

    from schemas.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found")
    if p.suffix == ".npz":
        from pipelines.h36m import load_positions_2d
        from schemas.cameras import h36m_camera

        pos2d, _ = load_positions_2d(p)
        if subject not in pos2d:
            raise InputError(p, f"no subject {subject!r} (use --subject; the file has {sorted(pos2d)})")
        if action not in pos2d[subject]:
            raise InputError(p, f"no action {action!r} for {subject} (use --action; the file has {sorted(pos2d[subject])})")
        cams = pos2d[subject][action]
        c = _camera_index(p, camera, len(cams))
        px = cams[c] if c < len(cams) else None
        if px is None:
            raise InputError(p, f"{subject}/{action} has no 2D keypoints for camera {camera}")
        if width is None or height is None:
            try:
                cam = h36m_camera(subject, c)
                width, height = width or cam.res_w, height or cam.res_h
            except (KeyError, IndexError) as exc:
                raise InputError(p, f"no image size for {subject} camera {c} ({exc}); pass --width/--height") from None
    elif p.suffix == ".npy":
        try:
            px = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(p, f"not a readable numeric .npy ({' '.join(str(exc).split())})") from None
        if width is None or height is None:
            raise InputError(p, "a plain .npy of pixels needs --width and --height (the image size)")
    else:
        raise InputError(p, f"unsupported input {p.suffix or '(no suffix)'}: expected a VideoPose3D 2D .npz or a (T, 17, 2) .npy")
    px = np.asarray(px)
    if px.dtype.kind not in "fiu":
        raise InputError(p, f"keypoints have dtype {px.dtype}, expected numbers (pixels)")
    if px.ndim != 3 or px.shape[1] != NUM_JOINTS or px.shape[2] not in (2, 3):
        raise InputError(p, f"keypoints have shape {px.shape}, expected (T, 17, 2) in the H36M 17-joint order")
    if px.shape[0] == 0:
        raise InputError(p, "keypoints have no frames")
    px = px[..., :2].astype(np.float64)
    if not np.isfinite(px).all():
        raise InputError(p, "keypoints contain NaN or infinite values")
    if not (width > 0 and height > 0):
        raise InputError(p, f"image size {width} x {height} must be positive")
    return px, float(width), float(height)


def default_s_in(cfg) -> int:
    """The checkpoint's largest training input stride (the sparsest 2D it learned to uplift)."""
    return int(max(cfg.train.in_strides))


def infer_keypoints(checkpoint, pixels: np.ndarray, width: float, height: float, *, s_in: int | None = None,
                    use_ema: bool = True, device=None, batch_size: int = 128) -> np.ndarray:
    """Root-relative 3D poses ``(T, 17, 3)`` float32 in metres (camera axes) from pixels ``(T, 17, 2)``.

    ``checkpoint``: a path (checkpoint or run dir) or a loaded ``uplift.train.Checkpoint``.

    2D is normalised like the corpus (``pipelines.cameras.normalize_pixels``) and read at frames
    ``t % s_in == 0``; ``s_in`` defaults to ``default_s_in`` and must be a multiple of the model's s_out.
    """
    from pipelines.cameras import normalize_pixels
    from schemas.errors import ConfigError
    from uplift.train import load_checkpoint, pick_device

    ck = checkpoint if hasattr(checkpoint, "config") else load_checkpoint(checkpoint, device=pick_device(device))
    model = ck.ema_model if (use_ema and ck.ema_model is not None) else ck.model
    cfg = ck.config
    s_in = default_s_in(cfg) if s_in is None else int(s_in)
    if s_in < 1 or s_in % cfg.model.out_stride:
        raise ConfigError(f"--s-in {s_in} must be a positive multiple of the model's output stride "
                          f"{cfg.model.out_stride} (trained with {list(cfg.train.in_strides)})")
    uv = normalize_pixels(pixels, width, height).astype(np.float32)
    pred = infer_video(model, uv, s_in, batch_size=batch_size, test_flip=cfg.train.test_flip)
    root = cfg.train.root_joint
    return (pred - pred[:, root:root + 1]).astype(np.float32)


def infer_to_file(checkpoint, input_path, out_path, *, s_in: int | None = None, subject=None, action=None,
                  camera=None, width=None, height=None, render=None, device=None) -> dict:
    """Read 2D (``read_keypoints``), uplift (``infer_keypoints``), write ``out_path`` (.npy, (T, 17, 3)
    float32 root-relative metres, camera axes) and, on request, a picture (``render``: .png/.gif/.mp4).

    Checks everything it can before loading the model (one-line ``InputError`` / ``ConfigError``).
    Returns ``{"out", "frames", "s_in", "render"}``.
    """
    from pathlib import Path

    from schemas.errors import InputError
    from uplift.train import load_checkpoint

    out_path = Path(out_path)
    if out_path.suffix != ".npy":
        raise InputError(out_path, "the output must be a .npy file")
    if render is not None:
        from pipelines.render import FORMATS

        if Path(render).suffix.lower() not in FORMATS:
            raise InputError(render, f"cannot render to {Path(render).suffix or '(no suffix)'}: use one of {', '.join(FORMATS)}")
    px, w, h = read_keypoints(input_path, subject=subject, action=action, camera=camera, width=width, height=height)
    from uplift.train import pick_device

    ck = load_checkpoint(checkpoint, device=pick_device(device))
    s = default_s_in(ck.config) if s_in is None else int(s_in)
    poses = infer_keypoints(ck, px, w, h, s_in=s)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(out_path, poses)
    if render is not None:
        from pipelines import render as R

        clip = R.Clip(keypoints_px=px, in_view=None, res=(w, h), joints=R.camera_to_display(poses),
                      frames=np.arange(len(poses)),
                      title=" ".join(str(x) for x in (Path(input_path).name, subject, action,
                                                     None if camera is None else f"camera {camera}") if x)
                      + f": predicted 3D (s_in {s})")
        R.write(clip, render)
    return {"out": str(out_path), "frames": int(len(poses)), "s_in": s, "render": str(render) if render else None}
