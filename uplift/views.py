"""Per-window cameras: project world-space windows through a camera drawn from a rig's pool, on the fly.

The official AMASS generator draws, for every window and again every epoch, one of the 28 Human3.6M
cameras and projects the world motion through it. Here the pool is a rig's cameras (``h36m``: 7
subjects x 4 cameras = 28; ``3dhp``: the 14 training cameras), the projection is the corpus's own
camera model (``uplift.camera``, the same distortion as ``pipelines/cameras.py``) and in-view flags
are computed from it.

Placement, per window: the window's root path (xy bounding-box centre over its frames) is moved to
the rig's capture-volume centre, z untouched (floor stays at z = 0). Per window rather than per
sequence because a window spans at most N frames (7 s at 50 Hz), so its path is short and centring
it keeps the person in the picture of every camera of the rig, while a whole AMASS sequence may walk
further than the volume; and it costs one subtraction (no search). The stored world joints are
already placed in the rig's volume at build time; centring only removes the remaining offset.

Flip (mirror) happens in world space, as the official code does: reflect about the vertical plane
``x = centre_x`` through the volume centre and swap left/right joints, then project through the
same camera; the 2D input is then a true projection (distortion included) of a mirrored person.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from schemas.cameras import H36M_SUBJECTS, h36m_rig, mpi_inf_3dhp_rig
from uplift.camera import camera_tensors, in_image, normalize_pixels, project, world_to_camera


@lru_cache(maxsize=None)
def rig_pool(rig: str) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
    """``(intrinsics (P, 11), extrinsics (P, 3, 4), centre_xy)`` of a rig's whole camera pool.

    h36m: the 4 cameras of each of the 7 subjects (P = 28); 3dhp: the 14 training cameras.
    ``centre_xy``: the capture-volume centre (floor point below the optical axes' convergence).
    """
    from pipelines.placement import capture_volume_centre

    if rig == "h36m":
        cams = [c for s in H36M_SUBJECTS for c in h36m_rig(s)]
    elif rig == "3dhp":
        cams = mpi_inf_3dhp_rig()
    else:
        raise ValueError(f"unknown rig {rig!r}; expected 'h36m' or '3dhp'")
    intr, extr = camera_tensors(cams)
    c = capture_volume_centre(cams)
    return intr, extr, (float(c[0]), float(c[1]))


def draw_cameras(rng: np.random.Generator, n: int, pool_size: int) -> np.ndarray:
    """``(n,)`` int64 camera index per window, uniform over the pool."""
    return rng.integers(0, pool_size, size=n).astype(np.int64)


def centre_windows(world: torch.Tensor, centre_xy, root: int = 0) -> torch.Tensor:
    """``world (K, N, J, 3)`` -> the same windows moved so that each one's root-path xy bounding-box
    centre sits at ``centre_xy``; z unchanged."""
    r = world[:, :, root, :2]
    mid = 0.5 * (r.amax(dim=1) + r.amin(dim=1))  # (K, 2)
    shift = torch.as_tensor(centre_xy, dtype=world.dtype) - mid
    out = world.clone()
    out[..., :2] += shift[:, None, None, :]
    return out


def mirror_world(world: torch.Tensor, perm, centre_x: float) -> torch.Tensor:
    """Reflect ``(..., J, 3)`` world joints about the plane ``x = centre_x`` and swap left/right."""
    out = world[..., list(perm), :].clone()
    out[..., 0] = 2.0 * centre_x - out[..., 0]
    return out


def project_windows(world: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor,
                    mirror: torch.Tensor | None, centre_xy, perm, root: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Place, optionally mirror, and project windows through one camera each.

    world: (K, N, J, 3) metres (z-up); intrinsics (K, 11), extrinsics (K, 3, 4): each window's camera;
    mirror: (K,) bool or None. Returns ``keypoints_2d (K, N, J, 2)`` normalised, ``joints_3d
    (K, N, J, 3)`` root-relative camera frame, ``in_view (K, N, J)`` bool.
    """
    w = centre_windows(world, centre_xy, root)
    if mirror is not None and bool(mirror.any()):
        w = torch.where(mirror[:, None, None, None], mirror_world(w, perm, float(centre_xy[0])), w)
    xc = world_to_camera(w, extrinsics)
    px = project(xc, intrinsics)
    kp = normalize_pixels(px, intrinsics[:, 9], intrinsics[:, 10])
    iv = in_image(px, intrinsics[:, 9], intrinsics[:, 10], xc)
    return kp, xc - xc[:, :, root:root + 1], iv
