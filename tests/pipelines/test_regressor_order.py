"""The regressor's left/right rows resolved by geometry: SPIN's row order (left leg in rows 1-3) and
H36M_17's give the same joints, the left hip lands on the subject's left, undecidable files are refused."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines.amass import read_amass
from pipelines.body_model import load_body_models, load_regressor
from pipelines.regressor_order import check_regressor_sides, lateral_axis, resolve_regressor_order
from pipelines.sequence import sequence_joints
from flows.cli import app
from pipelines.synthetic.body_model import write_body_model_tree
from pipelines.synthetic.h36m_regressor import SPIN_ROWS
from pipelines.synthetic.motions import write_amass_tree
from schemas.errors import RegressorError
from schemas.skeletons import H36M_17

LEGS = ["l_hip/r_hip", "l_knee/r_knee", "l_ankle/r_ankle"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("order")
    files = write_body_model_tree(root / "bm", seed=1)
    spin = np.load(files["J_regressor_h36m"])
    np.save(root / "h36m_order.npy", spin[list(SPIN_ROWS)])  # rows 1-3 = right leg, as H36M_17
    motion = write_amass_tree(root / "amass", n_sequences=1, seed=4, duration_s=(1.0, 1.0), smplx_fraction=0.0)[0]
    return root, files, load_body_models(root / "bm"), spin, motion


def test_spin_and_h36m_order_files_give_identical_joints(tree):
    root, files, models, spin, motion = tree
    seq = read_amass(motion)
    from_spin = sequence_joints(seq, root / "bm", files["J_regressor_h36m"], 50.0)
    from_h36m = sequence_joints(seq, root / "bm", root / "h36m_order.npy", 50.0)
    np.testing.assert_array_equal(from_spin, from_h36m)
    # as-is trusts the file: the SPIN file then puts the left leg in H36M_17's right-leg rows
    as_is = sequence_joints(seq, root / "bm", files["J_regressor_h36m"], 50.0, regressor_order="as-is")
    np.testing.assert_array_equal(as_is[:, [1, 2, 3, 4, 5, 6]], from_h36m[:, [4, 5, 6, 1, 2, 3]])
    assert np.abs(as_is - from_h36m).max() > 0.05


def test_resolution_reports_the_swapped_pairs_and_the_permutation(tree):
    root, files, models, spin, _ = tree
    fixed, order = resolve_regressor_order(load_regressor(files["J_regressor_h36m"]), list(models.values()),
                                           sha256="abc")
    assert list(order.swapped_pairs) == LEGS and order.order == "auto"
    assert list(order.perm) == list(SPIN_ROWS)
    np.testing.assert_array_equal(fixed.toarray(), spin[list(SPIN_ROWS)])
    assert "l_hip/r_hip" in order.message and order.as_dict()["sha256"] == "abc"
    _, same = resolve_regressor_order(load_regressor(root / "h36m_order.npy"), list(models.values()))
    assert same.swapped_pairs == () and list(same.perm) == list(range(17))


def test_left_is_the_subjects_left(tree):
    """SMPL's canonical frame: y up, facing +z, so the subject's left is +x; found from geometry alone."""
    import smplx
    import torch

    root, files, models, spin, _ = tree
    model = models["male"]
    np.testing.assert_allclose(lateral_axis(model), [1.0, 0.0, 0.0], atol=0.05)
    # smplx names joint 1 left_hip: it sits at +x on this model, as on the real one
    body = smplx.SMPLH(model_path=str(files["smplh_male"]), ext="npz", use_pca=False)
    with torch.no_grad():
        j = body().joints[0].numpy()
    assert j[1, 0] > 0.03 > -0.03 > j[2, 0]
    # the resolved regressor's left hip, knee, ankle, shoulder... land at +x, their partners at -x
    fixed, _ = resolve_regressor_order(load_regressor(files["J_regressor_h36m"]), model)
    x = (fixed @ model.v_template)[:, 0]
    for li, ri in zip(H36M_17.left, H36M_17.right):
        assert x[li] > 0.05 and x[ri] < -0.05, (H36M_17.joints[li], x[li], x[ri])


def _undecidable(spin: np.ndarray) -> dict[str, np.ndarray]:
    h36m = spin[list(SPIN_ROWS)]
    one_point = h36m.copy()
    one_point[1] = one_point[4]  # r_hip and l_hip the same row
    one_side = h36m.copy()
    one_side[1] = 0.5 * (h36m[4] + h36m[0])  # "r_hip" between the left hip and the pelvis
    wrong_part = h36m.copy()
    wrong_part[5] = h36m[12]  # "l_knee" regresses the left elbow
    return {"one_point": one_point, "one_side": one_side, "wrong_part": wrong_part}


def test_undecidable_files_are_refused(tree):
    _, _, models, spin, _ = tree
    for name, reg in _undecidable(spin).items():
        with pytest.raises(RegressorError, match="cannot tell"):
            resolve_regressor_order(reg, list(models.values()), path=name)
        # as-is trusts the file (the user said so)
        _, order = resolve_regressor_order(reg, list(models.values()), order="as-is")
        assert order.order == "as-is" and order.swapped_pairs == ()
    with pytest.raises(RegressorError):
        check_regressor_sides(spin[:16], models["male"])


def test_cli_joints_reports_the_fix_and_refuses_undecidable_files(tree, tmp_path):
    root, files, models, spin, motion = tree
    runner = CliRunner()
    res = runner.invoke(app, ["joints", str(motion), "--body-models", str(root / "bm"), "--out", str(tmp_path / "j.npy")])
    assert res.exit_code == 0, res.output
    assert "swapped" in res.output and all(p in res.output for p in LEGS)
    np.save(tmp_path / "bad.npy", _undecidable(spin)["one_point"])
    res = runner.invoke(app, ["joints", str(motion), "--body-models", str(root / "bm"), "--regressor",
                              str(tmp_path / "bad.npy"), "--out", str(tmp_path / "k.npy")])
    assert res.exit_code == 1 and "cannot tell left from right" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "k.npy").exists()
    res = runner.invoke(app, ["joints", str(motion), "--body-models", str(root / "bm"), "--regressor-order",
                              "sideways", "--out", str(tmp_path / "k.npy")])
    assert res.exit_code == 2 and "--regressor-order" in res.output  # a bad command line, like --fps abc
