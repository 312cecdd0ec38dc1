"""Per-window cameras: uplift's one torch camera kernel (``project_windows``) equals the numpy camera model
(``schemas.cameras``) on the published cameras; the window stream's per-window batches and separate flipped
copies (checked against numpy references)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import schemas.cameras as npcam
from pipelines.writer import CorpusWriter
from schemas.reader import open_corpus
from schemas.records import SequenceData, ViewData
from schemas.cameras import H36M_SUBJECTS, all_rig_cameras, h36m_rig, mpi_inf_3dhp_rig
from schemas.skeletons import H36M_17
from uplift.stream import StreamConfig, WindowStream
from uplift.windows import window_indices
from uplift.views import project_windows, rig_pool

PERM = H36M_17.flip_permutation


def _walk(n, rng):
    """(n, 17, 3) world joints: a person ~1.7 m tall walking slowly, floor at z = 0, off the origin."""
    body = rng.normal(scale=0.15, size=(17, 3))
    body[:, 2] = np.linspace(0.1, 1.7, 17)
    body[0] = (0, 0, 0.9)
    t = np.arange(n)[:, None] / 50.0
    root = np.c_[1.5 + 0.5 * t, -0.7 + 0.2 * np.sin(t), np.zeros_like(t)]
    return (body[None] + root[:, None]).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("pw") / "c"
    w = CorpusWriter(path, num_joints=17, fps=50.0)
    for i, (n, src) in enumerate([(60, "amass"), (130, "amass"), (45, "h36m"), (80, "amass")]):
        jw = _walk(n, rng)
        views = []
        for c in range(2):  # stored views: marked by value, never used for AMASS in per-window mode
            kp = np.full((n, 17, 2), 100 * i + c, np.float32)
            views.append(ViewData("h36m", str(c), "S1", "projected" if src == "amass" else "gt", kp,
                                  rng.normal(size=(n, 17, 3)).astype(np.float32), np.ones((n, 17), bool),
                                  np.zeros(11), np.zeros((3, 4))))
        w.add(SequenceData(key=f"{src}/{i}", source=src, joints_world=jw, views=views, split="train",
                           subject="S1", action="a"))
    w.commit("per-window test", tag="v1")
    return open_corpus(f"{path}@v1")


CFG = StreamConfig(seq_len=9, s_out=2, s_in=(2, 4), batch_size=16, block_frames=32, buffer_blocks=3,
                   cameras="per-window")


def _reference(world_seq, idx, cam, mirror):
    """numpy: centre the window's root path on the rig centre, mirror, project (schemas/cameras.py)."""
    _, _, centre = rig_pool("h36m")
    w = world_seq[idx].astype(np.float64)
    r = w[:, 0, :2]
    w[..., :2] += np.asarray(centre) - 0.5 * (r.max(0) + r.min(0))
    if mirror:
        w = w[:, PERM]
        w[..., 0] = 2 * centre[0] - w[..., 0]
    xc = npcam.world_to_camera(w, cam)
    px = npcam.project(xc, cam)
    return (npcam.normalize_pixels(px, cam.res_w, cam.res_h), xc - xc[:, :1],
            npcam.in_image(px, cam.res_w, cam.res_h, xc))


def test_rig_pools():
    intr, extr, centre = rig_pool("h36m")
    assert intr.shape == (28, 11) and extr.shape == (28, 3, 4)  # 7 subjects x 4 cameras
    assert rig_pool("3dhp")[0].shape == (14, 11)
    assert abs(centre[0]) < 1.0 and abs(centre[1]) < 1.0  # H36M's volume is near the world origin
    for rig in ("h36m", "3dhp"):  # the stored vectors of the rig's cameras, in order, rounded to float32
        intr, extr, centre = rig_pool(rig)
        ref_i, ref_e = npcam.cameras_to_arrays(all_rig_cameras(rig))
        assert intr.dtype == extr.dtype == torch.float32
        np.testing.assert_array_equal(intr.numpy(), ref_i.astype(np.float32))
        np.testing.assert_array_equal(extr.numpy(), ref_e.astype(np.float32))
        np.testing.assert_allclose(centre, npcam.capture_volume_centre(all_rig_cameras(rig))[:2], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------
# the torch kernel against the numpy camera model, on the published cameras

@pytest.fixture(scope="module")
def published():
    """Every published camera (28 H36M + 14 3DHP) with world points around its line of sight: (C, 6, 17, 3)
    float64, some off the image, one behind each camera, one far to the side (clamped by the model)."""
    cams = all_rig_cameras("h36m") + mpi_inf_3dhp_rig()
    intr, extr = npcam.cameras_to_arrays(cams)
    rng = np.random.default_rng(0)
    centres = np.stack([c.centre() + 4.0 * c.optical_axis() for c in cams])
    X = centres[:, None, None, :] + rng.normal(scale=1.2, size=(len(cams), 6, 17, 3))
    X[:, 0, 0] = np.stack([c.centre() - c.optical_axis() for c in cams])  # behind each camera
    right = np.stack([np.asarray(c.R)[0] for c in cams])  # camera +x in world coordinates
    X[:, 0, 1] = np.stack([c.centre() + c.optical_axis() for c in cams]) + 3.0 * right  # |x/z| = 3: clamped
    return cams, intr, extr, X


def _numpy_model(X, intr, extr, perm=None, mirror_x=None):
    """``schemas.cameras`` on windows (C, N, J, 3): normalised 2D, pixels, root-relative camera joints, in view."""
    if perm is not None:
        X = X[:, :, list(perm)].copy()
        X[..., 0] = 2.0 * mirror_x - X[..., 0]
    xc = npcam.world_to_camera(X, extr)
    px = npcam.project(xc, intr)
    w, h = intr[:, 9], intr[:, 10]
    return npcam.normalize_pixels(px, w, h), px, xc - xc[:, :, :1], npcam.in_image(px, w, h, xc)


@pytest.mark.parametrize("mirrored", [False, True])
def test_kernel_equals_numpy_model_in_float64(published, mirrored):
    cams, intr, extr, X = published
    mirror = torch.full((len(cams),), mirrored)
    kp, j3, iv = project_windows(torch.as_tensor(X), torch.as_tensor(intr), torch.as_tensor(extr), mirror, (0.3, -0.2),
                                 PERM, centre_path=False)
    assert kp.dtype == j3.dtype == torch.float64
    uv, px, rel, mask = _numpy_model(X, intr, extr, PERM if mirrored else None, 0.3)
    assert 0.3 < mask.mean() < 0.95  # points on both sides of the decision
    w, h = intr[:, 9], intr[:, 10]
    seen = np.isfinite(px).all(-1)  # (the point on the camera's plane has no pixel)
    np.testing.assert_allclose(npcam.denormalize_pixels(kp.numpy(), w, h)[seen], px[seen], rtol=0, atol=1e-9)  # px
    np.testing.assert_allclose(kp.numpy()[seen], uv[seen], rtol=0, atol=1e-12)
    np.testing.assert_allclose(j3.numpy(), rel, rtol=0, atol=1e-9)  # metres
    np.testing.assert_array_equal(iv.numpy(), mask)
    if not mirrored:
        assert not iv[:, 0, 0].any() and not iv[:, 0, 1].any()  # behind the camera; clamped by the model


def test_kernel_flags_clamped_points_out_of_view():
    """A wide lens (fx = 200 px on a 1000 px image) puts the model's clamp |x/z| <= 1 inside the picture: a
    point beyond it lands on a pixel in the image, and only the clamp test flags it (the published lenses
    never see that far)."""
    wide = npcam.Camera(rig="h36m", id="wide", subject="", res_w=1000, res_h=1000, fx=200.0, fy=200.0, cx=500.0,
                        cy=500.0, k=(-0.05, 0.01, 0.0), p=(0.001, -0.002), R=tuple(map(tuple, np.eye(3))), t=(0.0, 0.0, 0.0))
    intr, extr = npcam.cameras_to_arrays([wide])
    X = np.array([[[[0.5, 0.2, 2.0], [6.0, 0.5, 2.0], [0.3, -5.0, 2.0], [1.9, 1.9, 2.0]]]])  # (1, 1, 4, 3) camera frame
    kp, j3, iv = project_windows(torch.as_tensor(X), torch.as_tensor(intr), torch.as_tensor(extr), None, (0.0, 0.0),
                                 [0, 1, 2, 3], centre_path=False)
    uv, px, rel, mask = _numpy_model(X, intr, extr)
    inside = (px >= 0).all(-1) & (px[..., 0] < 1000) & (px[..., 1] < 1000)
    assert inside.all() and mask.tolist() == [[[True, False, False, True]]]
    np.testing.assert_array_equal(iv.numpy(), mask)
    np.testing.assert_allclose(kp.numpy(), uv, rtol=0, atol=1e-12)


def test_kernel_in_float32_is_within_float_rounding(published):
    cams, intr, extr, X = published
    f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    kp, j3, iv = project_windows(f32(X), f32(intr), f32(extr), None, (0.0, 0.0), PERM, centre_path=False)
    assert kp.dtype == j3.dtype == torch.float32
    uv, px, rel, mask = _numpy_model(X, intr, extr)
    w, h = intr[:, 9], intr[:, 10]
    got_px = npcam.denormalize_pixels(kp.numpy().astype(np.float64), w, h)
    np.testing.assert_allclose(got_px[mask], px[mask], rtol=0, atol=0.05)  # float32 at ~1000 px
    np.testing.assert_allclose(kp.numpy()[mask], uv[mask], rtol=0, atol=2e-4)
    np.testing.assert_allclose(j3.numpy(), rel, rtol=0, atol=2e-5)
    assert (iv.numpy() == mask).mean() > 0.999  # only points within rounding of an image edge may differ


def test_kernel_is_differentiable(published):
    _, intr, extr, X = published
    pts = torch.as_tensor(X[:2, :1, 2:5]).requires_grad_(True)  # in front of the camera
    kernel = lambda p: project_windows(p, torch.as_tensor(intr[:2]), torch.as_tensor(extr[:2]), None,  # noqa: E731
                                       (0.0, 0.0), [0, 1, 2], centre_path=False)[0]
    assert torch.autograd.gradcheck(kernel, (pts,))


def test_per_window_batches_match_numpy_projection(corpus):
    pool = [c for s in H36M_SUBJECTS for c in h36m_rig(s)]
    ds = WindowStream(corpus, CFG, split="train")
    views = ds.views
    # one view per AMASS sequence, both views of the H36M sequence
    assert sorted(views["camera_id"].to_pylist()) == ["0", "0", "0", "0", "1"]
    seq_of = dict(zip(corpus.sequences["sequence_id"].to_pylist(), range(corpus.sequences.num_rows)))
    seqs = [corpus.read_sequence(k) for k in corpus.sequences["key"].to_pylist()]
    checked, cams = 0, Counter()
    for b in ds:
        h = len(b["view"]) // 2
        for i in range(len(b["view"])):
            v, t, cam = int(b["view"][i]), int(b["frame"][i]), int(b["camera"][i])
            src = views["source"][v].as_py()
            if src != "amass":
                assert cam == -1 and float(b["keypoints_2d"][i % h, 0, 0, 1]) == 100 * 2 + int(views["camera_id"][v].as_py())
                continue
            assert cam >= 0 and (i < h or cam == int(b["camera"][i - h]))  # the flipped copy: same camera
            cams[cam] += 1
            n = int(views["n_frames"][v].as_py())
            idx, _ = window_indices(t, n, 5, 2)
            jw = seqs[seq_of[views["sequence_id"][v].as_py()]]["joints_world"]
            kp, j3, iv = _reference(jw, idx, pool[cam], mirror=i >= h)
            np.testing.assert_allclose(b["keypoints_2d"][i].numpy(), kp, atol=2e-4)
            np.testing.assert_allclose(b["joints_3d"][i].numpy(), j3, atol=2e-5)
            assert b["in_view"][i].numpy().tolist() == iv.tolist()
            checked += 1
    assert checked > 100 and len(cams) > 15  # many of the 28 cameras drawn
    ds.set_epoch(1)  # a new draw every epoch
    b0 = next(iter(ds))
    ds.set_epoch(0)
    assert not torch.equal(next(iter(ds))["camera"], b0["camera"])


def test_per_window_resume_is_exact(corpus):
    ds = WindowStream(corpus, CFG, split="train")
    ds.set_epoch(2)
    full = list(ds)
    ds2 = WindowStream(corpus, CFG, split="train")
    ds2.set_epoch(2, start_batch=5)
    rest = list(ds2)
    assert len(rest) == len(full) - 5
    for a, b in zip(full[5:], rest):
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_separate_flipped_copies(corpus):
    cfg = StreamConfig(seq_len=9, s_out=2, s_in=(2,), batch_size=16, block_frames=32, buffer_blocks=3,
                       in_batch_flip=False, drop_last=False)
    ds = WindowStream(corpus, cfg, split="train")
    seen = Counter()
    plain = {}
    flipped = {}
    for b in ds:
        ids = list(zip(b["view"].tolist(), b["frame"].tolist(), b["flipped"].tolist()))
        assert len(set(ids)) == len(ids)  # no in-batch pairs: every sample of a batch is distinct
        for i, key in enumerate(ids):
            seen[key[:2]] += 1
            (flipped if key[2] else plain)[key[:2]] = (b["keypoints_2d"][i], b["joints_3d"][i])
    n = sum(ds.views["n_frames"].to_pylist())
    assert len(seen) == n and set(seen.values()) == {2}  # each window once plain, once flipped
    assert ds.batches_per_epoch() == -(-2 * n // 16)
    for key, (kp, j3) in plain.items():
        fk, fj = flipped[key]
        torch.testing.assert_close(fk, kp[:, PERM] * torch.tensor([-1.0, 1.0]))
        torch.testing.assert_close(fj, j3[:, PERM] * torch.tensor([-1.0, 1.0, 1.0]))


# Plain references for what project_windows fuses (centring the root path, mirroring in world space).
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


def test_mirror_and_centre():
    rng = np.random.default_rng(1)
    w = torch.as_tensor(_walk(20, rng))[None]
    c = centre_windows(w, (0.3, -0.2))
    r = c[0, :, 0, :2]
    torch.testing.assert_close(0.5 * (r.amax(0) + r.amin(0)), torch.tensor([0.3, -0.2]))
    torch.testing.assert_close(c[..., 2], w[..., 2])  # height untouched
    torch.testing.assert_close(mirror_world(mirror_world(c, PERM, 0.3), PERM, 0.3), c)
    intr, extr, centre = rig_pool("h36m")
    kp, j3, iv = project_windows(w.expand(28, -1, -1, -1), intr, extr, None, centre, PERM)
    assert iv.float().mean() > 0.95  # centred: the person is in the picture of (nearly) every camera
