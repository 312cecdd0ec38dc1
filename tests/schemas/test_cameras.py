"""Camera figures and the numpy camera model (``schemas.cameras``), against hand-computed values and the raw
published conventions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from schemas.cameras import (H36M_CAMERA_IDS, H36M_SUBJECTS, Camera, camera_to_world, cameras_to_arrays,
                             denormalize_pixels, h36m_camera, h36m_rig, in_image, mpi_inf_3dhp_camera, mpi_inf_3dhp_rig,
                             normalize_pixels, project, undistort_points, world_to_camera)

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"

# MPI-INF-3DHP training camera 0, copied by hand from the dataset's camera.calibration (y-up world, mm).
RAW_3DHP_0 = dict(fx=1497.693, fy=1497.103, cx=1024.704, cy=1051.394, E=np.array([
    [0.9650164, 0.00488022, 0.262144, -562.8666],
    [-0.004488356, -0.9993728, 0.0351275, 1398.138],
    [0.262151, -0.03507521, -0.9643893, 3852.623],
    [0.0, 0.0, 0.0, 1.0]]))


def _all_cameras():
    return [c for s in H36M_SUBJECTS for c in h36m_rig(s)] + mpi_inf_3dhp_rig()


def _toy_camera(k=(0.1, 0.01, 0.0), p=(0.01, 0.02)):
    return Camera(rig="h36m", id="toy", subject="", res_w=1000, res_h=1000, fx=1000.0, fy=1000.0, cx=500.0, cy=500.0,
                  k=tuple(k), p=tuple(p), R=tuple(map(tuple, np.eye(3))), t=(0.0, 0.0, 0.0))


def _qrot(q, v):
    """VideoPose3D's qrot: rotate v (..., 3) by unit quaternion q = (w, x, y, z)."""
    qvec = np.broadcast_to(q[1:], v.shape)
    uv = np.cross(qvec, v)
    uuv = np.cross(qvec, uv)
    return v + 2.0 * (q[0] * uv + uuv)


# ------------------------------------------------------------------------------------------ figures


def test_rig_sizes_and_ids():
    assert len(h36m_rig("S1")) == 4 and len(mpi_inf_3dhp_rig()) == 14
    assert [c.id for c in h36m_rig("S9")] == list(H36M_CAMERA_IDS)
    assert [c.id for c in mpi_inf_3dhp_rig()] == [str(i) for i in range(14)]
    assert (h36m_camera("S1", 0).res_w, h36m_camera("S1", 0).res_h) == (1000, 1002)
    assert (h36m_camera("S1", 1).res_w, h36m_camera("S1", 1).res_h) == (1000, 1000)
    assert mpi_inf_3dhp_camera(5).res_w == 2048 and mpi_inf_3dhp_camera(5).subject == ""
    with pytest.raises(KeyError):
        h36m_camera("S2", 0)
    with pytest.raises(IndexError):
        mpi_inf_3dhp_camera(14)


def test_h36m_cameras_stand_around_the_origin_at_head_height():
    # Known geometry: 4 cameras ~1.5 m above the floor, 4-6 m from the origin, looking at it.
    for s in H36M_SUBJECTS:
        for cam in h36m_rig(s):
            c = cam.centre()
            assert 1.3 < c[2] < 1.8 and 3.5 < np.hypot(c[0], c[1]) < 6.0
            to_origin = -c / np.linalg.norm(c)
            assert cam.optical_axis() @ to_origin > 0.97


def test_h36m_extrinsics_match_videopose3d_qrot():
    # X_cam = qrot(qinverse(q), X_world - t), done independently with VideoPose3D's formula.
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(50, 3))
    cam = h36m_camera("S5", 2)
    q = np.array([0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576])
    t = np.array([-1620.5948486328125, 5171.65869140625, 1496.43701171875]) / 1000.0
    q_inv = q * np.array([1, -1, -1, -1])
    expected = _qrot(q_inv, X - t)
    np.testing.assert_allclose(world_to_camera(X, cam), expected, atol=1e-6)


@pytest.mark.skipif(not (REFERENCE / "h36m_cameras.json").exists(), reason="reference JSON absent")
def test_h36m_literals_equal_reference_json():
    ref = json.loads((REFERENCE / "h36m_cameras.json").read_text())
    assert sorted(ref["extrinsics"]) == sorted(H36M_SUBJECTS)
    assert [c["id"] for c in ref["intrinsics"]] == list(H36M_CAMERA_IDS)
    X = np.random.default_rng(1).uniform(-2, 2, size=(20, 3))
    for s, extr in ref["extrinsics"].items():
        for i, (intr, e) in enumerate(zip(ref["intrinsics"], extr)):
            cam = h36m_camera(s, i)
            assert (cam.fx, cam.fy) == tuple(intr["focal_length"])
            assert (cam.cx, cam.cy) == tuple(intr["center"])
            assert cam.k == tuple(intr["radial_distortion"])
            assert cam.p == tuple(intr["tangential_distortion"])
            assert (cam.res_w, cam.res_h) == (intr["res_w"], intr["res_h"])
            q = np.array(e["orientation"])
            t = np.array(e["translation"]) / 1000.0
            np.testing.assert_allclose(cam.centre(), t, atol=1e-9)
            np.testing.assert_allclose(world_to_camera(X, cam), _qrot(q * [1, -1, -1, -1], X - t), atol=1e-6)


@pytest.mark.skipif(not (REFERENCE / "mpi_inf_3dhp_cameras.json").exists(), reason="reference JSON absent")
def test_3dhp_literals_equal_reference_json():
    ref = json.loads((REFERENCE / "mpi_inf_3dhp_cameras.json").read_text())
    rng = np.random.default_rng(2)
    for raw in ref["cameras"]:
        cam = mpi_inf_3dhp_camera(raw["id"])
        assert (cam.fx, cam.fy, cam.cx, cam.cy) == (raw["fx"], raw["fy"], raw["cx"], raw["cy"])
        assert (cam.res_w, cam.res_h) == tuple(ref["size"])
        E = np.array(raw["extrinsic_world_to_camera_row_major"], dtype=float).reshape(4, 4)
        X_yup_mm = rng.uniform(-1500, 1500, size=(20, 3))
        Xc_mm = X_yup_mm @ E[:3, :3].T + E[:3, 3]
        X_zup_m = np.stack([X_yup_mm[:, 0], -X_yup_mm[:, 2], X_yup_mm[:, 1]], axis=-1) / 1000.0
        np.testing.assert_allclose(world_to_camera(X_zup_m, cam), Xc_mm / 1000.0, atol=1e-9)


def test_3dhp_point_in_front_of_camera_0_lands_on_the_same_pixel():
    E, fx, fy, cx, cy = RAW_3DHP_0["E"], RAW_3DHP_0["fx"], RAW_3DHP_0["fy"], RAW_3DHP_0["cx"], RAW_3DHP_0["cy"]
    Xc_mm = np.array([200.0, -100.0, 3000.0])
    X_yup_mm = np.linalg.solve(E[:3, :3], Xc_mm - E[:3, 3])  # the raw y-up world point
    expected = np.array([fx * 200.0 / 3000.0 + cx, fy * -100.0 / 3000.0 + cy])
    # the same world point in z-up metres: up (y) becomes +z
    X_zup_m = np.array([X_yup_mm[0], -X_yup_mm[2], X_yup_mm[1]]) / 1000.0
    cam = mpi_inf_3dhp_camera(0)
    np.testing.assert_allclose(project(world_to_camera(X_zup_m, cam), cam), expected, atol=1e-6)
    # and the internal world really is z-up: camera 0 hangs at chest height (~1.5 m) above the floor
    assert 1.3 < cam.centre()[2] < 1.7


def test_intrinsics_and_extrinsics_vectors_round_trip():
    # the stored vectors are all the camera model uses: the model run on them equals the model run on the Camera
    # (camera_from_vectors, which rebuilt a Camera from them, was used only by tests and is gone)
    cam = h36m_camera("S11", 3)
    X = cam.centre() + np.array([[0.3, -0.2, 0.1], [-0.5, 0.4, 0.2]]) + 3.0 * cam.optical_axis()
    Xc = world_to_camera(X, cam.extrinsics_matrix())
    np.testing.assert_array_equal(Xc, world_to_camera(X, cam))
    np.testing.assert_array_equal(project(Xc, cam.intrinsics_vector()), project(Xc, cam))
    np.testing.assert_array_equal(cam.extrinsics_matrix(), np.hstack([np.asarray(cam.R), np.asarray(cam.t)[:, None]]))
    v = cam.intrinsics_vector()
    assert v.shape == (11,) and v[0] == cam.fx and v[4] == cam.k[0] and v[8] == cam.p[1] and v[10] == cam.res_h


# ------------------------------------------------------------------------------------------ model


@pytest.mark.parametrize("cam", _all_cameras()[::5] + [mpi_inf_3dhp_camera(13)], ids=lambda c: f"{c.rig}-{c.subject}-{c.id}")
def test_point_on_optical_axis_projects_to_principal_point(cam):
    X = cam.centre() + 3.7 * cam.optical_axis()
    np.testing.assert_allclose(project(world_to_camera(X, cam), cam), [cam.cx, cam.cy], atol=1e-6)


def test_hand_worked_distorted_points():
    cam = _toy_camera(k=(0.1, 0.01, 0.0), p=(0.01, 0.02))
    # x = (0.2, 0.4): r2 = 0.2, radial = 1.0204, tan = 0.01
    # x' = 0.2 * 1.0304 + 0.01 * 0.2 = 0.20808,  y' = 0.4 * 1.0304 + 0.02 * 0.2 = 0.41616
    np.testing.assert_allclose(project(np.array([0.4, 0.8, 2.0]), cam), [708.08, 916.16], atol=1e-9)
    # x/z = 3 is clamped to 1: r2 = 1, radial = 1.11, tan = 0.01 -> x' = 1.13, y' = 0.02
    np.testing.assert_allclose(project(np.array([6.0, 0.0, 2.0]), cam), [1630.0, 520.0], atol=1e-9)
    # without distortion: plain pinhole
    np.testing.assert_allclose(project(np.array([0.4, 0.8, 2.0]), cam, distort=False), [700.0, 900.0])
    cam2 = _toy_camera(k=(0.1, 0.0, 0.0), p=(0.01, 0.0))
    # x = (0.5, 0): r2 = .25, radial = 1.025, tan = .005 -> x' = .5 * 1.03 + .01 * .25 = .5175
    np.testing.assert_allclose(project(np.array([1.0, 0.0, 2.0]), cam2), [1017.5, 500.0], atol=1e-9)


def test_world_camera_round_trip_single_and_batched():
    rng = np.random.default_rng(3)
    cams = h36m_rig("S7") + mpi_inf_3dhp_rig([2, 11])
    X = rng.uniform(-3, 3, size=(len(cams), 10, 17, 3))
    intr, extr = cameras_to_arrays(cams)
    Xc = world_to_camera(X, extr)
    for b, cam in enumerate(cams):  # batched == one camera at a time
        np.testing.assert_allclose(Xc[b], world_to_camera(X[b], cam), atol=1e-12)
        np.testing.assert_allclose(camera_to_world(Xc[b], cam), X[b], atol=1e-9)
    np.testing.assert_allclose(camera_to_world(Xc, extr), X, atol=1e-9)
    # distances are preserved (rigid)
    np.testing.assert_allclose(np.linalg.norm(Xc[0, :, 1] - Xc[0, :, 0], axis=-1),
                               np.linalg.norm(X[0, :, 1] - X[0, :, 0], axis=-1), atol=1e-9)


def test_normalize_denormalize_round_trip_and_values():
    w, h = 1000, 1002
    np.testing.assert_allclose(normalize_pixels(np.array([[0.0, 0.0], [w, h], [w / 2, h / 2]]), w, h),
                               [[-1.0, -h / w], [1.0, h / w], [0.0, 0.0]], atol=1e-12)
    px = np.random.default_rng(4).uniform(0, 1000, size=(3, 7, 2))
    np.testing.assert_allclose(denormalize_pixels(normalize_pixels(px, w, h), w, h), px, atol=1e-9)
    # per-camera resolutions broadcast over the leading axis
    res_w, res_h = np.array([1000, 2048, 1920]), np.array([1002, 2048, 1080])
    uv = normalize_pixels(px, res_w, res_h)
    np.testing.assert_allclose(uv[2], normalize_pixels(px[2], 1920, 1080))
    np.testing.assert_allclose(denormalize_pixels(uv, res_w, res_h), px, atol=1e-9)


@pytest.mark.parametrize("cam", [h36m_camera("S1", 0), h36m_camera("S9", 3), _toy_camera()], ids=["S1-0", "S9-3", "toy"])
def test_undistort_inverts_distort(cam):
    rng = np.random.default_rng(5)
    # points over the whole image (|x/z| up to ~0.45 for H36M)
    x = rng.uniform(-0.45, 0.45, size=(200, 2))
    Xc = np.concatenate([x * 3.0, np.full((200, 1), 3.0)], axis=-1)
    np.testing.assert_allclose(undistort_points(project(Xc, cam), cam), x, atol=1e-10)
    # without distortion coefficients undistortion is the plain pinhole inverse
    assert not np.allclose(undistort_points(project(Xc, cam), cam, iters=0), x, atol=1e-4)


def test_in_image_mask():
    cam = h36m_camera("S1", 1)
    Xc = np.array([[0.0, 0.0, 3.0],  # on the axis
                   [0.0, 0.0, -3.0],  # behind
                   [2.5, 0.0, 3.0],  # far right: off the image
                   [0.0, -1.5, 3.0],  # above the image
                   [4.0, 0.0, 3.0]])  # clamped by the model
    px = project(Xc, cam)
    assert in_image(px, cam.res_w, cam.res_h, Xc).tolist() == [True, False, False, False, False]
    # pixel-edge semantics: [0, w) x [0, h)
    edge = np.array([[0.0, 0.0], [999.99, 999.99], [1000.0, 10.0], [10.0, -0.01]])
    front = np.tile([0.0, 0.0, 1.0], (4, 1))
    assert in_image(edge, 1000, 1000, front).tolist() == [True, True, False, False]


def test_in_image_flags_clamped_points_inside_the_picture():
    """A wide lens (fx = 200 px on 1000 px) puts the clamp |x/z| <= 1 inside the image: a point beyond it gets
    an in-image pixel that is not where the point is, and only the clamp test marks it out of view."""
    wide = Camera(rig="h36m", id="wide", subject="", res_w=1000, res_h=1000, fx=200.0, fy=200.0, cx=500.0, cy=500.0,
                  k=(0.0, 0.0, 0.0), p=(0.0, 0.0), R=tuple(map(tuple, np.eye(3))), t=(0.0, 0.0, 0.0))
    Xc = np.array([[1.0, 0.5, 2.0], [6.0, 0.5, 2.0], [0.3, -5.0, 2.0]])  # |x/z| 0.5; x/z = 3; y/z = -2.5
    px = project(Xc, wide)
    assert ((px >= 0) & (px < 1000)).all()  # every pixel lands in the picture
    np.testing.assert_allclose(px[1], [700.0, 550.0])  # x/z clamped to 1
    assert in_image(px, 1000, 1000, Xc).tolist() == [True, False, False]
