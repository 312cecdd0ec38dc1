"""The camera model of ``pipelines/cameras.py`` in torch, on batches of cameras (differentiable).

Same names and the same model (tested equal to the numpy one):

* ``X_cam = R @ X_world + t``; extrinsics ``(B, 3, 4)`` ``[R | t]`` in metres;
* intrinsics ``(B, 11)``: fx fy cx cy k1 k2 k3 p1 p2 res_w res_h (pixels);
* points carry the camera batch as their leading axis: ``(B, ..., 3)``. A single camera
  (intrinsics ``(11,)``, extrinsics ``(3, 4)``) applies to points of any shape ``(..., 3)``.

Public API on purpose: the general, differentiable form for torch code (reprojection losses, views
of predictions). The loader uses ``camera_tensors`` and the fused, faster form of the same model,
``uplift.views.project_windows``.
"""

from __future__ import annotations

import torch

from schemas.cameras import Camera


def camera_tensors(cams: list[Camera], dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack Cameras into ``intrinsics (B, 11)`` and ``extrinsics (B, 3, 4)`` tensors."""
    intr = torch.stack([torch.as_tensor(c.intrinsics_vector(), dtype=dtype, device=device) for c in cams])
    extr = torch.stack([torch.as_tensor(c.extrinsics_matrix(), dtype=dtype, device=device) for c in cams])
    return intr, extr


def _per_point(v, like: torch.Tensor, point_ndim: int) -> torch.Tensor:
    """Per-camera value (B...) -> (B..., 1...) broadcasting over points (B..., N..., C)."""
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    return v.reshape(tuple(v.shape) + (1,) * (point_ndim - v.dim()))


def world_to_camera(X: torch.Tensor, extrinsics: torch.Tensor) -> torch.Tensor:
    """``X (B, ..., 3)`` world metres -> camera frame ``(B, ..., 3)``."""
    E = extrinsics.to(X.dtype)
    batch = tuple(E.shape[:-2])
    Xf = X.reshape(batch + (-1, 3))
    out = Xf @ E[..., :3].transpose(-1, -2) + E[..., None, :, 3]
    return out.reshape(X.shape)


def camera_to_world(Xc: torch.Tensor, extrinsics: torch.Tensor) -> torch.Tensor:
    """Inverse of ``world_to_camera``: ``X = R^-1 (X_cam - t)`` (exact inverse, as in numpy)."""
    E = extrinsics.to(Xc.dtype)
    batch = tuple(E.shape[:-2])
    Xf = Xc.reshape(batch + (-1, 3)) - E[..., None, :, 3]
    return (Xf @ torch.linalg.inv(E[..., :3]).transpose(-1, -2)).reshape(Xc.shape)


def _params(intrinsics: torch.Tensor, like: torch.Tensor):
    nd = like.dim() - 1
    return [_per_point(intrinsics[..., i], like, nd) for i in range(9)]


def project(Xc: torch.Tensor, intrinsics: torch.Tensor, distort: bool = True) -> torch.Tensor:
    """Camera-frame points ``(B, ..., 3)`` -> pixels ``(B, ..., 2)`` (VideoPose3D's H36M model, clamp included)."""
    fx, fy, cx, cy, k1, k2, k3, p1, p2 = _params(intrinsics, Xc)
    x = torch.clamp(Xc[..., :2] / Xc[..., 2:3], -1.0, 1.0)
    x0, x1 = x[..., 0], x[..., 1]
    if distort:
        r2 = x0 * x0 + x1 * x1
        scale = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3 + p1 * x0 + p2 * x1
        x0, x1 = x0 * scale + p1 * r2, x1 * scale + p2 * r2
    return torch.stack([fx * x0 + cx, fy * x1 + cy], dim=-1)


def undistort_points(px: torch.Tensor, intrinsics: torch.Tensor, iters: int = 10) -> torch.Tensor:
    """Pixels ``(B, ..., 2)`` -> undistorted normalised image-plane coords ``(x/z, y/z)`` (Newton's method)."""
    fx, fy, cx, cy, k1, k2, k3, p1, p2 = _params(intrinsics, px)
    d0, d1 = (px[..., 0] - cx) / fx, (px[..., 1] - cy) / fy
    a, b = d0, d1
    for _ in range(iters):
        r2 = a * a + b * b
        radial = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        dradial = k1 + 2.0 * k2 * r2 + 3.0 * k3 * r2**2
        s = radial + p1 * a + p2 * b
        g0 = a * s + p1 * r2 - d0
        g1 = b * s + p2 * r2 - d1
        j00 = s + a * (2.0 * a * dradial + p1) + 2.0 * p1 * a
        j01 = a * (2.0 * b * dradial + p2) + 2.0 * p1 * b
        j10 = b * (2.0 * a * dradial + p1) + 2.0 * p2 * a
        j11 = s + b * (2.0 * b * dradial + p2) + 2.0 * p2 * b
        det = j00 * j11 - j01 * j10
        a, b = a - (j11 * g0 - j01 * g1) / det, b - (j00 * g1 - j10 * g0) / det
    return torch.stack([a, b], dim=-1)


def normalize_pixels(px: torch.Tensor, res_w, res_h) -> torch.Tensor:
    """Pixels ``(B, ..., 2)`` -> normalised coords keeping the aspect ratio; ``res_w/res_h`` scalars or ``(B,)``."""
    w, h = _per_point(res_w, px, px.dim() - 1), _per_point(res_h, px, px.dim() - 1)
    return torch.stack([px[..., 0] / w * 2.0 - 1.0, px[..., 1] / w * 2.0 - h / w], dim=-1)


def denormalize_pixels(uv: torch.Tensor, res_w, res_h) -> torch.Tensor:
    """Inverse of ``normalize_pixels``."""
    w, h = _per_point(res_w, uv, uv.dim() - 1), _per_point(res_h, uv, uv.dim() - 1)
    return torch.stack([(uv[..., 0] + 1.0) * w / 2.0, (uv[..., 1] + h / w) * w / 2.0], dim=-1)


def in_image(px: torch.Tensor, res_w, res_h, Xc: torch.Tensor) -> torch.Tensor:
    """Bool ``(B, ...)``: pixel in ``[0, w) x [0, h)``, point in front (z > 0) and not clamped (|x|, |y| <= z)."""
    w, h = _per_point(res_w, px, px.dim() - 1), _per_point(res_h, px, px.dim() - 1)
    z = Xc[..., 2]
    unclamped = (Xc[..., 0].abs() <= z) & (Xc[..., 1].abs() <= z)
    inside = (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)
    return inside & (z > 0) & unclamped & torch.isfinite(px).all(dim=-1)
