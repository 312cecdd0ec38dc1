"""SMPL-X end to end: the stand-in files in the released formats, the deformation transfer (reading,
checks, composition, side check), exact agreement with smplx's SMPLX forward pass + transfer +
regressor, and per-file body-model choice in the joints of one file."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse

from tests.support.smplx_reference import reference_joints_smplx
from pipelines.amass import read_amass
from pipelines.body_model import load_body_model, load_body_models, load_regressor, model_density
from pipelines.deftrafo import compose_regressor, load_deformation_transfer
from pipelines.regress import JointRegressor
from pipelines.regressor_order import resolve_regressor_order
from pipelines.sequence import resolved_regressor, resolved_smplx_regressor, sequence_joints
from pipelines.synthetic.body_model import write_body_model_tree
from pipelines.synthetic.motions import write_amass_tree
from schemas.errors import BodyModelError, DeformationTransferError, RegressorError, UnsafePickleError
from schemas.skeletons import SMPLX_55

pytestmark = pytest.mark.slow  # the SMPL-X stand-in tree alone takes ~9 s to write, the module ~20 s on 2 cores


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Body models (SMPL+H, SMPL-X, transfer) and the composed, side-resolved SMPL-X regressor."""
    root = tmp_path_factory.mktemp("bm_x")
    files = write_body_model_tree(root, seed=3, smplx=True)
    models = load_body_models(root, "smplx")
    reg, how = resolved_smplx_regressor(root, files["J_regressor_h36m"])
    return root, files, models, reg, how


def _motion(seed: int, T: int = 12, n_expression: int = 10):
    rng = np.random.default_rng(seed)
    poses = rng.normal(0.0, 0.4, (T, 165))  # root, body, jaw, eyes, both hands
    trans = rng.normal(0.0, 1.0, (T, 3))
    betas = rng.uniform(-3.0, 3.0, 16)
    expression = rng.normal(0.0, 1.5, (T, n_expression))
    return poses, trans, betas, expression


def test_stand_in_files_have_the_released_keys_shapes_and_density(tree):
    import smplx
    import torch

    root, files, models, _, _ = tree
    with np.load(files["smplx_female"], allow_pickle=False) as z:
        shapes = {k: z[k].shape for k in z.files}
    assert shapes["v_template"] == (10475, 3) and shapes["shapedirs"] == (10475, 3, 400)
    assert shapes["posedirs"] == (10475, 3, 486) and shapes["J_regressor"] == (55, 10475)
    assert shapes["weights"] == (10475, 55) and shapes["kintree_table"] == (2, 55)
    assert shapes["hands_componentsl"] == shapes["hands_componentsr"] == (45, 45)
    assert shapes["hands_meanl"] == (45,) and shapes["lmk_bary_coords"] == (51, 3)
    m = models["female"]
    assert m.model_type == "smplx" and m.num_betas == 300 and m.num_expression == 100
    assert [int(p) for p in m.parents] == list(SMPLX_55.parents)
    density = model_density(m)  # as dense as the real model where the regression's cost depends on it
    assert density["posedirs_nonzero_fraction"] == 1.0 and density["shapedirs_nonzero_fraction"] == 1.0
    assert density["bones_per_vertex_mean"] > 2.4
    # smplx loads the file itself; its rest joints are the model's
    body = smplx.SMPLX(model_path=str(files["smplx_female"]), ext="npz", use_pca=False, num_betas=16,
                       num_expression_coeffs=10, dtype=torch.float64)
    np.testing.assert_allclose(body.J_regressor.numpy() @ body.v_template.numpy(), m.rest_joints(), atol=1e-6)
    assert body.expr_dirs.shape == (10475, 3, 10)
    # the transfer pickle: {"mtx": sparse (6890, 2 x 10475)} like the published one
    raw = files["deftrafo"].read_bytes()
    assert b"mtx" in raw and b"scipy.sparse" in raw
    assert load_deformation_transfer(files["deftrafo"]).key == "mtx"


def test_the_transfer_puts_every_genders_smplx_surface_on_the_smplh_one(tree):
    """One transfer file, computed on the neutral bodies, maps each gender's SMPL-X template onto the
    SMPL+H stand-in of that gender (the meshes share their layout), within half a millimetre."""
    root, files, models, _, _ = tree
    D = load_deformation_transfer(files["deftrafo"]).matrix
    smplh = load_body_models(root, "smplh")
    for gender, m in models.items():
        err = np.linalg.norm(D @ m.v_template - smplh[gender].v_template, axis=1)
        assert err.max() < 5e-4, gender


@pytest.mark.parametrize("gender", ["male", "female", "neutral"])
def test_matches_smplx_SMPLX_forward_then_the_transfer_then_the_regressor(tree, gender):
    """Every pose part (hands, jaw, eyes), all 16 betas and 10 expression coefficients, each gender:
    the composed regressor's mesh-free joints equal smplx's full SMPL-X mesh mapped onto SMPL's 6890
    vertices by the deformation transfer and regressed there."""
    root, files, models, reg, _ = tree
    model = models[gender]
    spin_ordered, _ = resolved_regressor(str(files["J_regressor_h36m"]), str(root))
    transfer = load_deformation_transfer(files["deftrafo"]).matrix
    poses, trans, betas, expression = _motion({"male": 1, "female": 2, "neutral": 3}[gender])
    ours = JointRegressor.from_model(model, reg, betas, num_expression=10)(poses, trans, expression=expression)
    ref = reference_joints_smplx(model, files[f"smplx_{gender}"], spin_ordered, transfer, poses, trans, betas,
                                 expression)
    assert ours.dtype == np.float32 and ours.shape == (len(poses), 17, 3)
    assert np.abs(ours - ref).max() <= 1e-5
    if gender != "male":
        return
    # each part moves the joints, so the agreement above covers it (not silently zero on both sides)
    def without(**zeroed):
        p, b, e = poses.copy(), betas.copy(), expression.copy()
        for part, sl in zeroed.items():
            {"poses": p, "betas": b, "expression": e}[part.split("_")[0]][..., sl] = 0.0
        return JointRegressor.from_model(model, reg, b, num_expression=10)(p, trans, expression=e)

    for name, zeroed in {"hands": {"poses": slice(75, 165)}, "jaw": {"poses": slice(66, 69)},
                         "eyes": {"poses": slice(69, 75)}, "betas 10-15": {"betas": slice(10, 16)},
                         "expression": {"expression": slice(0, 10)}}.items():
        assert np.abs(ours - without(**zeroed)).max() > 1e-5, name


def test_hand_poses_carry_no_mean_as_amass_stores_them(tree):
    """AMASS hand poses are the full 45 values a hand (human_body_prior adds no mean): smplx with its
    default hand mean gives other joints, so the agreement above is with flat_hand_mean=True on purpose."""
    import smplx
    import torch

    root, files, models, reg, _ = tree
    model = models["neutral"]
    poses, trans, betas, _ = _motion(4, T=4)
    ours = JointRegressor.from_model(model, reg, betas)(poses, trans)
    body = smplx.SMPLX(model_path=str(files["smplx_neutral"]), ext="npz", use_pca=False, flat_hand_mean=False,
                       num_betas=16, dtype=torch.float64)
    p = torch.tensor(poses)
    verts = body(betas=torch.tensor(betas[None].repeat(4, 0)), global_orient=p[:, :3], body_pose=p[:, 3:66],
                 jaw_pose=p[:, 66:69], leye_pose=p[:, 69:72], reye_pose=p[:, 72:75], left_hand_pose=p[:, 75:120],
                 right_hand_pose=p[:, 120:165], expression=torch.zeros(4, 10, dtype=torch.float64),
                 transl=torch.tensor(trans)).vertices.numpy()
    with_mean = np.einsum("nv,tvc->tnc", reg.toarray(), verts)
    assert np.abs(ours - with_mean).max() > 1e-4


def test_side_check_runs_on_the_smplx_templates_through_the_composed_regressor(tree, tmp_path):
    """SPIN's leg rows are swapped on the SMPL-X templates too; a transfer that mirrors the body (each
    SMPL vertex read from its mirror image) makes every composed row land on the other side, and the
    check on the SMPL-X templates sees it (a build then refuses: the two families disagree)."""
    import scipy.spatial

    root, files, models, reg, how = tree
    assert how.swapped_pairs == ("l_hip/r_hip", "l_knee/r_knee", "l_ankle/r_ankle") and how.deftrafo_sha256
    raw = load_regressor(files["J_regressor_h36m"])
    D = load_deformation_transfer(files["deftrafo"])
    fixed, _ = resolve_regressor_order(compose_regressor(raw, D), list(models.values()))
    assert (fixed != reg).nnz == 0
    # mirrored transfer: row i := row of the vertex nearest to i's mirror image
    vh = load_body_models(root, "smplh")["neutral"].v_template
    _, mirror = scipy.spatial.cKDTree(vh).query(vh * [-1.0, 1.0, 1.0])
    mirrored = scipy.sparse.hstack([D.matrix[mirror], scipy.sparse.csr_matrix((6890, 10475))]).tocsc()
    bad = tmp_path / "mirrored.pkl"
    bad.write_bytes(pickle.dumps({"mtx": mirrored}, protocol=2))
    _, flipped = resolved_smplx_regressor(root, files["J_regressor_h36m"], deftrafo=bad)
    # through the mirror, SPIN's (swapped) leg rows land on the right sides and its arm rows on the wrong ones
    assert flipped.swapped_pairs == ("l_shoulder/r_shoulder", "l_elbow/r_elbow", "l_wrist/r_wrist")
    assert flipped.perm != how.perm


@pytest.mark.parametrize("case, match", [
    ("wrong shape", "has shape"),
    ("nan", "NaN"),
    ("row sums", "do not sum to 1"),
    ("absurd", "magnitude"),
    ("no key", "no 'mtx' or 'matrix'"),
    ("not a dict", "expected a pickled dict"),
    ("global", "forbidden global"),
])
def test_bad_transfer_files_are_refused(tree, tmp_path, case, match):
    _, files, _, _, _ = tree
    good = load_deformation_transfer(files["deftrafo"]).matrix.tolil()
    payload = {"mtx": good.tocsc()}
    if case == "wrong shape":
        payload = {"mtx": scipy.sparse.csc_matrix((6890, 2 * 6890))}
    elif case == "nan":
        good[5, good.rows[5][0]] = np.nan
        payload = {"mtx": good.tocsc()}
    elif case == "row sums":
        good[7] = good[7] * 0.5
        payload = {"mtx": good.tocsc()}
    elif case == "absurd":  # row sums still 1, but one weight of 1e6
        c = good.rows[9][0]
        good[9, c], good[9, (c + 1) % 10475] = 1e6, 1.0 - 1e6
        payload = {"mtx": good.tocsc()}
    elif case == "no key":
        payload = {"weights": good.tocsc()}
    elif case == "not a dict":
        payload = [good.tocsc()]
    path = tmp_path / "deftrafo.pkl"
    data = pickle.dumps(payload, protocol=2)
    if case == "global":
        data = b"cos\nsystem\n(S'echo hi'\ntR."
    path.write_bytes(data)
    with pytest.raises((DeformationTransferError, UnsafePickleError), match=match):
        load_deformation_transfer(path)


def test_transfer_under_matrix_and_without_normal_columns_is_accepted(tree, tmp_path):
    _, files, _, _, _ = tree
    good = load_deformation_transfer(files["deftrafo"]).matrix
    path = tmp_path / "copy.pkl"
    path.write_bytes(pickle.dumps({"matrix": good.tocoo()}, protocol=4))  # (6890, 10475), COO, another key
    other = load_deformation_transfer(path)
    assert other.key == "matrix" and (other.matrix != good).nnz == 0


@pytest.fixture(scope="module")
def motions(tmp_path_factory):
    root = tmp_path_factory.mktemp("amass_x")
    paths = write_amass_tree(root, n_sequences=6, seed=2, duration_s=(1.0, 1.5), smplx_fraction=0.5)
    return {p.parts[-3]: p for p in paths}


def test_one_file_gets_its_own_family_and_gender(tree, motions, tmp_path):
    """SMPL-X G, SMPL-X N and SMPL+H files through sequence_joints: each on its family's model of its
    gender; a ready (17, 10475) regressor gives the same joints as the composed one."""
    root, files, models, reg, _ = tree
    for dataset in ("SynthSOMA", "SynthMOYO", "SynthGRAB", "SynthCMU"):
        seq = read_amass(motions[dataset])
        joints = sequence_joints(seq, root, files["J_regressor_h36m"], seq.fps)
        assert joints.shape == (seq.n_frames, 17, 3)
        if seq.model_type == "smplx":
            model = models[seq.gender]
            want = JointRegressor.from_model(model, reg, seq.betas, num_expression=0 if seq.expression is None else
                                             seq.expression.shape[1])(seq.model_poses(), seq.trans,
                                                                      expression=seq.expression)
            np.testing.assert_array_equal(joints, want)
    assert read_amass(motions["SynthMOYO"]).gender == "neutral"
    assert read_amass(motions["SynthGRAB"]).expression.shape[1] == 10
    ready = tmp_path / "J_regressor_h36m_smplx.npy"
    np.save(ready, compose_regressor(load_regressor(files["J_regressor_h36m"]),
                                     load_deformation_transfer(files["deftrafo"])).toarray())
    seq = read_amass(motions["SynthSOMA"])
    a = sequence_joints(seq, root, files["J_regressor_h36m"], 50.0)
    b = sequence_joints(seq, root, "/nonexistent.npy", 50.0, smplx_regressor=ready)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_missing_smplx_inputs_are_named(tree, motions, tmp_path):
    root, files, _, _, _ = tree
    seq = read_amass(motions["SynthSOMA"])
    bare = tmp_path / "bm"
    (bare / "smplx" / seq.gender).mkdir(parents=True)
    (bare / "smplx" / seq.gender / "model.npz").symlink_to(files[f"smplx_{seq.gender}"])
    with pytest.raises(DeformationTransferError, match="smplx2smpl_deftrafo_setup.pkl: not found"):
        sequence_joints(seq, bare, files["J_regressor_h36m"], 50.0)
    other = "female" if seq.gender == "male" else "male"
    seq.gender = other
    with pytest.raises(BodyModelError, match=f"smplx {other} body model .*not found.* and the SMPL-X -> SMPL"):
        sequence_joints(seq, bare, files["J_regressor_h36m"], 50.0)


def test_a_dmpl_file_is_never_attached_to_an_smplx_model(tree, tmp_path):
    root, files, _, _, _ = tree
    with pytest.raises(BodyModelError, match="DMPLs extend SMPL\\+H"):
        load_body_model(files["smplx_male"], files["dmpl_male"])
    assert load_body_models(root, "smplx")["male"].dmpldirs is None  # dmpls/ beside smplx/ is left alone


def test_regressor_rows_must_fit_the_transfer(tree, tmp_path):
    root, files, _, _, _ = tree
    wrong = tmp_path / "reg.npy"
    np.save(wrong, np.full((17, 10475), 1.0 / 10475))
    with pytest.raises(DeformationTransferError, match="10475 columns"):
        resolved_smplx_regressor(root, wrong)
    with pytest.raises(RegressorError):
        resolved_smplx_regressor(root, files["J_regressor_h36m"], smplx_regressor=files["J_regressor_h36m"])
