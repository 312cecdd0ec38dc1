"""Human3.6M / CPN (VideoPose3D format): safe reading, 32 -> 17, import as corpus records."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pipelines.build_h36m import H36MBuildConfig, build_h36m
from schemas.h36m import canonical_action
from pipelines.h36m import (
    expand_17_to_32,
    import_h36m,
    load_positions_2d,
    load_positions_3d,
    reduce_32_to_17,
    vp3d_filenames,
)
from schemas.records import Reject, SequenceData
from pipelines.safe_pickle import safe_load_npz
from pipelines.synthetic.h36m import skeleton_motion, write_h36m_files
from schemas.cameras import H36M_CAMERA_IDS, h36m_camera
from schemas.errors import H36MFormatError, InputError, UnsafePickleError
from tests.pipelines.conftest import ACTIONS, FRAMES, SUBJECTS, same_tree

# VideoPose3D's 32-joint H36M names (h36m skeleton of the original data), written out by hand.
H36M_32_NAMES = (
    "Hips", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", "RightToeSite",
    "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LeftToeSite",
    "Spine", "Spine1", "Neck", "Head", "HeadSite",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftHandThumb", "LeftThumbSite",
    "LeftWristEnd", "LeftWristSite",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightHandThumb", "RightThumbSite",
    "RightWristEnd", "RightWristSite",
)
# The 17 kept joints in VideoPose3D order, named in the original layout (checked by hand).
KEPT_NAMES = ("Hips", "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot",
              "Spine1", "Neck", "Head", "HeadSite", "LeftArm", "LeftForeArm", "LeftHand",
              "RightArm", "RightForeArm", "RightHand")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _box(v):
    b = np.empty((), dtype=object)
    b[()] = v
    return b




# ------------------------------------------------------------------------------ 32 -> 17

def test_reduce_32_to_17_keeps_the_hand_checked_joints():
    x = np.arange(32, dtype=np.float32)[None, :, None].repeat(2, 2)  # joint j holds the value j
    y = reduce_32_to_17(x[None])
    assert y.shape == (1, 1, 17, 2)
    assert y[0, 0, :, 0].tolist() == [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
    assert [H36M_32_NAMES[int(j)] for j in y[0, 0, :, 0]] == list(KEPT_NAMES)
    with pytest.raises(ValueError):
        reduce_32_to_17(np.zeros((3, 17, 3)))


def test_expand_17_to_32_is_a_right_inverse_and_places_placeholders_on_ancestors():
    x = np.random.default_rng(0).normal(size=(4, 17, 3)).astype(np.float32)
    full = expand_17_to_32(x)
    assert full.shape == (4, 32, 3)
    assert np.array_equal(reduce_32_to_17(full), x)
    # RightToeBase (4) hangs off RightFoot (kept index 3); LeftShoulder (16) off Spine1 (kept index 7)
    assert np.array_equal(full[:, 4], x[:, 3]) and np.array_equal(full[:, 16], x[:, 7])


def test_synthetic_skeleton_sides_match_the_17_joint_names():
    from schemas.skeletons import H36M_17

    X = reduce_32_to_17(skeleton_motion(30, "stand", np.random.default_rng(1)))
    J = H36M_17.index
    forward = X[:, J("neck_nose")] - X[:, J("thorax")]  # the nose sits in front of the thorax
    forward[:, 2] = 0
    left_dir = np.cross([0.0, 0.0, 1.0], forward)  # z-up: up x forward points to the subject's left
    for l_name, r_name in (("l_hip", "r_hip"), ("l_shoulder", "r_shoulder"), ("l_knee", "r_knee")):
        side = np.einsum("ti,ti->t", X[:, J(l_name)] - X[:, J(r_name)], left_dir)
        assert (side > 0).all(), l_name
    assert (X[:, J("head"), 2] > X[:, J("pelvis"), 2] + 0.4).all()  # z-up, metres
    assert 0.7 < np.linalg.norm(X[0, J("r_hip")] - X[0, J("r_ankle")]) < 1.0


# ------------------------------------------------------------------------------ reading

def test_loaders_read_videopose3d_style_files(tmp_path):
    rng = np.random.default_rng(0)
    p3, p2 = tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_gt.npz"
    pos3d = {"S1": {"Directions 1": rng.normal(size=(6, 32, 3)).astype(np.float32)}}
    pos2d = {"S1": {"Directions 1": [rng.normal(size=(6, 17, 2)).astype(np.float32), None, None, None]}}
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(p3, positions_3d=pos3d)  # exactly how VideoPose3D writes them
    np.savez_compressed(p2, positions_2d=pos2d, metadata=meta)
    got3 = load_positions_3d(p3)
    assert np.array_equal(got3["S1"]["Directions 1"], pos3d["S1"]["Directions 1"])
    got2, got_meta = load_positions_2d(p2)
    cams = got2["S1"]["Directions 1"]
    assert len(cams) == 4 and cams[1] is None and np.array_equal(cams[0], pos2d["S1"]["Directions 1"][0])
    assert got_meta == meta


@pytest.mark.parametrize("which", ["3d", "2d", "metadata"])
def test_malicious_pickle_is_refused_and_nothing_executes(tmp_path, files, which):
    d, paths = files
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.mkdir()
    n3, n2 = vp3d_filenames("h36m", "cpn")
    good3, good2 = safe_load_npz(paths["3d"]), safe_load_npz(paths["cpn"])
    if which == "3d":
        np.savez(evil / n3, positions_3d=_box({"S1": {"Walking": _Payload(marker)}}))
        np.savez(evil / n2, **good2)
    else:
        np.savez(evil / n3, **good3)
        if which == "2d":
            np.savez(evil / n2, positions_2d=_box({"S1": {"Walking": [_Payload(marker)]}}), metadata=good2["metadata"])
        else:
            np.savez(evil / n2, positions_2d=good2["positions_2d"], metadata=_box({"layout_name": _Payload(marker)}))
    with pytest.raises(UnsafePickleError) as info:
        list(import_h36m(evil, "cpn"))
    assert "forbidden global" in str(info.value)
    with pytest.raises(UnsafePickleError):
        build_h36m(H36MBuildConfig(data_dir=evil, corpus=tmp_path / "corpus", detections="cpn"))
    assert not marker.exists()
    assert not (tmp_path / "corpus").exists()  # refused before anything was written


def test_format_errors_name_the_file(tmp_path):
    p = tmp_path / "data_3d_h36m.npz"
    np.savez(p, poses=np.zeros((3, 3)))
    with pytest.raises(H36MFormatError, match="positions_3d") as info:
        load_positions_3d(p)
    assert info.value.path == str(p)
    np.savez(p, positions_3d=_box(["S1"]))
    with pytest.raises(H36MFormatError, match="expected a dict"):
        load_positions_3d(p)
    p2 = tmp_path / "data_2d.npz"
    np.savez(p2, positions_2d=_box({"S1": {}}), metadata=_box({"layout_name": "h36m", "num_joints": 17,
                                                               "keypoints_symmetry": [[1, 2, 3], [4, 5, 6]]}))
    with pytest.raises(H36MFormatError, match="keypoints_symmetry"):
        load_positions_2d(p2)
    np.savez(p2, positions_2d=_box({"S1": {}}), metadata=_box({"layout_name": "coco", "num_joints": 17}))
    with pytest.raises(H36MFormatError, match="layout_name"):
        load_positions_2d(p2)
    with pytest.raises(InputError, match="not found"):
        list(import_h36m(tmp_path / "nowhere"))
    with pytest.raises(H36MFormatError, match="file not found") as info:
        list(import_h36m(tmp_path, "cpn"))  # the 3D file is there, the CPN file is not
    assert info.value.path.endswith("data_2d_h36m_cpn_ft_h36m_dbb.npz")


# ------------------------------------------------------------------------------ import

def test_import_pairs_trims_and_rejects(tmp_path):
    rng = np.random.default_rng(0)
    walk = skeleton_motion(30, "walk", rng)
    sit = skeleton_motion(25, "sit", rng)
    px = lambda x, s, c, extra=0: np.concatenate(  # noqa: E731
        [_gt_pixels(reduce_32_to_17(x), s, c)] + [np.zeros((extra, 17, 2), np.float32)])
    pos3d = {"S1": {"Walking": walk, "TakingPhoto 1": sit, "Eating": sit},
             "S5": {"Sitting": sit}, "S12": {"Walking": walk}}
    pos2d = {
        "S1": {"Walking": [px(walk, "S1", c, extra=4) for c in range(4)],
               "Photo 1": [px(sit, "S1", c) for c in range(4)],  # the other spelling of TakingPhoto 1
               "Greeting": [px(sit, "S1", c) for c in range(4)]},  # no 3D
        "S2": {"Walking": [px(walk, "S1", c) for c in range(4)]},  # 2D only, like the CPN file
        "S5": {"Sitting": [px(sit, "S5", 0), None, px(sit, "S5", 2)[:10], px(sit, "S5", 3)]},
        "S12": {"Walking": [px(walk, "S1", c) for c in range(4)]},  # no calibration
    }
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=_box(pos3d))
    np.savez(tmp_path / "data_2d_h36m_gt.npz", positions_2d=_box(pos2d))
    items = list(import_h36m(tmp_path, "gt"))
    seqs = {i.key: i for i in items if isinstance(i, SequenceData)}
    rejects = [i for i in items if isinstance(i, Reject)]
    assert list(seqs) == ["h36m/S1/TakingPhoto 1", "h36m/S1/Walking", "h36m/S5/Sitting"]
    assert [i.key for i in items if isinstance(i, SequenceData)] == sorted(seqs)  # deterministic order

    w = seqs["h36m/S1/Walking"]
    assert w.n_frames == 30 and [v.trimmed_frames for v in w.views] == [4, 4, 4, 4]
    assert all(v.keypoints_2d.shape == (30, 17, 2) for v in w.views)
    assert [v.camera_id for v in w.views] == list(H36M_CAMERA_IDS)
    assert w.split == "train" and w.action == "Walking" and w.fps == 50.0
    assert seqs["h36m/S1/TakingPhoto 1"].action == "Photo"
    s5 = seqs["h36m/S5/Sitting"]
    assert [v.camera_id for v in s5.views] == [H36M_CAMERA_IDS[0], H36M_CAMERA_IDS[3]]

    reasons = {r.source_path.rsplit("#", 1)[1]: r.reason for r in rejects}
    assert "2D keypoints but no 3D" in reasons["S2"]
    assert "no 3D positions" in reasons["S1/Greeting"]
    assert "no 2D keypoints" in reasons["S1/Eating"]
    assert "no 2D keypoints" in reasons[f"S5/Sitting/{H36M_CAMERA_IDS[1]}"]
    assert "fewer than the 25 3D frames" in reasons[f"S5/Sitting/{H36M_CAMERA_IDS[2]}"]
    assert "no H36M calibration" in reasons[f"S12/Walking/{H36M_CAMERA_IDS[0]}"]
    assert "no usable camera view" in reasons["S12/Walking"]
    assert all(r.kind == "h36m" and r.source_sha256 and "\n" not in r.reason for r in rejects)
    assert canonical_action("WalkingDog 2") == "WalkDog"


def _gt_pixels(X17, subject, c):
    """Independent reference: VideoPose3D's ``project_to_2d`` written out from the camera figures."""
    cam = h36m_camera(subject, c)
    R, t = np.asarray(cam.R), np.asarray(cam.t)
    Xc = X17.astype(np.float64) @ R.T + t
    xy = np.clip(Xc[..., :2] / Xc[..., 2:], -1, 1)
    r2 = (xy ** 2).sum(-1, keepdims=True)
    k, p = np.asarray(cam.k), np.asarray(cam.p)
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tan = (xy * p).sum(-1, keepdims=True)
    xx = xy * (radial + tan) + p * r2
    return (np.array([cam.fx, cam.fy]) * xx + np.array([cam.cx, cam.cy])).astype(np.float32)


@pytest.mark.parametrize("source", ["synthetic", "independent"])
def test_camera_frame_3d_reprojects_onto_gt_2d(tmp_path, files, source):
    from schemas.cameras import denormalize_pixels, project

    if source == "synthetic":
        data = files[0]
    else:  # GT 2D computed here, not by the generator: checks view/camera pairing and joints_cam
        pos3d = load_positions_3d(files[1]["3d"])
        pos2d = {s: {a: [_gt_pixels(reduce_32_to_17(x), s, c) for c in range(4)] for a, x in acts.items()}
                 for s, acts in pos3d.items()}
        np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=_box(pos3d))
        np.savez(tmp_path / "data_2d_h36m_gt.npz", positions_2d=_box(pos2d))
        data = tmp_path
    pos2d, _ = load_positions_2d(data / "data_2d_h36m_gt.npz")
    n_views = 0
    for seq in import_h36m(data, "gt"):
        if isinstance(seq, Reject):
            continue
        for v in seq.views:
            c = H36M_CAMERA_IDS.index(v.camera_id)
            file_px = pos2d[seq.subject][seq.name][c][: seq.n_frames]
            reproj = project(v.joints_cam, v.intrinsics, distort=True)
            assert np.abs(reproj - file_px).max() < 1.0
            stored_px = denormalize_pixels(v.keypoints_2d, v.intrinsics[9], v.intrinsics[10])
            assert np.abs(stored_px - file_px).max() < 1e-3
            # the camera frame really is R X + t of the world joints
            E = v.extrinsics
            assert np.allclose(v.joints_cam, seq.joints_world @ E[:, :3].T + E[:, 3], atol=1e-5)
            n_views += 1
    assert n_views == len(SUBJECTS) * len(ACTIONS) * 4 - (1 if source == "synthetic" else 0)


# ------------------------------------------------------------------------------ synthetic files

def test_synthetic_files_are_deterministic_and_cpn_like(files, tmp_path):
    d, paths = files
    again = write_h36m_files(tmp_path, seed=3, subjects=SUBJECTS, actions=ACTIONS, frames=FRAMES,
                             extra_2d_frames=(0, 3))
    for k in paths:
        a, b = safe_load_npz(paths[k]), safe_load_npz(again[k])
        assert a.keys() == b.keys()
    assert same_tree(load_positions_3d(paths["3d"]), load_positions_3d(again["3d"]))
    gt, _ = load_positions_2d(paths["gt"])
    cpn, meta = load_positions_2d(paths["cpn"])
    assert meta["keypoints_symmetry"] == [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    assert set(cpn) == set(SUBJECTS) | {"S2"}  # 2D-only subject, as in the real CPN file
    assert cpn["S11"]["Directions 1"][1] is None and gt["S11"]["Directions 1"][1] is None
    err = np.concatenate([np.linalg.norm(c - g, axis=-1).ravel() for s in gt for a in gt[s]
                          for c, g in zip(cpn[s][a], gt[s][a]) if g is not None])
    assert 2.0 < np.median(err) < 6.0  # a few pixels of jitter
    assert (err > 15).mean() > 0.001  # swaps and outliers exist
    pos3d = load_positions_3d(paths["3d"])
    lengths = [(len(gt[s][a][0]) - len(pos3d[s][a])) for s in pos3d for a in pos3d[s]]
    assert set(lengths) <= {0, 3} and 3 in lengths  # some 2D sequences are longer
    other = write_h36m_files(tmp_path / "other", seed=4, subjects=("S1",), actions=ACTIONS, frames=FRAMES)
    assert not np.array_equal(load_positions_3d(other["3d"])["S1"]["Walking"][:10], pos3d["S1"]["Walking"][:10])


