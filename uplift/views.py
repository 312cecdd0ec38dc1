"""Per-window cameras: project world-space windows through a camera drawn from a rig's pool, on the fly.

The official AMASS generator draws, for every window and again every epoch, one of the 28 Human3.6M
cameras and projects the world motion through it. Here the pool is a rig's cameras (``h36m``: 7
subjects x 4 cameras = 28; ``3dhp``: the 14 training cameras), the projection is the corpus's own
camera model (``schemas.cameras``, distortion and clamp included) and in-view flags are computed from
it. ``project_windows`` is uplift's one torch form of that model.

Placement, per window: the window's root path (xy bounding-box centre over its frames) is moved to
the rig's capture-volume centre, z untouched (floor stays at z = 0). Per window rather than per
sequence because a window spans at most N frames (7 s at 50 Hz), so its path is short and centring
it keeps the person in the picture of every camera of the rig, while a whole AMASS sequence may walk
further than the volume; and it costs one subtraction (no search). The stored world joints are
already placed in the rig's volume at build time; centring only removes the remaining offset.

Flip (mirror) happens in world space, as the official code does: reflect about the vertical plane
``x = centre_x`` through the volume centre and swap left/right joints, then project through the
same camera; the 2D input is then a true projection (distortion included) of a mirrored person.

Recipe items (``uplift.config.RECIPE_ITEMS``): ``placement = "raw"`` skips the centring (the
released code projects the AMASS trajectory as stored: read it from a corpus built with
``placement: raw``, i.e. neither turned, moved nor cut); ``mirror = "x0"`` reflects about the
world plane ``x = 0`` instead of the volume centre's (the released code's ``x -> -x``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from schemas.cameras import all_rig_cameras, cameras_to_arrays, capture_volume_centre


@lru_cache(maxsize=None)
def rig_pool(rig: str) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
    """``(intrinsics (P, 11), extrinsics (P, 3, 4), centre_xy)`` of a rig's whole camera pool.

    h36m: the 4 cameras of each of the 7 subjects (P = 28); 3dhp: the 14 training cameras.
    ``centre_xy``: the capture-volume centre (floor point below the optical axes' convergence).
    The vectors are float32 (the loader's precision), rounded from the float64 figures.
    """
    cams = all_rig_cameras(rig)
    intr, extr = (torch.as_tensor(a, dtype=torch.float32) for a in cameras_to_arrays(cams))
    c = capture_volume_centre(cams)
    return intr, extr, (float(c[0]), float(c[1]))


def draw_cameras(rng: np.random.Generator, n: int, pool_size: int) -> np.ndarray:
    """``(n,)`` int64 camera index per window, uniform over the pool."""
    return rng.integers(0, pool_size, size=n).astype(np.int64)


def project_windows(world: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor,
                    mirror: torch.Tensor | None, centre_xy, perm, root: int = 0, out=None, *,
                    centre_path: bool = True, mirror_x: float | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Place, optionally mirror, and project windows through one camera each.

    ``centre_path``: move each window's root path to the volume centre (False: project as stored);
    ``mirror_x``: the x of the mirror plane (None: the volume centre's ``centre_xy[0]``).

    world: (K, N, J, 3) metres (z-up); intrinsics (K, 11), extrinsics (K, 3, 4): each window's camera;
    mirror: (K,) bool or None. Returns ``keypoints_2d (K, N, J, 2)`` normalised, ``joints_3d
    (K, N, J, 3)`` root-relative camera frame, ``in_view (K, N, J)`` bool, written into ``out`` (the
    same three tensors) when given. Computed in float32 (the loader), or in float64 when ``world`` is.

    The model of ``schemas.cameras`` (``world_to_camera``, ``project`` with distortion and clamp,
    ``normalize_pixels``, ``in_image``), evaluated on coordinate planes ``(K, N*J)`` with fused
    multiply-adds and per-camera constants ``(K, 1)`` (a ``(K, 1, 1)`` broadcast is 10x slower on
    CPU): ~10x faster than a general batched form at loader batch sizes on one core, equal to the
    numpy model up to float rounding (tests/uplift/test_views.py).
    """
    k, n, j, _ = world.shape
    dtype = torch.promote_types(world.dtype, torch.float32)  # float32, or float64 for float64 windows
    X, Y, Z = world.to(dtype).permute(3, 0, 1, 2).reshape(3, k, n * j).contiguous()
    rx, ry = X.view(k, n, j)[:, :, root], Y.view(k, n, j)[:, :, root]
    cx_w, cy_w = float(centre_xy[0]), float(centre_xy[1])
    if centre_path:
        X += (cx_w - 0.5 * (rx.amax(1) + rx.amin(1)))[:, None]  # centre the root path (xy)
        Y += (cy_w - 0.5 * (ry.amax(1) + ry.amin(1)))[:, None]
    if mirror is not None and bool(mirror.any()):
        p = torch.as_tensor([int(i) for i in perm])
        m = mirror[:, None]
        swap = (lambda P: P.view(k, n, j).index_select(2, p).view(k, n * j))  # noqa: E731
        mx = cx_w if mirror_x is None else float(mirror_x)
        X = torch.where(m, 2.0 * mx - swap(X), X)
        Y = torch.where(m, swap(Y), Y)
        Z = torch.where(m, swap(Z), Z)
    c = lambda v: v.to(dtype)[:, None]  # noqa: E731 per-camera constant (K, 1)
    E = extrinsics
    # (P * a).add_(b) rather than addcmul(b, a, P): a broadcast first operand is a slow path
    xc = (X * c(E[:, 0, 0])).add_(c(E[:, 0, 3])).addcmul_(c(E[:, 0, 1]), Y).addcmul_(c(E[:, 0, 2]), Z)
    yc = (X * c(E[:, 1, 0])).add_(c(E[:, 1, 3])).addcmul_(c(E[:, 1, 1]), Y).addcmul_(c(E[:, 1, 2]), Z)
    zc = (X * c(E[:, 2, 0])).add_(c(E[:, 2, 3])).addcmul_(c(E[:, 2, 1]), Y).addcmul_(c(E[:, 2, 2]), Z)
    fx, fy, px0, py0, k1, k2, k3, p1, p2, w, h = (c(intrinsics[:, i]) for i in range(11))
    x0, x1 = (xc / zc).clamp_(-1.0, 1.0), (yc / zc).clamp_(-1.0, 1.0)
    r2 = x0 * x0
    r2.addcmul_(x1, x1)
    radial = (k3 * r2).add_(k2).mul_(r2).add_(k1).mul_(r2).add_(1.0)  # 1 + k1 r2 + k2 r2^2 + k3 r2^3
    scale = radial.addcmul_(p1, x0).addcmul_(p2, x1)
    xd = (x0 * scale).addcmul_(p1, r2)
    yd = (x1 * scale).addcmul_(p2, r2)
    # normalised pixels: u = px / w * 2 - 1, v = py / w * 2 - h / w, with px = fx * xd + cx
    u = (xd * (2.0 * fx / w)).add_(2.0 * px0 / w - 1.0)
    v = (yd * (2.0 * fy / w)).add_(2.0 * py0 / w - h / w)
    # in view: pixel in [0, w) x [0, h), in front, not clamped (as schemas.cameras.in_image)
    px, py = (u + 1.0).mul_(w / 2.0), (v + h / w).mul_(w / 2.0)
    iv = (px >= 0) & (px - w < 0) & (py >= 0) & (py - h < 0) & (zc > 0) & (xc.abs() <= zc) & (yc.abs() <= zc)
    if out is None:
        out = (torch.empty(k, n, j, 2, dtype=dtype), torch.empty(k, n, j, 3, dtype=dtype),
               torch.empty(k, n, j, dtype=torch.bool))
    kp, j3, ivo = out
    kp[..., 0], kp[..., 1] = u.view(k, n, j), v.view(k, n, j)
    for i, P in enumerate((xc, yc, zc)):
        P = P.view(k, n, j)
        j3[..., i] = P - P[:, :, root:root + 1]
    ivo.copy_(iv.view(k, n, j))
    return kp, j3, ivo
