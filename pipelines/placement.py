"""Place a motion sequence in a camera rig's capture volume and project it through k virtual cameras.

AMASS subjects walk anywhere, so projecting them through a fixed H36M camera leaves joints outside
the image. Instead each sequence is moved rigidly on the floor into the rig's capture volume:

* the volume centre is derived from the rig geometry: the floor point below the point nearest (in
  least squares) to all the cameras' optical axes (near the world origin for H36M);
* the root trajectory's xy bounding-box centre goes there, the motion is turned by a seeded random
  yaw about the vertical axis; z is never touched (AMASS, H36M and our z-up 3DHP all have the floor
  at z = 0), so feet stay on the floor;
* if a draw leaves any joint of any chosen camera out of the image, more yaws are drawn and then
  yaws with shifts within the volume;
* a sequence that no draw fits is cut greedily: from each cut on, the draw that keeps the longest
  prefix in view (centred on the next few seconds of the path) places that prefix, each on its own (a cut never leaves a remainder shorter than ``min_segment_frames`` when
  it can avoid it); a piece that cannot fit even at ``min_segment_frames`` frames is returned
  with ``fits=False`` (flagged, never silently kept or dropped). Every input frame lands in exactly
  one returned segment.

Cameras: "h36m" picks a seeded random subject and ``cameras_per_sequence`` of its 4 cameras (default
all 4); "3dhp" picks a seeded random ``cameras_per_sequence`` of the 14 training cameras. The same
cameras serve every segment of a sequence.

``project_in_place`` is the other placement (a build's ``placement: raw``): the motion stays where
the mocap world has it, neither turned, moved nor cut, as the authors' released pre-training
projects AMASS (a trainer that draws cameras per window then projects it as stored). Its views may
leave the image; their in-view flags say where.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from schemas.records import ViewData
from schemas.cameras import (H36M_CAMERA_IDS, H36M_SUBJECTS, Camera, all_rig_cameras, cameras_to_arrays,
                             capture_volume_centre, h36m_rig, in_image, mpi_inf_3dhp_rig, normalize_pixels, project,
                             world_to_camera)
from schemas.errors import ConfigError
from schemas.skeletons import H36M_17

# Head, wrists, elbows and ankles: the H36M joints that leave an image first.
H36M_EXTREMITIES = tuple(H36M_17.index(n) for n in ("head", "l_wrist", "r_wrist", "l_elbow", "r_elbow",
                                                     "l_ankle", "r_ankle"))

# Search budget per placement: the first draws only turn (yaw), the later ones also shift.
YAW_ONLY_ATTEMPTS = 8
SHIFT_ATTEMPTS = 24
MAX_SHIFT_M = 1.0  # how far from the volume centre a shifted draw may go
MAX_SEARCH_FRAMES = 256  # frames scored per draw (strided); the winning draw is checked on all frames
MAX_PREFIX_SEARCH_FRAMES = 256  # the same when cutting a sequence that does not fit whole
HORIZON_FRAMES = 150  # a cut piece is centred on the next ~3 s (at 50 Hz) of its root path


@dataclass
class PlacedSegment:
    """One piece ``[start, stop)`` of the input sequence placed in the rig and seen by k cameras."""

    start: int
    stop: int
    joints_world: np.ndarray  # (stop-start, J, 3) float32, metres, the rig's world (z-up)
    views: list[ViewData]  # one per chosen camera, detections="projected"
    fits: bool  # False: joints still leave the image in some view (flagged)
    yaw: float = 0.0  # radians, turn applied about the vertical axis through the trajectory centre
    offset_xy: tuple[float, float] = (0.0, 0.0)  # metres, where the trajectory centre was put

    @property
    def n_frames(self) -> int:
        return self.stop - self.start

    @property
    def joints_out_fraction(self) -> float:
        """Fraction of 2D joints (over all frames and views) outside the image."""
        if not self.views:
            return 0.0
        return float(1.0 - np.mean([v.in_view.mean() for v in self.views]))


@lru_cache(maxsize=None)
def _rig_centre(rig: str) -> tuple[float, float]:
    """xy of the volume centre of a rig: over all H36M subjects' cameras, or all 14 3DHP cameras."""
    c = capture_volume_centre(all_rig_cameras(rig))
    return float(c[0]), float(c[1])


def choose_cameras(rig: str, k: int, rng: np.random.Generator,
                   pool: list[Camera] | None = None) -> tuple[str, list[Camera]]:
    """Seeded camera choice: ``(rig_subject, cameras)``; see the module doc. ``pool`` replaces the
    shipped 3DHP cameras (e.g. parsed from a user's ``camera.calibration``)."""
    if pool is not None:
        if rig != "3dhp":
            raise ConfigError("a camera pool (calibration file) is supported for the 3dhp rig only")
        if not 1 <= k <= len(pool):
            raise ConfigError(f"cameras_per_sequence must be 1..{len(pool)} for this calibration, got {k}")
        return "", [pool[i] for i in np.sort(rng.choice(len(pool), size=k, replace=False))]
    if rig == "h36m":
        if not 1 <= k <= len(H36M_CAMERA_IDS):
            raise ConfigError(f"cameras_per_sequence must be 1..{len(H36M_CAMERA_IDS)} for the h36m rig, got {k}")
        subject = str(H36M_SUBJECTS[rng.integers(len(H36M_SUBJECTS))])
        rig_cams = h36m_rig(subject)
        idx = np.arange(4) if k == 4 else np.sort(rng.choice(4, size=k, replace=False))
        return subject, [rig_cams[i] for i in idx]
    if rig == "3dhp":
        if not 1 <= k <= 14:
            raise ConfigError(f"cameras_per_sequence must be 1..14 for the 3dhp rig, got {k}")
        idx = np.sort(rng.choice(14, size=k, replace=False))
        return "", mpi_inf_3dhp_rig(idx.tolist())
    raise ConfigError(f"unknown rig {rig!r}; expected 'h36m' or '3dhp'")


def _rotz(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _transform(joints: np.ndarray, pivot_xy: np.ndarray, yaw: float, target_xy: np.ndarray) -> np.ndarray:
    """(T, J, 3) float64: turn by ``yaw`` about the vertical through ``pivot_xy``, move pivot to ``target_xy``."""
    pivot = np.array([pivot_xy[0], pivot_xy[1], 0.0])
    target = np.array([target_xy[0], target_xy[1], 0.0])
    return (joints - pivot) @ _rotz(yaw).T + target


class _Scorer:
    """Scores placements of one sequence for a fixed set of cameras."""

    def __init__(self, joints: np.ndarray, cams: list[Camera], root_joint: int, centre_xy: np.ndarray):
        self.joints = np.asarray(joints, dtype=np.float64)
        # Draws are ranked on the extremities only (they leave the image first); the winner is
        # always checked on every joint.
        self.probe = list(H36M_EXTREMITIES) if self.joints.shape[1] == H36M_17.num_joints else slice(None)
        self.intr, self.extr = cameras_to_arrays(cams)
        self.root = root_joint
        self.centre_xy = centre_xy
        self.last = None  # (start, stop, yaw, target, placed, projected) of the last search that fitted whole

    def in_view(self, placed: np.ndarray) -> np.ndarray:
        """(k, n, J) bool for placed joints (n, J, 3)."""
        return self.projected(placed)[2]

    def projected(self, placed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Placed joints (n, J, 3) seen by the k cameras: camera-frame joints (k, n, J, 3), pixels
        (k, n, J, 2) and in-view flags (k, n, J); per camera bit-identical to ``_views``'s own."""
        X = np.broadcast_to(placed, (len(self.extr),) + placed.shape)
        Xc = world_to_camera(X, self.extr)
        px = project(Xc, self.intr)
        return Xc, px, in_image(px, self.intr[:, 9], self.intr[:, 10], Xc)

    def search(self, start: int, stop: int, rng: np.random.Generator):
        """Best placement of frames [start, stop): ``(yaw, pivot_xy, target_xy, fits)``."""
        seg = self.joints[start:stop]
        root_xy = seg[:, self.root, :2]
        pivot = (root_xy.min(axis=0) + root_xy.max(axis=0)) / 2.0
        n = stop - start
        stride = max(1, -(-n // MAX_SEARCH_FRAMES))
        sub_idx = np.unique(np.r_[np.arange(0, n, stride), n - 1])
        sub = seg[sub_idx][:, self.probe]
        best = (-1.0, 0.0, self.centre_xy)
        for attempt in range(SHIFT_ATTEMPTS):
            yaw, target = self._draw(attempt, rng)
            score = float(self.in_view(_transform(sub, pivot, yaw, target)).mean())
            if score == 1.0:
                placed = _transform(seg, pivot, yaw, target)
                views = self.projected(placed)
                if views[2].all():  # the winner's check is its projection: the views reuse it
                    self.last = (start, stop, yaw, tuple(target), placed, views)
                    return yaw, pivot, target, True
            if score > best[0]:
                best = (score, yaw, target)
        return best[1], pivot, best[2], False

    def longest_prefix(self, start: int, rng: np.random.Generator):
        """Among the draws for the frames from ``start`` on, the one that keeps the longest prefix in
        view: ``(length, (yaw, pivot_xy, target_xy, fits))``. One pass over the remaining frames per
        draw (strided), then the winner is checked frame by frame."""
        rest = self.joints[start:]
        n = len(rest)
        near = rest[:HORIZON_FRAMES, self.root, :2]  # centre the next few seconds of the path
        pivot = (near.min(axis=0) + near.max(axis=0)) / 2.0
        stride = max(1, -(-n // MAX_PREFIX_SEARCH_FRAMES))
        sub_idx = np.arange(0, n, stride)
        best_len, best = -1, (0.0, self.centre_xy)
        probe = rest[sub_idx][:, self.probe]
        for attempt in range(SHIFT_ATTEMPTS):
            yaw, target = self._draw(attempt, rng)
            ok = self.in_view(_transform(probe, pivot, yaw, target)).all(axis=(0, 2))
            bad = np.flatnonzero(~ok)
            length = n if len(bad) == 0 else int(sub_idx[bad[0]])
            if length > best_len:
                best_len, best = length, (yaw, target)
                if length == n:
                    break
        yaw, target = best
        ok = self.in_view(_transform(rest[:best_len], pivot, yaw, target)).all(axis=(0, 2))
        bad = np.flatnonzero(~ok)
        length = best_len if len(bad) == 0 else int(bad[0])
        return length, (yaw, pivot, target, length > 0)

    def _draw(self, attempt: int, rng: np.random.Generator) -> tuple[float, np.ndarray]:
        """A random yaw, and for the later attempts a shift uniform in a disc around the centre."""
        yaw = float(rng.uniform(0.0, 2.0 * math.pi))
        r = MAX_SHIFT_M * math.sqrt(rng.uniform()) if attempt >= YAW_ONLY_ATTEMPTS else 0.0
        phi = float(rng.uniform(0.0, 2.0 * math.pi))
        return yaw, self.centre_xy + r * np.array([math.cos(phi), math.sin(phi)])


def _views(placed: np.ndarray, cams: list[Camera], rig: str, rig_subject: str,
           projected: tuple | None = None) -> list[ViewData]:
    """One view per camera; ``projected``: ``_Scorer.projected(placed)`` when the search already made it."""
    views = []
    for i, cam in enumerate(cams):
        if projected is not None:
            Xc, px, in_view = (a[i] for a in projected)
        else:
            Xc = world_to_camera(placed, cam)
            px = project(Xc, cam)
            in_view = in_image(px, cam.res_w, cam.res_h, Xc)
        views.append(ViewData(
            rig=rig, camera_id=cam.id, rig_subject=rig_subject, detections="projected",
            keypoints_2d=normalize_pixels(px, cam.res_w, cam.res_h).astype(np.float32),
            joints_cam=Xc.astype(np.float32), in_view=in_view,
            intrinsics=cam.intrinsics_vector(), extrinsics=cam.extrinsics_matrix()))
    return views


def _check_joints(joints: np.ndarray, root_joint: int) -> None:
    if joints.ndim != 3 or joints.shape[-1] != 3 or joints.shape[0] == 0:
        raise ValueError(f"joints_world must be (T>0, J, 3), got shape {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints_world has non-finite values")
    if not 0 <= root_joint < joints.shape[1]:
        raise ValueError(f"root_joint {root_joint} out of range for {joints.shape[1]} joints")


def project_in_place(joints_world: np.ndarray, rig: str = "h36m", cameras_per_sequence: int = 4,
                     rng: np.random.Generator | int | None = None, min_segment_frames: int = 50,
                     root_joint: int = 0, camera_pool: list[Camera] | None = None) -> list[PlacedSegment]:
    """``joints_world (T, J, 3)`` as it is (one segment, no yaw, no shift, no cut) seen by the rig's
    seeded cameras (``choose_cameras``); ``fits`` says whether every joint is in every view.
    Same signature as ``place_and_project`` (``min_segment_frames`` unused)."""
    joints = np.asarray(joints_world, dtype=np.float64)
    _check_joints(joints, root_joint)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)
    if rig not in ("h36m", "3dhp"):
        raise ConfigError(f"unknown rig {rig!r}; expected 'h36m' or '3dhp'")
    rig_subject, cams = choose_cameras(rig, cameras_per_sequence, rng, camera_pool)
    views = _views(joints, cams, rig, rig_subject)
    fits = all(bool(v.in_view.all()) for v in views)
    return [PlacedSegment(start=0, stop=len(joints), joints_world=joints.astype(np.float32), views=views, fits=fits)]


def place_and_project(joints_world: np.ndarray, rig: str = "h36m", cameras_per_sequence: int = 4,
                      rng: np.random.Generator | int | None = None, min_segment_frames: int = 50,
                      root_joint: int = 0, camera_pool: list[Camera] | None = None) -> list[PlacedSegment]:
    """Place ``joints_world (T, J, 3)`` (metres, z-up, floor z = 0) in ``rig`` and project it.

    ``rng``: a Generator or an int seed (None means seed 0); the same inputs and seed give the same
    segments. Returns segments covering ``[0, T)`` in order; see the module doc for the search.
    """
    joints = np.asarray(joints_world, dtype=np.float64)
    _check_joints(joints, root_joint)
    if min_segment_frames < 1:
        raise ConfigError(f"min_segment_frames must be >= 1, got {min_segment_frames}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)
    if rig not in ("h36m", "3dhp"):
        raise ConfigError(f"unknown rig {rig!r}; expected 'h36m' or '3dhp'")
    rig_subject, cams = choose_cameras(rig, cameras_per_sequence, rng, camera_pool)
    centre = capture_volume_centre(camera_pool)[:2] if camera_pool else np.array(_rig_centre(rig))
    scorer = _Scorer(joints, cams, root_joint, centre)

    def emit(start, stop, placement):
        yaw, pivot, target, fits = placement
        last = scorer.last
        if last is not None and last[:4] == (start, stop, yaw, tuple(target)):  # the search projected it already
            placed, projected = last[4], last[5]
        else:
            placed, projected = _transform(joints[start:stop], pivot, yaw, target), None
        return PlacedSegment(start=start, stop=stop, joints_world=placed.astype(np.float32),
                             views=_views(placed, cams, rig, rig_subject, projected), fits=fits, yaw=yaw,
                             offset_xy=(float(target[0]), float(target[1])))

    T = joints.shape[0]
    whole = scorer.search(0, T, rng)  # most sequences fit whole: one search
    if whole[3]:
        return [emit(0, T, whole)]
    segments: list[PlacedSegment] = []
    start = 0
    while start < T:
        length, best = scorer.longest_prefix(start, rng)
        if length < min(min_segment_frames, T - start):
            # even the shortest allowed piece (or the remainder) cannot fit: flag it
            stop = min(start + min_segment_frames, T)
            segments.append(emit(start, stop, scorer.search(start, stop, rng)))
            start = stop
            continue
        stop = start + length
        if T - stop < min_segment_frames <= T - min_segment_frames - start:
            # leave the remainder at least the minimum length: a prefix of a fitting piece fits
            # with the same placement (visibility is per frame)
            stop = T - min_segment_frames
        segments.append(emit(start, stop, best))
        start = stop
    return segments
