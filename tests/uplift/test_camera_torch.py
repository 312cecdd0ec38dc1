"""The torch camera model equals the numpy one (one model, two implementations) on random batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pipelines.cameras as npcam
import uplift.camera as tcam
from schemas.cameras import h36m_rig, mpi_inf_3dhp_rig


@pytest.fixture(scope="module")
def batch():
    cams = h36m_rig("S1") + h36m_rig("S11")[2:] + mpi_inf_3dhp_rig([0, 7, 12])
    intr, extr = npcam.cameras_to_arrays(cams)
    rng = np.random.default_rng(0)
    # world points around each camera's line of sight, some off-image, a few behind
    centres = np.stack([c.centre() + 4.0 * c.optical_axis() for c in cams])
    X = centres[:, None, None, :] + rng.normal(scale=1.2, size=(len(cams), 6, 17, 3))
    X[:, 0, 0] = np.stack([c.centre() - c.optical_axis() for c in cams])  # behind each camera
    return cams, intr, extr, X


def _t(a):
    return torch.as_tensor(a, dtype=torch.float64)


def test_camera_tensors_match_vectors(batch):
    cams, intr, extr, _ = batch
    ti, te = tcam.camera_tensors(cams, dtype=torch.float64)
    assert ti.shape == (len(cams), 11) and te.shape == (len(cams), 3, 4)
    np.testing.assert_array_equal(ti.numpy(), intr)
    np.testing.assert_array_equal(te.numpy(), extr)


def test_torch_equals_numpy(batch):
    cams, intr, extr, X = batch
    ti, te, tX = _t(intr), _t(extr), _t(X)
    Xc = npcam.world_to_camera(X, extr)
    tXc = tcam.world_to_camera(tX, te)
    np.testing.assert_allclose(tXc.numpy(), Xc, atol=1e-12)
    np.testing.assert_allclose(tcam.camera_to_world(tXc, te).numpy(), npcam.camera_to_world(Xc, extr), atol=1e-12)
    for distort in (True, False):
        px = npcam.project(Xc, intr, distort=distort)
        np.testing.assert_allclose(tcam.project(tXc, ti, distort=distort).numpy(), px, atol=1e-9)
    px = npcam.project(Xc, intr)
    tpx = _t(px)
    np.testing.assert_allclose(tcam.undistort_points(tpx, ti).numpy(), npcam.undistort_points(px, intr), atol=1e-12)
    w, h = intr[:, 9], intr[:, 10]
    uv = npcam.normalize_pixels(px, w, h)
    np.testing.assert_allclose(tcam.normalize_pixels(tpx, _t(w), _t(h)).numpy(), uv, atol=1e-12)
    np.testing.assert_allclose(tcam.denormalize_pixels(_t(uv), _t(w), _t(h)).numpy(), px, atol=1e-9)
    mask = npcam.in_image(px, w, h, Xc)
    assert 0 < mask.mean() < 1  # the batch really has points on both sides of the decision
    assert not mask[:, 0, 0].any()  # behind the camera
    np.testing.assert_array_equal(tcam.in_image(tpx, _t(w), _t(h), tXc).numpy(), mask)


def test_single_camera_and_float32(batch):
    cams, intr, extr, X = batch
    cam = cams[1]
    x32 = torch.as_tensor(X[1], dtype=torch.float32)
    px = tcam.project(tcam.world_to_camera(x32, torch.as_tensor(extr[1])), torch.as_tensor(intr[1]))
    assert px.dtype == torch.float32 and px.shape == (6, 17, 2)
    ref = npcam.project(npcam.world_to_camera(X[1], cam), cam)
    ok = npcam.in_image(ref, cam.res_w, cam.res_h, npcam.world_to_camera(X[1], cam))
    np.testing.assert_allclose(px.numpy()[ok], ref[ok], atol=0.05)  # float32 at ~1000 px
    # scalar resolutions work too
    uv = tcam.normalize_pixels(px, cam.res_w, cam.res_h)
    np.testing.assert_allclose(uv.numpy(), npcam.normalize_pixels(px.numpy(), cam.res_w, cam.res_h), atol=1e-6)


def test_projection_is_differentiable(batch):
    _, intr, extr, X = batch
    Xc = tcam.world_to_camera(_t(X[:2, :1, :3]), _t(extr[:2])).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: tcam.project(p, _t(intr[:2])), (Xc,))
