"""Placement of synthetic walks in the capture volumes: all joints in view, feet on the floor, splits, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.placement import PlacedSegment, place_and_project
from schemas.cameras import (H36M_CAMERA_IDS, H36M_SUBJECTS, Camera, capture_volume_centre, h36m_rig, in_image,
                             normalize_pixels, project)
from schemas.errors import ConfigError

# A 17-joint stick figure (H36M order): (lateral, forward, height) in metres, facing +forward.
BODY = np.array([
    [0, 0, 0.95], [-0.1, 0, 0.92], [-0.1, 0.02, 0.5], [-0.1, 0, 0.08], [0.1, 0, 0.92], [0.1, 0.02, 0.5],
    [0.1, 0, 0.08], [0, 0, 1.15], [0, 0, 1.4], [0, 0.05, 1.55], [0, 0, 1.72], [0.18, 0, 1.4], [0.2, 0, 1.1],
    [0.2, 0.05, 0.85], [-0.18, 0, 1.4], [-0.2, 0, 1.1], [-0.2, 0.05, 0.85]])


def _figure(pos_xy: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """(T, 17, 3) float32: the figure at floor positions (T, 2), facing ``heading`` (T,) radians."""
    fwd = np.stack([np.cos(heading), np.sin(heading)], -1)
    lat = np.stack([np.sin(heading), -np.cos(heading)], -1)
    xy = pos_xy[:, None] + BODY[None, :, 0:1] * lat[:, None] + BODY[None, :, 1:2] * fwd[:, None]
    z = np.broadcast_to(BODY[None, :, 2:3], xy.shape[:2] + (1,))
    return np.concatenate([xy, z], -1).astype(np.float32)


def circle_walk(radius=1.5, speed=1.2, fps=50, centre=(10.0, -4.0)) -> np.ndarray:
    T = int(2 * math.pi * radius / speed * fps)
    a = np.arange(T) / T * 2 * math.pi
    return _figure(np.array(centre) + radius * np.stack([np.cos(a), np.sin(a)], -1), a + math.pi / 2)


def straight_walk(length=20.0, speed=1.4, fps=50, start=(-3.0, 7.0), heading=0.3) -> np.ndarray:
    T = int(length / speed * fps)
    s = np.arange(T) / fps * speed
    return _figure(np.array(start) + s[:, None] * np.array([math.cos(heading), math.sin(heading)]),
                   np.full(T, heading))


def _check_segment(seg: PlacedSegment, source: np.ndarray, k: int):
    """Structural checks that hold for any segment, fitted or flagged."""
    n = seg.stop - seg.start
    assert seg.joints_world.shape == (n, 17, 3) and seg.joints_world.dtype == np.float32
    src = source[seg.start:seg.stop].astype(np.float64)
    placed = seg.joints_world.astype(np.float64)
    # heights untouched (feet stay on the floor), motion moved rigidly in the floor plane
    np.testing.assert_allclose(placed[..., 2], src[..., 2], atol=1e-5)
    d_src = np.linalg.norm(src[:, None] - src[:, :, None], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(placed[:, None] - placed[:, :, None], axis=-1), d_src, atol=1e-4)
    assert len(seg.views) == k
    for v in seg.views:
        assert v.detections == "projected"
        assert v.keypoints_2d.shape == (n, 17, 2) and v.keypoints_2d.dtype == np.float32
        assert v.joints_cam.shape == (n, 17, 3) and v.joints_cam.dtype == np.float32
        assert v.in_view.shape == (n, 17) and v.in_view.dtype == bool
        assert v.intrinsics.shape == (11,) and v.extrinsics.shape == (3, 4)
        # recompute the view from the stored camera vectors, independently of the placement code path
        R, t = v.extrinsics[:, :3], v.extrinsics[:, 3]
        res_w, res_h = v.intrinsics[9], v.intrinsics[10]
        np.testing.assert_allclose(v.joints_cam, placed @ R.T + t, atol=1e-4)
        px = project(placed @ R.T + t, v.intrinsics)
        np.testing.assert_allclose(v.keypoints_2d, normalize_pixels(px, res_w, res_h), atol=1e-5)
        np.testing.assert_array_equal(v.in_view, in_image(px, res_w, res_h, placed @ R.T + t))


def _covers(segments, T):
    assert segments[0].start == 0 and segments[-1].stop == T
    assert all(a.stop == b.start for a, b in zip(segments, segments[1:]))
    assert all(s.stop > s.start for s in segments)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_circle_walk_fully_in_view_h36m(seed):
    walk = circle_walk()
    segs = place_and_project(walk, rig="h36m", rng=np.random.default_rng(seed))
    assert len(segs) == 1 and segs[0].fits and (segs[0].start, segs[0].stop) == (0, len(walk))
    _check_segment(segs[0], walk, k=4)
    seg = segs[0]
    for v in seg.views:
        assert v.in_view.all() and v.in_view_fraction == 1.0  # 0 % of joints outside the image
        assert v.rig == "h36m" and v.rig_subject in H36M_SUBJECTS
        assert np.abs(v.keypoints_2d[..., 0]).max() <= 1.0
    assert sorted(v.camera_id for v in seg.views) == sorted(H36M_CAMERA_IDS)
    assert len({v.rig_subject for v in seg.views}) == 1
    # the walk was moved from (10, -4) into the volume around the origin
    root = seg.joints_world[:, 0, :2]
    centre = (root.min(0) + root.max(0)) / 2
    assert np.linalg.norm(centre) < 1.5
    # and it really is a circle there: constant distance from its own centre
    np.testing.assert_allclose(np.linalg.norm(root - centre, axis=-1), 1.5, atol=0.01)


def test_straight_20m_walk_is_split_into_fitting_pieces():
    walk = straight_walk()
    segs = place_and_project(walk, rig="h36m", rng=7, min_segment_frames=50)
    _covers(segs, len(walk))
    assert len(segs) >= 2  # 20 m cannot fit any H36M view
    for seg in segs:
        _check_segment(seg, walk, k=4)
        if seg.fits:
            assert all(v.in_view.all() for v in seg.views)
        else:  # flagged pieces are honest about it
            assert not all(v.in_view.all() for v in seg.views)
    # fitting pieces are what the splitter aims for: here every piece fits and none is tiny
    assert all(s.fits for s in segs)
    assert min(s.stop - s.start for s in segs) >= 50
    # each piece spans at most the room: < 8 m of walking
    assert max(s.stop - s.start for s in segs) * 1.4 / 50 < 8.0


def test_unfittable_motion_is_flagged_not_dropped():
    giant = circle_walk() * np.float32(2.5)  # a 4.3 m tall figure on a 3.75 m circle
    segs = place_and_project(giant, rig="h36m", rng=0, min_segment_frames=100)
    _covers(segs, len(giant))
    assert not any(s.fits for s in segs)
    assert all(s.joints_out_fraction > 0 for s in segs)
    for seg in segs:
        _check_segment(seg, giant, k=4)


def test_deterministic_by_seed():
    walk = straight_walk(length=8.0)
    a = place_and_project(walk, rng=np.random.default_rng(3))
    b = place_and_project(walk, rng=np.random.default_rng(3))
    c = place_and_project(walk, rng=np.random.default_rng(4))
    assert [(s.start, s.stop) for s in a] == [(s.start, s.stop) for s in b]
    for sa, sb in zip(a, b):
        np.testing.assert_array_equal(sa.joints_world, sb.joints_world)
        for va, vb in zip(sa.views, sb.views):
            assert (va.camera_id, va.rig_subject) == (vb.camera_id, vb.rig_subject)
            np.testing.assert_array_equal(va.keypoints_2d, vb.keypoints_2d)
    assert not np.array_equal(a[0].joints_world, c[0].joints_world)
    # an int seed works like a Generator seeded with it
    d = place_and_project(walk, rng=3)
    np.testing.assert_array_equal(d[0].joints_world, a[0].joints_world)


def test_3dhp_random_k_cameras():
    walk = circle_walk(radius=0.5)
    segs = place_and_project(walk, rig="3dhp", cameras_per_sequence=3, rng=11)
    _covers(segs, len(walk))
    ids = [v.camera_id for v in segs[0].views]
    assert len(set(ids)) == 3 and all(0 <= int(i) < 14 for i in ids)
    for seg in segs:
        _check_segment(seg, walk, k=3)
        assert all(v.rig == "3dhp" and v.rig_subject == "" for v in seg.views)
        assert seg.fits and all(v.in_view.all() for v in seg.views)
    # different seeds pick different camera sets (over a few draws)
    picks = {tuple(v.camera_id for v in place_and_project(walk[:20], rig="3dhp", cameras_per_sequence=3,
                                                           rng=s)[0].views) for s in range(6)}
    assert len(picks) > 1


def test_fewer_h36m_cameras_come_from_one_subject():
    segs = place_and_project(circle_walk(radius=1.0), rig="h36m", cameras_per_sequence=2, rng=5)
    views = segs[0].views
    assert len(views) == 2 and views[0].rig_subject == views[1].rig_subject
    rig = {c.id: c for c in h36m_rig(views[0].rig_subject)}
    for v in views:
        np.testing.assert_array_equal(v.extrinsics, rig[v.camera_id].extrinsics_matrix())


def test_invalid_settings():
    walk = circle_walk()[:10]
    with pytest.raises(ConfigError):
        place_and_project(walk, rig="h36m", cameras_per_sequence=5)
    with pytest.raises(ConfigError):
        place_and_project(walk, rig="cmu")
    with pytest.raises(ValueError):
        place_and_project(walk[..., :2])
    bad = walk.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError):
        place_and_project(bad)


def _look_at(centre, target):
    """Camera (z forward, y down, z-up world) at ``centre`` looking at ``target``."""
    z = np.asarray(target, float) - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return Camera(rig="h36m", id="x", subject="", res_w=1000, res_h=1000, fx=1000.0, fy=1000.0, cx=500.0, cy=500.0,
                  k=(0.0, 0.0, 0.0), p=(0.0, 0.0), R=tuple(map(tuple, R)), t=tuple(-R @ centre))


def test_capture_volume_centre():
    # three cameras aimed at (1, 2, 1) from different sides: the floor point below it
    target = np.array([1.0, 2.0, 1.0])
    cams = [_look_at(np.array(c), target) for c in ([5.0, 2.0, 1.5], [1.0, -3.0, 2.0], [-3.0, 5.0, 1.2])]
    np.testing.assert_allclose(capture_volume_centre(cams), [1.0, 2.0, 0.0], atol=1e-9)
    # Human3.6M subjects stand near the world origin
    c = capture_volume_centre([cam for s in H36M_SUBJECTS for cam in h36m_rig(s)])
    assert np.hypot(c[0], c[1]) < 0.6 and c[2] == 0.0
