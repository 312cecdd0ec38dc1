"""Mesh-free joint regression against smplx's full forward pass on the procedural SMPL+H model."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch

from pipelines.body_model import load_body_models, load_regressor
from pipelines.regressor_order import check_regressor_sides, resolve_regressor_order
from tests.support.smplx_reference import reference_joints
from pipelines.regress import JointRegressor, rodrigues_soa
from pipelines.synthetic.body_model import write_body_model_tree
from schemas.skeletons import H36M_17


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("bodymodels")
    files = write_body_model_tree(root, seed=3)
    models = load_body_models(root)
    # the file has SPIN's row order; the tests below use it in H36M_17 order
    reg, _ = resolve_regressor_order(load_regressor(files["J_regressor_h36m"]), list(models.values()))
    return root, files, models, reg


def regress_joints(model, regressor, poses, trans, betas, dmpls=None) -> np.ndarray:
    """(T, N, 3) joints, the way a build calls the regressor: contract for ``betas``, then all frames."""
    return JointRegressor.from_model(model, regressor, betas)(poses, trans, dmpls)


def rodrigues(r: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) through the regressor's components-first ``rodrigues_soa``."""
    r = np.asarray(r, dtype=np.float64)
    flat = rodrigues_soa(r.reshape(-1, 3).T)  # (3, 3, n)
    return np.moveaxis(flat, (0, 1), (-2, -1)).reshape(r.shape + (3,))


def _motion(seed: int, T: int = 24):
    rng = np.random.default_rng(seed)
    poses = rng.normal(0.0, 0.5, (T, 156))  # body and both hands
    trans = rng.normal(0.0, 1.0, (T, 3))
    betas = rng.uniform(-3.0, 3.0, 16)
    dmpls = rng.normal(0.0, 2.0, (T, 8))
    return poses, trans, betas, dmpls


@pytest.mark.parametrize("gender", ["male", "female"])
def test_matches_smplx_full_forward(tree, gender):
    root, files, models, reg = tree
    poses, trans, betas, dmpls = _motion(seed={"male": 1, "female": 4}[gender])
    ours = regress_joints(models[gender], reg, poses, trans, betas, dmpls)
    # Reference loads the files itself (model + DMPL) and runs smplx over the whole mesh.
    ref = reference_joints(files[f"smplh_{gender}"], reg, poses, trans, betas, dmpls,
                           dmpl_path=files[f"dmpl_{gender}"])
    assert ours.dtype == np.float32 and ours.shape == (len(poses), 17, 3)
    assert np.abs(ours - ref).max() <= 1e-5
    # The model's own 52-joint regressor goes through the same contraction.
    own = regress_joints(models[gender], models[gender].J_regressor, poses, trans, betas, dmpls)
    own_ref = reference_joints(models[gender], models[gender].J_regressor, poses, trans, betas, dmpls)
    assert np.abs(own - own_ref).max() <= 1e-5


def test_all_sixteen_betas_and_dmpls_are_used(tree):
    _, _, models, reg = tree
    model = models["male"]
    poses, trans, betas, dmpls = _motion(seed=5, T=8)
    full = regress_joints(model, reg, poses, trans, betas, dmpls)
    cut = betas.copy()
    cut[10:] = 0.0
    truncated = regress_joints(model, reg, poses, trans, cut, dmpls)
    assert np.abs(full - truncated).max() > 5e-3  # betas 10..15 move joints by millimetres to cm
    no_dmpl = regress_joints(model, reg, poses, trans, betas, None)
    assert np.abs(full - no_dmpl).max() > 1e-4  # DMPLs move the regressed joints too
    # and the reference agrees on both, so it is not silently truncating either
    ref = reference_joints(model, reg, poses, trans, betas, dmpls)
    assert np.abs(full - ref).max() <= 1e-5


def test_agrees_with_plain_smplx_loading_the_file(tree):
    """smplx loading the .npz itself (it keeps 10 betas, adds no DMPL): same joints for 10 betas."""
    import smplx

    root, files, models, reg = tree
    poses, trans, betas, _ = _motion(seed=9, T=6)
    betas[10:] = 0.0
    body = smplx.SMPLH(model_path=str(files["smplh_female"]), ext="npz", use_pca=False, num_betas=16,
                       flat_hand_mean=True, batch_size=len(poses), dtype=torch.float64)
    p = torch.tensor(poses)
    with torch.no_grad():
        verts = body(betas=torch.tensor(betas[None, :10]).expand(len(poses), -1), global_orient=p[:, :3],
                     body_pose=p[:, 3:66], left_hand_pose=p[:, 66:111], right_hand_pose=p[:, 111:],
                     transl=torch.tensor(trans)).vertices.numpy()
    ref = np.einsum("nv,tvc->tnc", reg.toarray(), verts)
    ours = regress_joints(models["female"], reg, poses, trans, betas)
    assert np.abs(ours - ref).max() < 2e-5  # smplx stores its arrays via float32


def test_rest_pose_and_rigid_motion_by_hand(tree):
    """Zero pose: R @ v_shaped. Root rotation only: rotate that about the pelvis joint, then translate."""
    _, _, models, reg = tree
    model = models["neutral"]
    betas = np.linspace(-1.0, 1.0, 16)
    v_shaped = model.v_template + model.shapedirs @ betas
    rest = reg.toarray() @ v_shaped
    pelvis = (model.J_regressor @ v_shaped)[0]
    poses = np.zeros((3, 156))
    poses[1, :3] = [0.0, np.pi / 2, 0.0]
    poses[2, :3] = [0.3, -0.2, 0.9]
    trans = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-0.5, 0.1, 0.0]])
    out = regress_joints(model, reg, poses, trans, betas)
    np.testing.assert_allclose(out[0], rest, atol=1e-6)
    # A quarter turn about +y maps (x, y, z) -> (z, y, -x).
    d = rest - pelvis
    np.testing.assert_allclose(out[1], pelvis + np.stack([d[:, 2], d[:, 1], -d[:, 0]], 1) + trans[1], atol=1e-6)
    R = rodrigues(poses[2, :3])
    np.testing.assert_allclose(out[2], pelvis + d @ R.T + trans[2], atol=1e-6)


def test_rodrigues_properties():
    rng = np.random.default_rng(0)
    r = rng.normal(0.0, 1.5, (100, 3))
    r[0] = 0.0
    r[1] = [1e-9, 0.0, 0.0]
    R = rodrigues(r)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", R, r), r, atol=1e-12)  # the axis is fixed
    np.testing.assert_allclose(R[0], np.eye(3))


def test_batching_does_not_change_results(tree):
    _, _, models, reg = tree
    poses, trans, betas, dmpls = _motion(seed=11, T=30)
    a = JointRegressor.from_model(models["male"], reg, betas)(poses, trans, dmpls)
    b = JointRegressor.from_model(models["male"], reg, betas, batch=7)(poses, trans, dmpls)
    np.testing.assert_array_equal(a, b)


def test_dense_and_sparse_regressor_files_agree(tree, tmp_path):
    _, files, models, reg = tree
    dense = reg.toarray()
    scipy.sparse.save_npz(tmp_path / "reg.npz", scipy.sparse.csc_matrix(dense))
    sparse = load_regressor(tmp_path / "reg.npz")
    assert sparse.shape == (17, 6890) and (sparse != reg).nnz == 0
    poses, trans, betas, dmpls = _motion(seed=2, T=5)
    np.testing.assert_array_equal(regress_joints(models["male"], reg, poses, trans, betas, dmpls),
                                  regress_joints(models["male"], sparse, poses, trans, betas, dmpls))


def test_regressor_rows_and_sides(tree, tmp_path):
    _, files, models, reg = tree
    dense = reg.toarray()
    assert np.all(dense >= 0.0)
    np.testing.assert_allclose(dense.sum(axis=1), 1.0, atol=1e-12)
    assert np.all((dense > 0).sum(axis=1) >= 4)
    for gender, model in models.items():
        report = check_regressor_sides(reg, model)
        assert not report["swapped"], report["message"]
        # independent of the checker: SMPL's left is +x
        x = (reg @ model.v_template)[:, 0]
        assert all(x[li] > 0.05 > -0.05 > x[ri] for li, ri in zip(H36M_17.left, H36M_17.right))
    # A file whose leg rows are swapped (as some published copies are) is detected and repairable.
    perm = np.arange(17)
    perm[[1, 2, 3, 4, 5, 6]] = [4, 5, 6, 1, 2, 3]
    np.save(tmp_path / "swapped.npy", dense[perm])
    swapped = load_regressor(tmp_path / "swapped.npy")
    report = check_regressor_sides(swapped, models["male"])
    assert report["swapped"]
    assert sorted(report["swapped_pairs"]) == ["l_ankle/r_ankle", "l_hip/r_hip", "l_knee/r_knee"]
    assert "swapped" in report["message"]
    np.testing.assert_array_equal(swapped.toarray()[report["perm"]], dense)


def test_input_validation(tree):
    _, _, models, reg = tree
    jr = JointRegressor.from_model(models["male"], reg, np.zeros(16))
    with pytest.raises(ValueError):
        jr(np.zeros((4, 153)), np.zeros((4, 3)))
    with pytest.raises(ValueError):
        jr(np.zeros((4, 156)), np.zeros((4, 3)), np.zeros((4, 7)))
    with pytest.raises(ValueError):
        JointRegressor.from_model(models["male"], reg, np.zeros(17))
