"""Horizontal flip of 2D/3D poses: mirror x and swap left/right joints (works on numpy and torch).

Camera model in normalised coordinates: ``x = f_x * X / Z + c_x``. Mirroring the scene (``X -> -X``)
changes the projection to ``x' = 2 c_x - x``. Two equivalent conventions follow:
- image flip: ``x -> -x`` and the camera's principal point flips too (``c_x -> -c_x``); exact for
  every camera, and what the official code does;
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

    ``principal_point=None``: ``x -> -x`` (the image-flip convention: the camera's ``c_x`` flips too).
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
