"""Linear resampling between source frames, planned so callers compute only the frames they need.

The AMASS-to-3DHPE conversion samples joint positions at t = n / target_fps (n = 0, 1, ... while
t <= (T - 1) / src_fps) and interpolates linearly between the two neighbouring source frames.
Joint regression is the expensive step, so :func:`plan_resample` first says which source frames are
needed; :func:`apply_plan` then blends values computed at those frames only.

Float rounding: AMASS stores rates such as 120.00004577636719 Hz (a float32 of 120). A last output
sample that lands past the final source frame by at most :data:`END_TOLERANCE` of the span (1 ppm)
is kept and clamped onto that frame, so such a file keeps the frame it would have at exactly 120 Hz.
Samples within :data:`SNAP_FRAMES` of a source frame are taken from it alone (w = 0, lo == hi): at
120.00004577636719 -> 50 Hz the 1 in 5 near-hits then cost no extra frame (the time error is < 10 us).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

END_TOLERANCE = 1e-6  # relative to the source span (T - 1) frames
SNAP_FRAMES = 1e-3  # in source frames: < 10 us at 100 Hz, far below mocap noise


@dataclass
class ResamplePlan:
    """Output frame n = ``(1 - w[n]) * v[lo[n]] + w[n] * v[hi[n]]`` with v = values at ``needed``."""

    needed: np.ndarray  # (K,) int64 sorted unique source-frame indices that must be computed
    lo: np.ndarray  # (T',) int64 indices into `needed`
    hi: np.ndarray  # (T',) int64 indices into `needed`
    w: np.ndarray  # (T',) float64 weight of hi (0 -> lo exactly)
    n_out: int


def _check_rate(name: str, fps: float) -> float:
    fps = float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"{name} must be a positive finite frame rate, got {fps}")
    return fps


def plan_resample(n_src: int, src_fps: float, target_fps: float) -> ResamplePlan:
    """Plan linear resampling of ``n_src`` frames at ``src_fps`` to ``target_fps`` (up or down)."""
    n_src = int(n_src)
    if n_src < 1:
        raise ValueError(f"need at least one source frame, got {n_src}")
    src_fps = _check_rate("src_fps", src_fps)
    target_fps = _check_rate("target_fps", target_fps)
    span = n_src - 1  # in source frames
    # Output n sits at source position n * src / target; keep n while it is <= span (+ tolerance).
    limit = span * (1.0 + END_TOLERANCE) + SNAP_FRAMES
    n_out = int(math.floor(limit * target_fps / src_fps)) + 1
    n = np.arange(n_out, dtype=np.float64)
    pos = (n * src_fps) / target_fps  # multiply first: integer rates give exact integer hits
    while n_out > 1 and pos[-1] > limit:  # floor() above can overshoot by one in float
        n_out -= 1
        pos = pos[:-1]
    pos = np.minimum(pos, span)
    lo = np.floor(pos)
    w = pos - lo
    up = w > 1.0 - SNAP_FRAMES  # just below a source frame: snap up to it
    lo[up] += 1.0
    w[up] = 0.0
    w[w < SNAP_FRAMES] = 0.0
    lo_src = np.minimum(lo.astype(np.int64), span)
    hi_src = np.where(w > 0.0, np.minimum(lo_src + 1, span), lo_src)
    w[hi_src == lo_src] = 0.0
    needed = np.unique(np.concatenate([lo_src, hi_src]))
    return ResamplePlan(
        needed=needed,
        lo=np.searchsorted(needed, lo_src).astype(np.int64),
        hi=np.searchsorted(needed, hi_src).astype(np.int64),
        w=w,
        n_out=int(n_out),
    )


def apply_plan(plan: ResamplePlan, values: np.ndarray) -> np.ndarray:
    """Blend values computed at ``plan.needed``: (K, ...) -> (T', ...), same floating dtype.

    Blending runs in float64 and is cast back, so float32 inputs lose nothing to the weights.
    """
    values = np.asarray(values)
    if values.shape[0] != len(plan.needed):
        raise ValueError(f"values hold {values.shape[0]} frames, plan needs {len(plan.needed)}")
    if not np.issubdtype(values.dtype, np.floating):
        raise TypeError(f"resampling needs floating values, got {values.dtype}")
    w = plan.w.reshape((-1,) + (1,) * (values.ndim - 1))
    a = values[plan.lo].astype(np.float64, copy=False)
    b = values[plan.hi].astype(np.float64, copy=False)
    out = a + w * (b - a)
    exact = plan.w == 0.0  # exact hits: copy, so inf/NaN in an unused neighbour cannot leak in
    out[exact] = a[exact]
    return out.astype(values.dtype, copy=False)

