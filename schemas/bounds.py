"""Documented ranges of the numbers a file or a user hands the project, checked before work starts.

A value outside its range is refused with the range in the message: a frame rate of 1e-6 Hz would
ask the resampler for tens of GB, a translation of 3.4e38 m is no body's, and values that overflow
float32 when stored become inf/NaN. The ranges are far wider than any real recording; they exist to
stop nonsense, not to judge data.
"""

from __future__ import annotations

import math

import numpy as np

SOURCE_FPS = (1.0, 1000.0)  # Hz, a motion file's capture rate (AMASS: 60-250 Hz)
TARGET_FPS = (1.0, 1000.0)  # Hz, the rate a build or ``joints --fps`` resamples to (the corpora: 50 Hz)
MAX_POSITION_M = 1e4  # metres, |translation| and |joint| in world or camera frame (capture volumes: < 100 m)
MAX_AXIS_ANGLE = 1e3  # radians, |axis-angle component| of a pose (real: within +-2 pi)
MAX_SHAPE_COEFF = 1e3  # |beta| and |dmpl| coefficients (fitted bodies: within +-5)
MAX_NORMALISED_2D = 1e4  # |2D keypoint| in normalised image coordinates (in-view: within +-1.25)
IMAGE_SIDE_PX = (1.0, 1e5)  # pixels, an image's width or height
MAX_RESAMPLED_FRAMES = 1 << 21  # frames of one sequence after resampling (11.6 h at 50 Hz)


def out_of_range(value: float, lo: float, hi: float) -> bool:
    """True unless ``lo <= value <= hi`` (NaN is out of every range)."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return True
    return not (math.isfinite(v) and lo <= v <= hi)


def range_text(lo: float, hi: float, unit: str = "") -> str:
    """``"1-1000 Hz"``: a range as messages print it."""
    return f"{lo:g}-{hi:g}{' ' + unit if unit else ''}"


def beyond(values: np.ndarray, bound: float) -> str | None:
    """None when every value is finite and within ``+-bound``; else what is wrong, in words
    (the largest magnitude, never the array)."""
    a = np.asarray(values)
    if a.size == 0:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(a)
        if not finite.all():
            return f"{int((~finite).sum())} non-finite values (NaN/inf)"
        peak = float(np.abs(a).max())
    if peak > bound:
        return f"values up to {peak:.3g}, beyond the documented bound of {bound:g}"
    return None


def _stored(a) -> np.ndarray:
    """``a`` as the corpus stores it: float32 (a float64 value of 1e300 becomes inf there)."""
    a = np.asarray(a)
    return a.astype(np.float32, copy=False) if a.dtype.kind == "f" and a.dtype.itemsize > 4 else a


def record_problem(seq) -> str | None:
    """Why ``seq`` (a ``schemas.records.SequenceData``) must not be written, or None.

    Every coordinate array is checked as it will be stored (after the cast to float32): finite,
    positions within +-``MAX_POSITION_M`` metres, 2D within +-``MAX_NORMALISED_2D``; cameras finite.
    """
    checks = [("joints_world", seq.joints_world, MAX_POSITION_M, "m"),
              ("joints_world_32", getattr(seq, "joints_world_32", None), MAX_POSITION_M, "m")]
    for i, v in enumerate(seq.views):
        checks += [(f"view {i} joints_cam", v.joints_cam, MAX_POSITION_M, "m"),
                   (f"view {i} keypoints_2d", v.keypoints_2d, MAX_NORMALISED_2D, "normalised"),
                   (f"view {i} intrinsics", v.intrinsics, np.inf, ""),
                   (f"view {i} extrinsics", v.extrinsics, np.inf, "")]
    for name, arr, bound, unit in checks:
        if arr is None:
            continue
        bad = beyond(_stored(arr), bound)
        if bad:
            return f"{name} holds {bad}{' ' + unit if unit and 'bound' in bad else ''} as stored (float32); not written"
    return None
