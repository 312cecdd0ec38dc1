import numpy as np
import pytest

from schemas.skeletons import H36M_17, H36M_32_TO_17, SMPLH_52


def test_h36m17_order_matches_videopose3d():
    assert H36M_17.joints[:4] == ("pelvis", "r_hip", "r_knee", "r_ankle")
    assert H36M_17.joints[11:] == ("l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")
    # VideoPose3D metadata: keypoints_symmetry [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    assert list(H36M_17.left) == [4, 5, 6, 11, 12, 13]
    assert list(H36M_17.right) == [1, 2, 3, 14, 15, 16]


def test_flip_permutation_is_an_involution_and_swaps_names():
    perm = H36M_17.flip_permutation
    assert np.array_equal(perm[perm], np.arange(17))
    for i, j in enumerate(perm):
        a, b = H36M_17.joints[i], H36M_17.joints[j]
        if a.startswith("l_"):
            assert b == "r_" + a[2:]
        elif a.startswith("r_"):
            assert b == "l_" + a[2:]
        else:
            assert a == b


@pytest.mark.parametrize("skel", [H36M_17, SMPLH_52])
def test_parents_form_a_tree_rooted_at_root(skel):
    assert skel.parents[skel.root] == -1
    for j, p in enumerate(skel.parents):
        if j != skel.root:
            assert 0 <= p < j, (skel.name, j, p)  # topological order


def test_smplh_tree_and_mirror_pairs():
    assert SMPLH_52.num_joints == 52
    assert SMPLH_52.joints[20:22] == ("left_wrist", "right_wrist")
    assert SMPLH_52.parents[22] == 20 and SMPLH_52.parents[37] == 21  # hands hang off the wrists
    for l, r in zip(SMPLH_52.left, SMPLH_52.right):
        assert SMPLH_52.joints[l].replace("left_", "") == SMPLH_52.joints[r].replace("right_", "")


def test_h36m_32_to_17_keeps_the_documented_joints():
    dropped = {4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31}
    assert len(H36M_32_TO_17) == 17
    assert set(H36M_32_TO_17) == set(range(32)) - dropped


def test_smplx_55_is_smplx_joint_order_and_tree():
    """SMPL-X's joints are smplx's first 55 names; jaw and eyes hang off the head; the hands are SMPL-H's."""
    from smplx.joint_names import JOINT_NAMES

    from schemas.skeletons import SMPLH_52, SMPLX_55, SMPLX_POSE_DIM

    assert list(SMPLX_55.joints) == list(JOINT_NAMES[:55]) and SMPLX_POSE_DIM == 165
    assert SMPLX_55.parents[22:25] == (15, 15, 15)
    x_of = {n: i for i, n in enumerate(SMPLX_55.joints)}
    for j, name in enumerate(SMPLH_52.joints):  # the same tree as SMPL-H's, re-indexed
        p = SMPLH_52.parents[j]
        assert SMPLX_55.parents[x_of[name]] == (-1 if p < 0 else x_of[SMPLH_52.joints[p]])
    assert SMPLX_55.joints[SMPLX_55.flip_permutation[x_of["left_eye_smplhf"]]] == "right_eye_smplhf"
