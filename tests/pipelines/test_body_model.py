"""Body-model / regressor loaders and the procedural SMPL+H model."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from pipelines.body_model import load_body_model, load_body_models, load_regressor
from pipelines.regressor_order import check_regressor_sides
from pipelines.synthetic.body_model import make_body_model, write_body_model_tree
from pipelines.synthetic.h36m_regressor import h36m_regressor
from schemas.errors import BodyModelError, RegressorError
from schemas.skeletons import SMPLH_52


@pytest.fixture(scope="module")
def male():
    return make_body_model("male", seed=1)


@pytest.fixture(scope="module")
def male_file(male, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "male" / "model.npz"
    path.parent.mkdir()
    np.savez(path, **{k: v for k, v in male.items() if k != "eigvec"})
    return path


# ---------------------------------------------------------------- the procedural model itself

def test_procedural_model_geometry(male):
    import trimesh

    V, W, J = male["v_template"], male["weights"], male["J"]
    assert V.shape == (6890, 3) and male["shapedirs"].shape == (6890, 3, 16)
    assert male["posedirs"].shape == (6890, 3, 459) and male["eigvec"].shape == (6890, 3, 8)
    mesh = trimesh.Trimesh(V, male["f"], process=False)
    assert len(mesh.vertices) == 6890 and male["f"].min() >= 0 and male["f"].max() < 6890
    assert np.all(mesh.area_faces > 0)  # no degenerate faces
    assert len(np.unique(male["f"])) == 6890  # every vertex is used by a face
    # skinning: <= 4 bones a vertex, rows sum to 1, each bone drives something
    assert (W > 0).sum(1).max() <= 4 and np.allclose(W.sum(1), 1.0) and W.min() >= 0
    assert np.all(W.sum(0) > 0)
    # the model's regressor reproduces the rest joints; anatomy in the SMPL frame, metres
    np.testing.assert_allclose(male["J_regressor"] @ V, J, atol=1e-12)
    j = {n: J[i] for i, n in enumerate(SMPLH_52.joints)}
    assert abs(j["pelvis"][1]) < 0.3 and -1.25 < V[:, 1].min() < -1.05 and 0.45 < V[:, 1].max() < 0.65
    assert 1.55 < np.ptp(V[:, 1]) < 1.85
    assert j["left_hip"][0] > 0.03 and j["right_hip"][0] < -0.03 and j["left_wrist"][0] > 0.5
    assert j["head"][1] > j["neck"][1] > j["spine3"][1] > j["pelvis"][1] > j["left_knee"][1] > j["left_ankle"][1]
    # kinematic tree as the released files spell it
    assert male["kintree_table"][0, 0] == 4294967295
    np.testing.assert_array_equal(male["kintree_table"][0, 1:], SMPLH_52.parents[1:])


def test_shape_directions_move_joints_and_are_deterministic(male):
    Jreg, S = male["J_regressor"], male["shapedirs"]
    for k in range(16):
        moved = np.abs(Jreg @ S[:, :, k]).max()
        assert moved > 0 or k in (1, 6, 8), k  # girth-only directions may leave joints in place
    assert all(np.abs(Jreg @ S[:, :, k]).max() > 5e-3 for k in range(10, 16))
    again = make_body_model("male", seed=1)
    for key, val in male.items():
        np.testing.assert_array_equal(val, again[key])
    other = make_body_model("male", seed=2)
    assert not np.array_equal(other["posedirs"], male["posedirs"])
    female = make_body_model("female", seed=1)
    assert np.ptp(female["v_template"][:, 1]) < np.ptp(male["v_template"][:, 1])


def test_h36m_regressor_is_convex_and_local(male):
    R = h36m_regressor(male)
    assert R.shape == (17, 6890) and R.min() >= 0
    np.testing.assert_allclose(R.sum(1), 1.0)
    nnz = (R > 0).sum(1)
    assert nnz.min() >= 4 and nnz.max() <= 200
    # each joint's vertices lie within 20 cm of the joint it regresses
    joints = R @ male["v_template"]
    for n in range(17):
        idx = np.flatnonzero(R[n])
        assert np.linalg.norm(male["v_template"][idx] - joints[n], axis=1).max() < 0.2


def test_write_tree_layout_and_smplx_loads_it(tmp_path):
    import time

    import smplx

    t0 = time.perf_counter()
    files = write_body_model_tree(tmp_path, seed=0)
    assert time.perf_counter() - t0 < 30  # ~1-2 s on 2 cores; generous for a loaded machine
    for g in ("male", "female", "neutral"):
        assert files[f"smplh_{g}"] == tmp_path / "smplh" / g / "model.npz"
        assert files[f"dmpl_{g}"] == tmp_path / "dmpls" / g / "model.npz"
    assert files["J_regressor_h36m"] == tmp_path / "J_regressor_h36m.npy"
    body = smplx.SMPLH(model_path=str(files["smplh_male"]), ext="npz", use_pca=False, num_betas=16)
    assert body().vertices.shape == (1, 6890, 3)
    models = load_body_models(tmp_path)
    assert set(models) == {"male", "female", "neutral"}
    for g, m in models.items():
        assert m.gender == g and m.model_type == "smplh" and m.num_betas == 16
        assert m.dmpldirs.shape == (6890, 3, 8) and m.parents[0] == -1 and m.faces.dtype == np.int64
    assert len({m.sha256 for m in models.values()}) == 3
    # the file is written in SPIN's row order (left leg in rows 1-3), like the real one
    report = check_regressor_sides(load_regressor(files["J_regressor_h36m"]), models["female"])
    assert report["swapped_pairs"] == ["l_hip/r_hip", "l_knee/r_knee", "l_ankle/r_ankle"]


# ---------------------------------------------------------------- loaders

def _install_fake_chumpy(monkeypatch):
    """Classes that pickle as chumpy.ch.Ch (the state holds the value under 'x'), like real SMPL .pkl files."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    chumpy.ch = ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    return Ch


def test_pkl_and_npz_load_identically(male, male_file, tmp_path, monkeypatch):
    Ch = _install_fake_chumpy(monkeypatch)
    payload = {
        "v_template": Ch(male["v_template"]), "shapedirs": Ch(male["shapedirs"]), "posedirs": male["posedirs"],
        "J_regressor": scipy.sparse.csc_matrix(male["J_regressor"]), "weights": Ch(male["weights"]),
        "kintree_table": male["kintree_table"], "f": male["f"].astype(np.uint32), "J": Ch(male["J"]),
        "bs_style": "lbs", "bs_type": "lrotmin",
    }
    pkl = tmp_path / "male" / "model.pkl"
    pkl.parent.mkdir()
    pkl.write_bytes(pickle.dumps(payload, protocol=2))
    assert b"chumpy.ch" in pkl.read_bytes() and b"csc_matrix" in pkl.read_bytes()
    a, b = load_body_model(male_file), load_body_model(pkl)
    for key in ("v_template", "shapedirs", "posedirs", "weights", "parents", "faces"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert (a.J_regressor != b.J_regressor).nnz == 0
    assert a.gender == b.gender == "male" and a.model_type == b.model_type == "smplh"
    assert a.sha256 != b.sha256


def test_smplx_npz_loads(tmp_path):
    """The first SMPL-X release's layout: 20 shapedirs columns = 10 shape + 10 expression directions."""
    from schemas.skeletons import SMPLX_55

    V, Jb = 10475, 55
    weights = np.zeros((V, Jb))
    weights[:, 0] = 1.0
    parents = np.array(SMPLX_55.parents)
    shapedirs = np.arange(V * 3 * 20, dtype=np.float64).reshape(V, 3, 20)
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, v_template=np.zeros((V, 3)), shapedirs=shapedirs, posedirs=np.zeros((V, 3, 486)),
             J_regressor=np.full((Jb, V), 1.0 / V), weights=weights, kintree_table=np.stack([parents, np.arange(Jb)]),
             f=np.array([[0, 1, 2]]))
    m = load_body_model(path)
    assert m.model_type == "smplx" and m.num_joints == 55 and m.posedirs.shape == (V, 3, 486)
    assert m.num_betas == 10 and m.num_expression == 10
    np.testing.assert_array_equal(m.exprdirs, shapedirs[:, :, 10:])
    # a chain instead of SMPL-X's tree, or a shape basis whose expression part cannot be located: refused
    np.savez(path, v_template=np.zeros((V, 3)), shapedirs=shapedirs, posedirs=np.zeros((V, 3, 486)),
             J_regressor=np.full((Jb, V), 1.0 / V), weights=weights,
             kintree_table=np.stack([np.arange(-1, Jb - 1), np.arange(Jb)]), f=np.array([[0, 1, 2]]))
    with pytest.raises(BodyModelError, match="SMPL-X 55-joint tree"):
        load_body_model(path)
    np.savez(path, v_template=np.zeros((V, 3)), shapedirs=shapedirs[:, :, :16], posedirs=np.zeros((V, 3, 486)),
             J_regressor=np.full((Jb, V), 1.0 / V), weights=weights, kintree_table=np.stack([parents, np.arange(Jb)]),
             f=np.array([[0, 1, 2]]))
    with pytest.raises(BodyModelError, match="16 columns"):
        load_body_model(path)


def _corrupt(male, **changes):
    arrays = {k: v for k, v in male.items() if k != "eigvec"}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    return arrays


@pytest.mark.parametrize("case", [
    "missing_file", "directory", "truncated", "nan", "posedirs_shape", "v_mismatch", "missing_key",
    "weights_sum", "kintree_cycle", "faces_range", "bad_ext", "not_a_zip",
])
def test_bad_model_files_raise_typed_errors(case, male, male_file, tmp_path):
    path = tmp_path / "model.npz"
    if case == "missing_file":
        path = tmp_path / "nope.npz"
    elif case == "directory":
        path = tmp_path / "dir.npz"
        path.mkdir()
    elif case == "truncated":
        data = male_file.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "not_a_zip":
        path.write_bytes(b"hello")
    elif case == "bad_ext":
        path = tmp_path / "model.txt"
        path.write_text("x")
    else:
        V = male["v_template"]
        changes = {
            "nan": {"v_template": np.where(np.arange(6890)[:, None] == 7, np.nan, V)},
            "posedirs_shape": {"posedirs": male["posedirs"][:, :, :458]},
            "v_mismatch": {"shapedirs": male["shapedirs"][:6000]},
            "missing_key": {"weights": None},
            "weights_sum": {"weights": male["weights"] * 1.5},
            "kintree_cycle": {"kintree_table": np.stack([np.r_[-1, np.arange(2, 53)], np.arange(52)])},
            "faces_range": {"f": np.r_[male["f"], [[0, 1, 6890]]]},
        }[case]
        np.savez(path, **_corrupt(male, **changes))
    with pytest.raises(BodyModelError) as info:
        load_body_model(path)
    assert info.value.path == str(path) and info.value.reason and "\n" not in str(info.value)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_never_run(male, tmp_path):
    marker = tmp_path / "pwned"
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"v_template": _Evil(marker)}, protocol=2))
    with pytest.raises(BodyModelError, match="forbidden global"):
        load_body_model(pkl)
    # the same payload inside an object member of an .npz
    obj = np.empty(1, dtype=object)
    obj[0] = _Evil(marker)
    npz = tmp_path / "model.npz"
    np.savez(npz, **_corrupt(male, J_regressor=obj))
    with pytest.raises(BodyModelError, match="Python objects"):  # refused from the header, never unpickled
        load_body_model(npz)
    # in a member the loader does not use, it is never read at all
    np.savez(npz, **_corrupt(male, J=obj))
    assert load_body_model(npz).num_joints == 52
    assert not marker.exists()


def test_dmpl_file_validation(male, male_file, tmp_path):
    good = tmp_path / "dmpl.npz"
    np.savez(good, eigvec=male["eigvec"])
    m = load_body_model(male_file, good)
    np.testing.assert_array_equal(m.dmpldirs, male["eigvec"])
    assert m.sha256 != load_body_model(male_file).sha256
    bad = tmp_path / "bad_dmpl.npz"
    np.savez(bad, eigvec=male["eigvec"][:100])
    with pytest.raises(BodyModelError) as info:
        load_body_model(male_file, bad)
    assert info.value.path == str(bad)
    with pytest.raises(BodyModelError):
        load_body_models(tmp_path / "empty")


def test_regressor_loader(tmp_path, male):
    R = h36m_regressor(male)
    np.save(tmp_path / "r.npy", R)
    np.testing.assert_array_equal(load_regressor(tmp_path / "r.npy").toarray(), R)
    for fmt in ("csr", "csc", "coo"):
        scipy.sparse.save_npz(tmp_path / f"r_{fmt}.npz", scipy.sparse.csr_matrix(R).asformat(fmt))
        np.testing.assert_array_equal(load_regressor(tmp_path / f"r_{fmt}.npz").toarray(), R)
    bad = {
        "nan.npy": np.where(R > 0, np.nan, 0.0),
        "vector.npy": R[0],
        "zero_row.npy": np.r_[R[:16], np.zeros((1, 6890))],
    }
    for name, arr in bad.items():
        np.save(tmp_path / name, arr)
    obj = np.empty(2, dtype=object)
    np.save(tmp_path / "object.npy", obj, allow_pickle=True)
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "r_csr.npz").read_bytes()[:200])
    np.savez(tmp_path / "plain.npz", R=R)
    (tmp_path / "d.npy").mkdir()
    for name in [*bad, "object.npy", "trunc.npz", "plain.npz", "d.npy", "missing.npy"]:
        with pytest.raises(RegressorError) as info:
            load_regressor(tmp_path / name)
        assert info.value.path == str(tmp_path / name)


def test_side_check_rejects_a_regressor_for_another_model(male, male_file):
    model = load_body_model(male_file)
    with pytest.raises(RegressorError):
        check_regressor_sides(scipy.sparse.csr_matrix(np.ones((17, 100)) / 100), model)
    # rows that collapse onto one point cannot be sided
    one = np.zeros((17, 6890))
    one[:, 0] = 1.0
    with pytest.raises(RegressorError):
        check_regressor_sides(one, model)


def test_procedural_model_is_as_dense_as_smplh(male):
    """Where the mesh-free method's cost depends on sparsity, the stand-in must be as dense as SMPL+H."""
    bones = (male["weights"] > 0).sum(1)
    assert bones.max() <= 4 and (bones >= 3).mean() >= 1 / 3
    P, S = male["posedirs"], male["shapedirs"]
    assert np.all(P != 0) and np.all(S != 0)
    # SMPL-like magnitudes: up to about a centimetre near joints, ~1e-5 m far from them
    assert 1e-3 < np.abs(P).max() < 0.1 and 1e-6 < np.median(np.abs(P)) < 1e-3
    assert 1e-6 < np.median(np.abs(S)) < 0.05
    nnz = (h36m_regressor(male) > 0).sum(1)
    assert nnz.min() >= 4 and nnz.max() <= 9
