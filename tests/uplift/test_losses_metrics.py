"""Losses, metrics and flips against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from schemas.skeletons import H36M_17
from uplift.augment import H36M_FLIP_PERM, flip_2d, flip_3d
from uplift.losses import uplift_loss
from schemas.h36m import canonical_action
from uplift.metrics import (auc, action_average, evaluate, keyframe_split, mpjpe, n_mpjpe,
                            p_mpjpe, pck, per_action, procrustes_align)


def _pose(seed=0, j=17):
    return np.random.default_rng(seed).normal(scale=0.3, size=(j, 3))


# ---------------------------------------------------------------- losses

def test_loss_hand_computed():
    # 1 window, 3 frames, 2 joints; target zeros; root = joint 0
    target = torch.zeros(1, 3, 2, 3)
    pred = torch.zeros(1, 3, 2, 3)
    pred[0, 0, 1] = torch.tensor([0.3, 0.4, 0.0])  # frame 0: joint 1 off by 0.5 -> frame error 0.25
    pred[0, 2, 1] = torch.tensor([0.0, 0.0, 1.0])  # frame 2 (padded): error 0.5, must not count
    pred[0, 1] += 7.0  # frame 1: translated as a whole -> 0 root-relative error
    center = torch.zeros(1, 2, 3)
    center[0, 1, 2] = 0.2  # centre error: (0 + 0.2) / 2 = 0.1
    valid = torch.tensor([[True, True, False]])
    terms = uplift_loss(pred, center, target, valid)
    assert terms.seq.item() == pytest.approx(0.25 / 2)  # mean over the 2 valid frames
    assert terms.center.item() == pytest.approx(0.1)
    assert terms.total.item() == pytest.approx(0.5 * 0.125 + 0.5 * 0.1)
    # all frames valid: (0.25 + 0 + 0.5) / 3
    assert uplift_loss(pred, center, target).seq.item() == pytest.approx(0.75 / 3)


def test_loss_center_target_defaults_to_middle_frame_and_gradients_flow():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 5, 17, 3, generator=g)
    pred = target.clone().requires_grad_(True)
    center = target[:, 2].clone().requires_grad_(True)
    terms = uplift_loss(pred, center, target, torch.ones(2, 5, dtype=torch.bool))
    assert terms.total.item() == pytest.approx(0.0, abs=1e-6)
    (uplift_loss(pred + 0.1, center + 0.1, target).total).backward()
    assert pred.grad is not None and center.grad is not None


# ---------------------------------------------------------------- metrics

def test_mpjpe_hand_computed():
    gt = np.zeros((3, 3))
    gt[1] = [1, 0, 0]
    gt[2] = [0, 1, 0]
    pred = gt.copy()
    pred[2] = [0, 1, 0.3]
    assert mpjpe(pred, gt) == pytest.approx(0.1)
    assert mpjpe(pred + 5.0, gt) == pytest.approx(0.1)  # root-relative
    assert mpjpe(pred + 5.0, gt, root=None) == pytest.approx(np.linalg.norm([5, 5, 5]) * 2 / 3 + np.linalg.norm([5, 5, 5.3]) / 3)


def test_n_mpjpe_removes_scale_only():
    gt = _pose(1)
    assert n_mpjpe(2.5 * gt + 1.0, gt) == pytest.approx(0.0, abs=1e-12)
    rot = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    assert n_mpjpe(gt @ rot.T, gt) > 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_p_mpjpe_zero_for_similarity_copy(seed):
    gt = _pose(seed)
    rng = np.random.default_rng(seed + 10)
    rot = Rotation.random(random_state=seed).as_matrix()
    pred = 0.7 * gt @ rot.T + rng.normal(size=3)
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-10)
    assert mpjpe(pred, gt) > 0.01


def test_p_mpjpe_batched_and_no_reflection():
    gts = np.stack([_pose(s) for s in range(4)])
    preds = gts + np.random.default_rng(0).normal(scale=0.01, size=gts.shape)
    batched = p_mpjpe(preds, gts)
    assert batched.shape == (4,)
    np.testing.assert_allclose(batched, [p_mpjpe(p, g) for p, g in zip(preds, gts)])
    assert np.all(batched <= mpjpe(preds, gts) + 1e-12)  # alignment never hurts
    mirrored = gts[0] * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, gts[0]) > 0.01  # a reflection is not a rotation
    # alignment of a point set onto itself is the identity
    np.testing.assert_allclose(procrustes_align(gts[1], gts[1]), gts[1], atol=1e-12)


def test_pck_and_auc_hand_computed():
    gt = np.zeros((4, 3))
    gt[1:, 0] = [1.0, 2.0, 3.0]
    pred = gt.copy()
    pred[1, 1] = 0.012  # 12 mm
    pred[2, 1] = 0.102  # 102 mm
    pred[3, 1] = 0.200  # 200 mm
    assert pck(pred, gt) == pytest.approx(3 / 4)  # root + 12 mm + 102 mm within 150 mm
    assert pck(pred, gt, joints=[1, 3]) == pytest.approx(1 / 2)
    # thresholds 5..150 mm (30): root always in; 12 mm in for 15..150 (28); 102 mm for 105..150 (10)
    assert auc(pred, gt) == pytest.approx((30 + 28 + 10 + 0) / (4 * 30))


def test_action_average_weighs_actions_equally():
    values = np.array([1.0, 1.0, 1.0, 4.0])
    actions = ["Walking 1", "Walking", "Walking 2", "TakingPhoto"]
    assert canonical_action("SittingDown 2") == "SittingDown" and canonical_action("WalkingDog 1") == "WalkDog"
    assert per_action(values, actions) == {"Photo": 4.0, "Walking": 1.0}
    assert action_average(values, actions) == pytest.approx(2.5)  # frame mean would be 1.75


def test_keyframe_split():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    res = keyframe_split(values, [0, 1, 2, 3, 4], s_in=2)
    assert res == {"key": 3.0, "non_key": 3.0, "all": 3.0}
    res = keyframe_split(values, [0, 1, 2, 3, 4], s_in=4)
    assert res["key"] == pytest.approx(3.0) and res["non_key"] == pytest.approx(3.0)
    assert keyframe_split([1.0, 9.0], [10, 11], s_in=5) == {"key": 1.0, "non_key": 9.0, "all": 5.0}


def test_evaluate_summary():
    gt = np.stack([_pose(s) for s in range(3)])
    out = evaluate(gt * 1.1, gt, actions=["Eating", "Eating 2", "Smoking"])
    assert out["n_mpjpe"] == pytest.approx(0.0, abs=1e-12) and out["p_mpjpe"] == pytest.approx(0.0, abs=1e-12)
    assert out["mpjpe"] > 0 and "mpjpe_action" in out


# ---------------------------------------------------------------- flips

def test_flip_permutation_swaps_sides():
    names = H36M_17.joints
    for i, j in enumerate(H36M_FLIP_PERM):
        a, b = names[i], names[j]
        assert a == b or {a[:2], b[:2]} == {"l_", "r_"} and a[2:] == b[2:]


def _project(x3d, f, c):
    return f * x3d[..., :2] / x3d[..., 2:] + c


def test_flip_is_consistent_with_projection_for_off_centre_principal_point():
    rng = np.random.default_rng(0)
    x3d = rng.normal(scale=0.3, size=(5, 17, 3)) + np.array([0.2, 0.0, 4.0])
    f, c = np.array([1.1, 1.1]), np.array([0.08, -0.03])  # principal point off the image centre
    x2d = _project(x3d, f, c)
    mirrored_3d = flip_3d(x3d)
    # camera kept: the mirrored scene projects to x -> 2 c_x - x
    np.testing.assert_allclose(flip_2d(x2d, principal_point=c), _project(mirrored_3d, f, c), atol=1e-12)
    # image flipped: x -> -x with the flipped principal point (c_x -> -c_x)
    np.testing.assert_allclose(flip_2d(x2d), _project(mirrored_3d, f, c * [-1.0, 1.0]), atol=1e-12)
    # naive x -> -x with the original camera is wrong when c_x != 0
    assert not np.allclose(flip_2d(x2d), _project(mirrored_3d, f, c))
    np.testing.assert_allclose(flip_3d(mirrored_3d), x3d)  # self-inverse


def test_flip_torch_batch_per_sample_principal_points():
    """The test-time flip (uplift.evaluate, uplift.infer) on a torch batch, one principal point per
    window broadcast over its frames; the inputs stay untouched."""
    g = torch.Generator().manual_seed(0)
    p2, p3 = torch.randn(4, 3, 17, 2, generator=g), torch.randn(4, 3, 17, 3, generator=g)
    before2, before3 = p2.clone(), p3.clone()
    pp = torch.tensor([[0.1, 0.0], [0.2, 0.0], [0.0, 0.0], [-0.1, 0.0]])
    f2, f3 = flip_2d(p2, principal_point=pp[:, None]), flip_3d(p3)  # (B, 1, 2): one per window
    perm = list(H36M_FLIP_PERM)
    for b in range(4):
        torch.testing.assert_close(f2[b, :, :, 0], 2 * pp[b, 0] - p2[b][:, perm, 0])
        torch.testing.assert_close(f2[b, :, :, 1], p2[b][:, perm, 1])
        torch.testing.assert_close(f3[b], p3[b][:, perm] * torch.tensor([-1.0, 1.0, 1.0]))
    assert torch.equal(p2, before2) and torch.equal(p3, before3)
