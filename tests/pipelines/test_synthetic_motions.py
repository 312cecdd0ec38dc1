"""Synthetic AMASS-like motions: plausible bodies (checked by forward kinematics), AMASS file formats,
determinism by seed, and round trips through the reader."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipelines.amass import iter_amass, read_amass
from pipelines.synthetic.motions import MOTION_KINDS, generate_motion, write_amass_tree
from schemas.skeletons import SMPLH_52

# Approximate SMPL rest joints (metres, canonical frame: y up, facing +z, left at +x), body only.
_REST_LEFT = {
    "pelvis": (0.0, -0.22, 0.03), "left_hip": (0.07, -0.31, 0.02), "spine1": (0.0, -0.11, 0.0),
    "left_knee": (0.10, -0.68, 0.02), "spine2": (0.0, 0.02, 0.0), "left_ankle": (0.09, -1.08, -0.03),
    "spine3": (0.0, 0.07, 0.03), "left_foot": (0.12, -1.14, 0.09), "neck": (0.0, 0.29, -0.02),
    "left_collar": (0.08, 0.20, -0.01), "head": (0.0, 0.35, 0.04), "left_shoulder": (0.17, 0.23, -0.02),
    "left_elbow": (0.43, 0.21, -0.04), "left_wrist": (0.69, 0.22, -0.04),
}
NAMES = SMPLH_52.joints[:22]
REST = np.array([_REST_LEFT.get(n) or (np.array(_REST_LEFT["left_" + n[6:]]) * [-1, 1, 1]) for n in NAMES])
PARENTS = SMPLH_52.parents[:22]
IDX = {n: i for i, n in enumerate(NAMES)}


def fk(poses, trans):
    """(T, 22, 3) world joints of the body chain, SMPL kinematics (pelvis at rest + trans)."""
    n = len(poses)
    rot = Rotation.from_rotvec(poses[:, :66].reshape(-1, 3)).as_matrix().reshape(n, 22, 3, 3)
    g = np.empty_like(rot)
    p = np.empty((n, 22, 3))
    for j, par in enumerate(PARENTS):
        if par < 0:
            g[:, j], p[:, j] = rot[:, j], REST[j]
        else:
            g[:, j] = g[:, par] @ rot[:, j]
            p[:, j] = p[:, par] + g[:, par] @ (REST[j] - REST[par])
    return p + trans[:, None]


def body_axes(poses):
    """World (T, 3) up and forward of the root: R_root @ (0, 1, 0) and R_root @ (0, 0, 1)."""
    r = Rotation.from_rotvec(poses[:, :3])
    return r.apply([0.0, 1.0, 0.0]), r.apply([0.0, 0.0, 1.0])


@pytest.fixture(scope="module")
def motions():
    return {k: generate_motion(k, 60.0, 12.0, np.random.default_rng(7)) for k in MOTION_KINDS}


def test_every_kind_has_amass_shapes_and_is_deterministic(motions):
    for kind, m in motions.items():
        assert m["poses"].shape == (720, 156) and m["trans"].shape == (720, 3), kind
        assert m["poses"].dtype == np.float64 and np.isfinite(m["poses"]).all()
        again = generate_motion(kind, 60.0, 12.0, np.random.default_rng(7))
        np.testing.assert_array_equal(again["poses"], m["poses"])
        other = generate_motion(kind, 60.0, 12.0, np.random.default_rng(8))
        assert not np.allclose(other["poses"], m["poses"])
    assert generate_motion("walk", 250.0, 0.001, np.random.default_rng(0))["poses"].shape == (1, 156)
    with pytest.raises(ValueError):
        generate_motion("moonwalk", 60.0, 1.0, np.random.default_rng(0))


def test_bodies_stand_upright_on_the_ground(motions):
    for kind, m in motions.items():
        j = fk(m["poses"], m["trans"])
        up, _ = body_axes(m["poses"])
        assert np.median(up[:, 2]) > 0.85, kind  # z-up world: the body's y axis points up
        feet = j[:, [IDX["left_foot"], IDX["right_foot"]], 2].min(axis=1)
        airborne = kind == "jump"
        assert -0.15 < np.percentile(feet, 5) < 0.15, (kind, np.percentile(feet, 5))
        if not airborne:
            assert np.percentile(feet, 50) < 0.2, kind
        head = j[:, IDX["head"], 2]
        assert (head > j[:, IDX["pelvis"], 2] + 0.3).all(), kind
        assert 1.1 < np.median(head) < 1.8, kind
        # the subject's left hip lies on its left: (left - right) . left_axis > 0, left = R_root @ +x
        left_axis = Rotation.from_rotvec(m["poses"][:, :3]).apply([1.0, 0.0, 0.0])
        side = np.einsum("ti,ti->t", j[:, IDX["left_hip"]] - j[:, IDX["right_hip"]], left_axis)
        assert (side > 0.1).all(), kind


def test_walking_moves_forward_at_walking_speed_with_alternating_legs():
    rng = np.random.default_rng(3)
    m = generate_motion("walk", 100.0, 20.0, rng, path="loop")
    xy = m["trans"][:, :2]
    vel = np.diff(xy, axis=0) * 100.0
    speed = np.linalg.norm(vel, axis=1)
    assert 1.0 < speed.mean() < 1.6
    _, fwd = body_axes(m["poses"])
    # direction of travel (over 1 s, which averages the sway) matches where the body faces
    travel = xy[100:] - xy[:-100]
    travel /= np.linalg.norm(travel, axis=1, keepdims=True)
    heading = fwd[50:-50, :2] / np.linalg.norm(fwd[50:-50, :2], axis=1, keepdims=True)
    assert np.einsum("ti,ti->t", travel, heading).mean() > 0.9
    hip_l, hip_r = m["poses"][:, 3 + 0], m["poses"][:, 6 + 0]  # x rotation of left / right hip
    assert np.corrcoef(hip_l, hip_r)[0, 1] < -0.5
    run = generate_motion("run", 100.0, 20.0, np.random.default_rng(3), path="loop")
    assert 2.3 < (np.linalg.norm(np.diff(run["trans"][:, :2], axis=0), axis=1) * 100.0).mean() < 3.6


@pytest.mark.parametrize("kind, path", [("walk", "loop"), ("walk", "figure8"), ("walk", "backforth"),
                                        ("run", "backforth"), ("run", "loop")])
def test_bounded_paths_fit_a_4m_area(kind, path):
    for seed in range(3):
        m = generate_motion(kind, 50.0, 40.0, np.random.default_rng(seed), path=path)
        extent = np.ptp(m["trans"][:, :2], axis=0)
        assert (extent <= 4.0).all(), (kind, path, seed, extent)


def test_straight_walks_leave_the_capture_area():
    m = generate_motion("walk", 50.0, 30.0, np.random.default_rng(0), path="straight")
    assert np.linalg.norm(m["trans"][-1, :2] - m["trans"][0, :2]) > 20.0


def test_kind_specific_motion(motions):
    z = {k: m["trans"][:, 2] for k, m in motions.items()}
    assert 0.88 < np.median(z["idle"]) < 1.0
    assert z["sit"].min() < np.median(z["idle"]) - 0.3  # sits down
    assert z["jump"].max() > np.median(z["jump"]) + 0.08  # leaves the ground
    for k in ("idle", "wave", "sit", "turn", "squat", "jump"):
        assert (np.ptp(motions[k]["trans"][:, :2], axis=0) < 1.5).all(), k  # mostly in place
    _, fwd = body_axes(motions["turn"]["poses"])
    yaw = np.unwrap(np.arctan2(fwd[:, 1], fwd[:, 0]))
    assert np.ptp(yaw) > np.pi / 2
    j = fk(motions["wave"]["poses"], motions["wave"]["trans"])
    wrists = j[:, [IDX["left_wrist"], IDX["right_wrist"]], 2].max(axis=1)
    assert (wrists > j[:, IDX["head"], 2]).mean() > 0.2  # a hand goes up above the head
    hands = motions["walk"]["poses"][:, 66:]
    assert 0.05 < np.abs(hands).mean() < 0.6  # fingers curl a little


def _sha(paths):
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("amass")
    paths = write_amass_tree(root, n_sequences=16, seed=5, duration_s=(1.0, 3.0), smplx_fraction=0.25)
    return root, paths


def test_tree_round_trips_through_the_reader(tree):
    root, paths = tree
    assert len(paths) == 16 and paths == sorted(paths)
    found = [s.path for s in iter_amass(root)]
    assert sorted(found) == paths  # every written motion is found, and only those
    seqs = [read_amass(p, root=root) for p in paths]
    assert {s.model_type for s in seqs} == {"smplh", "smplx"}
    assert {s.source_format for s in seqs} == {"smplh", "smplx_keys", "smplx_stageii"}
    assert {s.dataset for s in seqs if s.model_type == "smplx"} == {"SynthSOMA", "SynthMOYO", "SynthGRAB"}
    assert any("/" in s.subject for s in seqs)  # the nested dataset
    for s in seqs:
        assert s.betas.shape == (16,) and s.n_frames >= 60
        assert s.fps in (60.0, 100.0, 120.0, 250.0, 120.00004577636719)
        assert (s.dmpls is not None) == (s.model_type == "smplh")
        if s.model_type == "smplx":
            assert set(s.extra_poses) == {"jaw", "eyes"}


def test_tree_files_use_the_real_amass_keys_and_encodings(tree):
    root, paths = tree
    genders = set()
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if p.name.endswith("_stageii.npz"):  # AMASS SMPL-X G / N
                assert {"poses", "trans", "betas", "num_betas", "gender", "surface_model_type", "mocap_frame_rate",
                        "mocap_time_length", "root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye"} <= keys
                assert z["poses"].shape[1] == 165 and z["betas"].shape == (16,) and str(z["surface_model_type"]) == "smplx"
                # the packed pose is its parts; hands: 45 axis-angle values each, no mean added
                np.testing.assert_array_equal(z["poses"][:, 75:], z["pose_hand"])
                np.testing.assert_array_equal(z["poses"][:, 66:75], np.concatenate([z["pose_jaw"], z["pose_eye"]], 1))
                assert (p.parent / f"{z['gender']}_stagei.npz").exists()
                want = {"SynthMOYO": {"neutral"}, "SynthSOMA": {"male", "female"}}[p.parts[-3]]
                assert str(z["gender"]) in want  # SMPL-X N: the neutral model; G: gendered
            elif "root_orient" in keys:
                assert {"pose_body", "pose_hand", "pose_jaw", "pose_eye", "mocap_frame_rate",
                        "surface_model_type"} <= keys
            else:
                assert {"poses", "trans", "betas", "dmpls", "gender", "mocap_framerate", "marker_data",
                        "marker_labels"} <= keys
                assert z["poses"].shape[1] == 156 and z["gender"].ndim == 0
                genders.add(z["gender"].dtype.kind)
                assert (p.parent / "shape.npz").exists()
    assert genders == {"U", "S"}  # both gender encodings


def test_tree_is_deterministic_by_seed(tree, tmp_path):
    root, paths = tree
    again = write_amass_tree(tmp_path / "a", n_sequences=16, seed=5, duration_s=(1.0, 3.0), smplx_fraction=0.25)
    assert [p.relative_to(tmp_path / "a") for p in again] == [p.relative_to(root) for p in paths]
    assert _sha(again) == _sha(paths)
    other = write_amass_tree(tmp_path / "b", n_sequences=16, seed=6, duration_s=(1.0, 3.0), smplx_fraction=0.25)
    assert _sha(other) != _sha(paths)


def test_total_frames_is_hit_exactly(tmp_path):
    paths = write_amass_tree(tmp_path, seed=1, duration_s=(1.0, 5.0), total_frames=5000, smplx_fraction=0.0)
    assert sum(read_amass(p).n_frames for p in paths) == 5000
