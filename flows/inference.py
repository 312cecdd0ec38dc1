"""Files in, file out: 2D keypoints of a video (a VideoPose3D 2D ``.npz`` or a ``.npy`` in pixels) ->
root-relative 3D poses (``.npy``) and, on request, a picture.

Plain functions (no Prefect) that ``mocap-corpus infer`` and the ``infer`` flow both call. The model
side (sliding windows over normalised 2D) is ``uplift.infer``; this module reads the input files,
converts pixels to the corpus's normalised coordinates and draws with ``pipelines.render``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from schemas.cameras import normalize_pixels
from schemas.errors import InputError

NUM_JOINTS = 17
MAX_PIXELS_FACTOR = 100  # keypoints further than this many image sizes from the image are not detections


def _camera_index(path, camera: str | int | None, n_cams: int) -> int:
    """``camera``: an index 0..3 or an H36M camera id (``"54138969"``) -> index; InputError otherwise."""
    from schemas.cameras import H36M_CAMERA_IDS

    if camera is None:
        raise InputError(path, f"a VideoPose3D 2D file needs --camera (index 0..{n_cams - 1} or an H36M camera id)")
    c = str(camera)
    if c in H36M_CAMERA_IDS:
        return H36M_CAMERA_IDS.index(c)
    if c.isdigit() and int(c) < n_cams:
        return int(c)
    raise InputError(path, f"no camera {camera!r}: use an index 0..{n_cams - 1} or one of {list(H36M_CAMERA_IDS)}")


def _read_npz(p: Path, subject, action, camera, width, height) -> tuple[np.ndarray, float | None, float | None]:
    """``positions_2d[subject][action][camera]`` of a VideoPose3D 2D file (restricted unpickler); the image
    size defaults to that H36M camera's."""
    from pipelines.h36m import read_positions_2d
    from schemas.cameras import h36m_camera

    pos2d, _, _ = read_positions_2d(p, kind="infer_input")
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
    return px, width, height


def read_keypoints(path, *, subject: str | None = None, action: str | None = None, camera=None,
                   width: float | None = None, height: float | None = None) -> tuple[np.ndarray, float, float]:
    """2D keypoints in pixels ``(T, 17, 2)`` float64 and the image size ``(width, height)``.

    ``path``: a VideoPose3D-format 2D ``.npz`` (``positions_2d[subject][action][camera]``, read through
    the restricted unpickler; the image size defaults to that H36M camera's) or a plain ``(T, 17, 2)``
    (or ``(T, 17, 3)`` with a confidence column) ``.npy`` in pixels, which needs ``width``/``height``.
    Every problem is an ``InputError`` naming the file and saying what is wrong, in one line.
    """
    from pipelines.safe_pickle import safe_load_npy
    from schemas.files import check_regular

    p = Path(path)
    check_regular(p)  # a FIFO or a device is refused without being opened; "file not found" when missing
    if p.suffix == ".npz":
        px, width, height = _read_npz(p, subject, action, camera, width, height)
    elif p.suffix == ".npy":
        # the bounded reader: a regular file within the infer-input byte limit, sizes checked from the header
        px = safe_load_npy(p, kind="infer_input")
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
    check_pixels(p, px, width, height)
    return px, float(width), float(height)


def check_pixels(path, px: np.ndarray, width, height) -> None:
    """InputError naming ``path`` unless the image size lies in ``schemas.bounds.IMAGE_SIDE_PX`` and every
    keypoint ``px (T, J, 2)`` is finite and within a few image sizes of the image (``MAX_PIXELS_FACTOR``)."""
    from schemas.bounds import IMAGE_SIDE_PX, beyond, out_of_range, range_text

    if out_of_range(width, *IMAGE_SIDE_PX) or out_of_range(height, *IMAGE_SIDE_PX):
        raise InputError(path, f"image size {width} x {height} is outside {range_text(*IMAGE_SIDE_PX, 'pixels')} a side")
    bad = beyond(px, MAX_PIXELS_FACTOR * max(float(width), float(height)))
    if bad:
        limit = "" if "non-finite" in bad else f" pixels ({MAX_PIXELS_FACTOR} times the larger image side)"
        raise InputError(path, f"keypoints hold {bad}{limit}")


def infer_keypoints(checkpoint, pixels: np.ndarray, width: float, height: float, *, s_in: int | None = None,
                    use_ema: bool = True, device=None, batch_size: int = 128) -> np.ndarray:
    """Root-relative 3D poses ``(T, 17, 3)`` float32 in metres (camera axes) from pixels ``(T, 17, 2)``.

    ``checkpoint``: a path (checkpoint or run dir) or a loaded ``uplift.checkpoint.Checkpoint``. 2D is
    normalised like the corpus (``schemas.cameras.normalize_pixels``), then ``uplift.infer.infer_normalised``.
    """
    from uplift.infer import infer_normalised
    from uplift.checkpoint import Checkpoint, load_checkpoint
    from uplift.distributed import pick_device

    check_pixels("<keypoints>", np.asarray(pixels, dtype=np.float64), width, height)
    ck = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, device=pick_device(device))
    uv = normalize_pixels(pixels, width, height).astype(np.float32)
    return infer_normalised(ck, uv, s_in=s_in, use_ema=use_ema, batch_size=batch_size)


DEFAULT_FPS = 50.0  # Human3.6M's videos, and the corpora's default rate


def infer_to_file(checkpoint, input_path, out_path, *, s_in: int | None = None, subject=None, action=None,
                  camera=None, width=None, height=None, render: str | os.PathLike | None = None,
                  fps: float | None = None, device=None, progress=None) -> dict:
    """Read 2D (``read_keypoints``), uplift (``infer_keypoints``), write ``out_path`` (.npy, (T, 17, 3)
    float32 root-relative metres, camera axes) and, on request, a picture (``render``: .png/.gif/.mp4)
    that plays in real time at ``fps``, the input's frame rate (default 50, Human3.6M's).

    Checks everything it can before loading the model (one-line ``InputError`` / ``ConfigError``).
    ``progress``: ``callback(frames_drawn, frames)`` while an animation is drawn.
    Returns ``{"out", "frames", "s_in", "render", "fps"}``.
    """
    from pipelines import render as R
    from uplift.infer import resolve_s_in
    from uplift.checkpoint import load_checkpoint
    from uplift.distributed import pick_device

    out_path = Path(out_path)
    if out_path.suffix != ".npy":
        raise InputError(out_path, "the output must be a .npy file")
    if render is not None and Path(render).suffix.lower() not in R.FORMATS:
        raise InputError(render, f"cannot render to {Path(render).suffix or '(no suffix)'}: use one of {', '.join(R.FORMATS)}")
    fps = DEFAULT_FPS if fps is None else float(fps)
    R.playback(fps)  # a bad --fps fails before the model loads
    px, w, h = read_keypoints(input_path, subject=subject, action=action, camera=camera, width=width, height=height)
    ck = load_checkpoint(checkpoint, device=pick_device(device))
    s = resolve_s_in(ck.config, s_in)
    poses = infer_keypoints(ck, px, w, h, s_in=s)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(out_path, poses)
    if render is not None:
        title = " ".join(str(x) for x in (Path(input_path).name, subject, action,
                                          None if camera is None else f"camera {camera}") if x)
        clip = R.Clip(keypoints_px=px, in_view=None, res=(w, h), joints=R.camera_to_display(poses),
                      frames=np.arange(len(poses)), title=f"{title}: predicted 3D (s_in {s}, {fps:g} Hz)")
        R.write(clip, render, source_fps=fps, progress=progress)
    return {"out": str(out_path), "frames": int(len(poses)), "s_in": s, "render": str(render) if render else None,
            "fps": fps}
