"""Horizontal flip of 2D/3D poses: mirror x and swap left/right joints (works on numpy and torch).

Camera model in normalised coordinates: ``x = f_x * X / Z + c_x``. Mirroring the scene (``X -> -X``)
changes the projection to ``x' = 2 c_x - x``. Two equivalent conventions follow:
- image flip: ``x -> -x`` and the camera's principal point flips too (``c_x -> -c_x``,
  ``flip_principal_point``); exact for every camera, and what the official code does;
- camera kept: ``x -> 2 c_x - x`` with the camera unchanged (``flip_2d(..., principal_point=c)``).
The two coincide when the principal point is at the image centre (``c_x = 0``).
3D poses in camera coordinates flip as ``X -> -X`` in both.
"""

from __future__ import annotations

import numpy as np
import torch

from schemas.skeletons import H36M_17

H36M_FLIP_PERM = tuple(int(i) for i in H36M_17.flip_permutation)


def _mirror(x, perm, cx):
    y = x[..., list(perm), :]  # advanced indexing copies, so the in-place write below is safe
    y[..., 0] = 2 * cx - y[..., 0] if cx is not None else -y[..., 0]
    return y


def flip_2d(poses_2d, perm=H36M_FLIP_PERM, principal_point=None):
    """Mirror ``(..., J, 2)`` normalised 2D poses.

    ``principal_point=None``: ``x -> -x`` (pair it with ``flip_principal_point`` on the camera).
    Otherwise ``principal_point`` is the normalised ``(c_x, c_y)``, shape ``(2,)`` or broadcastable
    to ``poses.shape[:-2] + (2,)``, and ``x -> 2 c_x - x`` (the camera stays as it is).
    """
    cx = None
    if principal_point is not None:
        if torch.is_tensor(poses_2d):
            pp = torch.as_tensor(principal_point, dtype=poses_2d.dtype, device=poses_2d.device)
        else:
            pp = np.asarray(principal_point, dtype=poses_2d.dtype)
        cx = pp[..., 0][..., None] if pp.ndim > 1 else pp[0]  # (..., 1): broadcast over joints
    return _mirror(poses_2d, perm, cx)


def flip_3d(poses_3d, perm=H36M_FLIP_PERM):
    """Mirror ``(..., J, 3)`` camera-frame 3D poses: ``X -> -X`` and swap left/right joints. Self-inverse."""
    return _mirror(poses_3d, perm, None)


def flip_principal_point(principal_point):
    """``(..., 2)`` normalised principal point of the horizontally flipped image: ``c_x -> -c_x``."""
    out = principal_point.clone() if torch.is_tensor(principal_point) else np.array(principal_point, dtype=np.float64)
    out[..., 0] = -out[..., 0]
    return out


def draw_flips(rng: np.random.Generator, n: int, p: float = 0.5) -> np.ndarray:
    """``(n,)`` bool: which samples of a batch to flip, each with probability ``p``."""
    return rng.random(n) < p


def flip_batch(poses_2d, poses_3d, flips, perm=H36M_FLIP_PERM, principal_point=None):
    """Flip the samples of a batch where ``flips (B,)`` is True.

    poses_2d: (B, N, J, 2); poses_3d: (B, N, J, 3); principal_point: None (image-flip convention,
    flip the cameras with ``flip_principal_point``) or (B, 2) / (2,) (camera-kept convention).
    Returns new ``(poses_2d, poses_3d)``; the inputs are not modified.
    """
    is_t = torch.is_tensor(poses_2d)
    sel = torch.as_tensor(flips, dtype=torch.bool, device=poses_2d.device) if is_t else np.asarray(flips, dtype=bool)
    shape = (-1,) + (1,) * (poses_2d.ndim - 1)
    sel = sel.reshape(shape)
    if principal_point is not None:
        if not torch.is_tensor(principal_point):
            principal_point = np.asarray(principal_point)
        if principal_point.ndim == 2:
            principal_point = principal_point[:, None]  # (B, 2) -> (B, 1, 2): one per window, all frames
    f2 = flip_2d(poses_2d, perm, principal_point)
    f3 = flip_3d(poses_3d, perm)
    where = torch.where if is_t else np.where
    return where(sel, f2, poses_2d), where(sel, f3, poses_3d)
