"""Camera math in numpy: world <-> camera, projection (with distortion), undistortion, pixel normalisation.

One definition of the camera model (the torch twin in ``uplift/camera.py`` is tested equal to it):

* ``X_cam = R @ X_world + t`` (world z-up, metres; camera x right, y down, z forward);
* ``project`` is VideoPose3D's re-implementation of the Human3.6M model::

      x = clamp(X[:2] / X[2], -1, 1); r2 = |x|^2
      radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3;  tan = p1 x0 + p2 x1
      x' = x (radial + tan) + (p1, p2) r2;      pixel = f x' + c

* normalised image coordinates keep the aspect ratio: ``u = px / w * 2 - 1``, ``v = py / w * 2 - h / w``.

Every function takes ``cam`` as a ``schemas.cameras.Camera`` or as the stored vectors: intrinsics
``(..., 11)`` (fx fy cx cy k1 k2 k3 p1 p2 res_w res_h) or extrinsics ``(..., 3, 4)`` ``[R | t]``.
With a batch of B cameras (leading axes ``(B,)``), points carry the same leading axes: ``(B, ..., 3)``.

MPI-INF-3DHP ``camera.calibration`` files are read by :mod:`pipelines.calibration`.
"""

from __future__ import annotations

import numpy as np

from schemas.cameras import Camera

# ---------------------------------------------------------------------------------------------
# parameter plumbing


def _intrinsics(cam) -> np.ndarray:
    """(..., 11) float64 from a Camera or an intrinsics array."""
    k = cam.intrinsics_vector() if isinstance(cam, Camera) else np.asarray(cam, dtype=np.float64)
    if k.shape[-1:] != (11,):
        raise ValueError(f"intrinsics must have a trailing axis of 11, got shape {k.shape}")
    return k


def _extrinsics(cam) -> np.ndarray:
    """(..., 3, 4) float64 from a Camera or an extrinsics array."""
    e = cam.extrinsics_matrix() if isinstance(cam, Camera) else np.asarray(cam, dtype=np.float64)
    if e.shape[-2:] != (3, 4):
        raise ValueError(f"extrinsics must have trailing axes (3, 4), got shape {e.shape}")
    return e


def _per_point(v: np.ndarray, point_ndim: int) -> np.ndarray:
    """Reshape a per-camera value (B...) so it broadcasts over points (B..., N..., C) -> (B..., 1..., 1)."""
    v = np.asarray(v, dtype=np.float64)
    return v.reshape(v.shape + (1,) * (point_ndim - v.ndim))


def cameras_to_arrays(cams) -> tuple[np.ndarray, np.ndarray]:
    """Stack Cameras into ``intrinsics (B, 11)`` and ``extrinsics (B, 3, 4)`` float64 arrays."""
    return (np.stack([c.intrinsics_vector() for c in cams]), np.stack([c.extrinsics_matrix() for c in cams]))


# ---------------------------------------------------------------------------------------------
# rigid transforms


def world_to_camera(X, cam) -> np.ndarray:
    """``X (B..., N..., 3)`` world metres -> camera frame ``(B..., N..., 3)`` (float64)."""
    E = _extrinsics(cam)
    X = np.asarray(X, dtype=np.float64)
    batch = E.shape[:-2]
    Xf = X.reshape(batch + (-1, 3))
    out = Xf @ np.swapaxes(E[..., :3], -1, -2) + E[..., None, :, 3]  # matmul: einsum is ~10x slower
    return out.reshape(X.shape)


def camera_to_world(Xc, cam) -> np.ndarray:
    """Inverse of ``world_to_camera``: ``X = R^-1 (X_cam - t)``, shapes as there.

    ``R^-1`` rather than ``R^T``: the published 3DHP rotations are orthonormal only to ~1e-7, and the
    exact inverse keeps world -> camera -> world an identity.
    """
    E = _extrinsics(cam)
    Xc = np.asarray(Xc, dtype=np.float64)
    batch = E.shape[:-2]
    Xf = Xc.reshape(batch + (-1, 3)) - E[..., None, :, 3]
    out = Xf @ np.swapaxes(np.linalg.inv(E[..., :3]), -1, -2)
    return out.reshape(Xc.shape)


# ---------------------------------------------------------------------------------------------
# projection


def _distort(x: np.ndarray, k1, k2, k3, p1, p2) -> np.ndarray:
    """Normalised image-plane coords (..., 2) -> distorted ones, the model in the module doc."""
    r2 = x[..., 0] ** 2 + x[..., 1] ** 2
    radial = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    tan = p1 * x[..., 0] + p2 * x[..., 1]
    scale = radial + tan
    return np.stack([x[..., 0] * scale + p1 * r2, x[..., 1] * scale + p2 * r2], axis=-1)


def project(Xc, cam, distort: bool = True) -> np.ndarray:
    """Camera-frame points ``(B..., N..., 3)`` -> pixels ``(B..., N..., 2)`` (float64).

    Points with ``z <= 0`` give meaningless pixels (as in VideoPose3D); ``in_image`` flags them.
    """
    K = _intrinsics(cam)
    Xc = np.asarray(Xc, dtype=np.float64)
    nd = Xc.ndim - 1
    fx, fy, cx, cy, k1, k2, k3, p1, p2 = (_per_point(K[..., i], nd) for i in range(9))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.clip(Xc[..., :2] / Xc[..., 2:3], -1.0, 1.0)
    if distort:
        x = _distort(x, k1, k2, k3, p1, p2)
    return np.stack([fx * x[..., 0] + cx, fy * x[..., 1] + cy], axis=-1)


def undistort_points(px, cam, iters: int = 10) -> np.ndarray:
    """Pixels ``(B..., N..., 2)`` -> undistorted normalised image-plane coords ``(x/z, y/z)`` (float64).

    Inverts ``project``'s distortion by Newton's method from the distorted coordinates (converges in
    a few steps for the H36M lenses across the whole image). The clamp at |x/z| = 1 cannot be undone.
    """
    K = _intrinsics(cam)
    px = np.asarray(px, dtype=np.float64)
    nd = px.ndim - 1
    fx, fy, cx, cy, k1, k2, k3, p1, p2 = (_per_point(K[..., i], nd) for i in range(9))
    d = np.stack([(px[..., 0] - cx) / fx, (px[..., 1] - cy) / fy], axis=-1)
    a, b = d[..., 0].copy(), d[..., 1].copy()
    for _ in range(iters):
        r2 = a * a + b * b
        radial = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        dradial = k1 + 2.0 * k2 * r2 + 3.0 * k3 * r2**2  # d radial / d r2
        s = radial + p1 * a + p2 * b
        g0 = a * s + p1 * r2 - d[..., 0]
        g1 = b * s + p2 * r2 - d[..., 1]
        # Jacobian of (g0, g1) with respect to (a, b)
        j00 = s + a * (2.0 * a * dradial + p1) + 2.0 * p1 * a
        j01 = a * (2.0 * b * dradial + p2) + 2.0 * p1 * b
        j10 = b * (2.0 * a * dradial + p1) + 2.0 * p2 * a
        j11 = s + b * (2.0 * b * dradial + p2) + 2.0 * p2 * b
        det = j00 * j11 - j01 * j10
        a = a - (j11 * g0 - j01 * g1) / det
        b = b - (-j10 * g0 + j00 * g1) / det
    return np.stack([a, b], axis=-1)


# ---------------------------------------------------------------------------------------------
# pixel normalisation and visibility


def normalize_pixels(px, res_w, res_h) -> np.ndarray:
    """Pixels ``(B..., N..., 2)`` -> ``[-1, 1]`` along x keeping the aspect ratio (float64).

    ``res_w``/``res_h`` are scalars or per-camera arrays ``(B...)``.
    """
    px = np.asarray(px, dtype=np.float64)
    w, h = _per_point(res_w, px.ndim - 1), _per_point(res_h, px.ndim - 1)
    return np.stack([px[..., 0] / w * 2.0 - 1.0, px[..., 1] / w * 2.0 - h / w], axis=-1)


def denormalize_pixels(uv, res_w, res_h) -> np.ndarray:
    """Inverse of ``normalize_pixels``: ``(B..., N..., 2)`` normalised -> pixels (float64)."""
    uv = np.asarray(uv, dtype=np.float64)
    w, h = _per_point(res_w, uv.ndim - 1), _per_point(res_h, uv.ndim - 1)
    return np.stack([(uv[..., 0] + 1.0) * w / 2.0, (uv[..., 1] + h / w) * w / 2.0], axis=-1)


def in_image(px, res_w, res_h, Xc) -> np.ndarray:
    """Bool mask ``(B..., N...)``: the pixel lies in ``[0, w) x [0, h)`` and the point is in front (z > 0).

    Points whose ``|x/z|`` or ``|y/z|`` exceeds 1 are also out: the model clamps them, so their pixel
    is not where the point is (for the H36M and 3DHP lenses the image edges lie well inside that cone).
    """
    px = np.asarray(px, dtype=np.float64)
    Xc = np.asarray(Xc, dtype=np.float64)
    w, h = _per_point(res_w, px.ndim - 1), _per_point(res_h, px.ndim - 1)
    z = Xc[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        unclamped = (np.abs(Xc[..., 0]) <= z) & (np.abs(Xc[..., 1]) <= z)
    inside = (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)
    return inside & (z > 0) & unclamped & np.isfinite(px).all(axis=-1)
