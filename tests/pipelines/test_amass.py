"""AMASS reading: every release layout loads, every bad file becomes one AmassFormatError naming it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from pipelines.amass import MotionSequence, SourceFile, inspect_amass, iter_amass, read_amass
from pipelines.hashing import sha256_file
from schemas.errors import AmassFormatError, InputError

T = 7


def save(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def smplh_arrays(rng, t=T, gender=np.array("male"), fps=120.00004577636719, n_betas=16):
    return {"poses": rng.normal(size=(t, 156)), "trans": rng.normal(size=(t, 3)),
            "betas": rng.normal(size=n_betas), "dmpls": rng.normal(size=(t, 8)), "gender": gender,
            "mocap_framerate": np.array(fps), "marker_data": rng.normal(size=(t, 3, 3)),
            "marker_labels": np.array(["A", "B", "C"])}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("gender, expected", [(np.array("male"), "male"), (np.array(b"female"), "female"),
                                              (np.array("neutral"), "neutral"), (np.array([b"male"]), "male")])
def test_smplh_file_loads_with_both_gender_encodings(tmp_path, rng, gender, expected):
    arrays = smplh_arrays(rng, gender=gender)
    path = save(tmp_path / "CMU" / "01" / "01_01_poses.npz", **arrays)
    m = read_amass(path, root=tmp_path)
    assert isinstance(m, MotionSequence)
    assert (m.dataset, m.subject, m.name, m.key) == ("CMU", "01", "01_01_poses", "CMU/01/01_01_poses")
    assert m.model_type == "smplh" and m.gender == expected
    assert m.fps == 120.00004577636719  # stored value, not rounded
    np.testing.assert_array_equal(m.poses, arrays["poses"])
    np.testing.assert_array_equal(m.trans, arrays["trans"])
    np.testing.assert_array_equal(m.dmpls, arrays["dmpls"])
    np.testing.assert_array_equal(m.betas, arrays["betas"])
    assert m.poses.dtype == np.float64 and m.n_frames == T
    assert m.duration_s == pytest.approx(T / 120.00004577636719)
    assert set(m.keys) == set(arrays)
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)


def test_all_betas_are_kept_and_float32_is_accepted(tmp_path, rng):
    arrays = smplh_arrays(rng, n_betas=300)
    arrays["poses"] = arrays["poses"].astype(np.float32)
    m = read_amass(save(tmp_path / "D" / "s" / "a_poses.npz", **arrays))
    assert m.betas.shape == (300,)
    assert m.poses.dtype == np.float64
    np.testing.assert_array_equal(m.poses, arrays["poses"].astype(np.float64))


def test_smplx_separate_keys_map_into_smplh_layout(tmp_path, rng):
    root, body, hand = rng.normal(size=(T, 3)), rng.normal(size=(T, 63)), rng.normal(size=(T, 90))
    jaw, eye = rng.normal(size=(T, 3)), rng.normal(size=(T, 6))
    path = save(tmp_path / "GRAB" / "s1" / "apple_poses.npz", root_orient=root, pose_body=body, pose_hand=hand,
                pose_jaw=jaw, pose_eye=eye, trans=rng.normal(size=(T, 3)), betas=rng.normal(size=16),
                gender=np.array("neutral"), mocap_frame_rate=np.array(60.0), surface_model_type=np.array("smplx"))
    m = read_amass(path)
    assert (m.model_type, m.gender, m.fps, m.dmpls) == ("smplx", "neutral", 60.0, None)
    assert m.poses.shape == (T, 156)
    np.testing.assert_array_equal(m.poses[:, :3], root)
    np.testing.assert_array_equal(m.poses[:, 3:66], body)
    np.testing.assert_array_equal(m.poses[:, 66:], hand)
    np.testing.assert_array_equal(m.extra_poses["jaw"], jaw)
    np.testing.assert_array_equal(m.extra_poses["eyes"], eye)


def test_smplx_stageii_packed_poses_are_unpacked(tmp_path, rng):
    # column c holds the value c, so every slice is checkable by hand
    packed = np.tile(np.arange(165, dtype=np.float64), (T, 1)) + 100 * np.arange(T)[:, None]  # < 1000 rad (schemas.bounds)
    path = save(tmp_path / "SOMA" / "s1" / "walk_stageii.npz", poses=packed, trans=rng.normal(size=(T, 3)),
                betas=rng.normal(size=16), gender=np.array("female"), mocap_frame_rate=np.array(120.0),
                surface_model_type=np.array("smplx"), mocap_time_length=np.array(T / 120.0),
                markers_latent=rng.normal(size=(50, 3)))
    m = read_amass(path)
    assert m.model_type == "smplx" and m.source_format == "smplx_stageii"
    expect = np.concatenate([np.arange(0, 3), np.arange(3, 66), np.arange(75, 165)]).astype(np.float64)
    np.testing.assert_array_equal(m.poses[0], expect)
    np.testing.assert_array_equal(m.poses[2], expect + 200)
    np.testing.assert_array_equal(m.extra_poses["jaw"][0], [66, 67, 68])
    np.testing.assert_array_equal(m.extra_poses["eyes"][0], np.arange(69, 75))


def test_smplx_pose_for_the_body_model_is_in_smplx_order_and_expressions_are_read(tmp_path, rng):
    """The (T, 165) pose an SMPL-X model takes is the packed stageii order (root, body, jaw, eyes, hands);
    a file without jaw/eye poses leaves them at rest; expression coefficients are read when present."""
    packed = np.tile(np.arange(165, dtype=np.float64), (T, 1))
    expression = rng.normal(size=(T, 10))
    path = save(tmp_path / "SOMA" / "s1" / "walk_stageii.npz", poses=packed, trans=rng.normal(size=(T, 3)),
                betas=rng.normal(size=16), gender=np.array("male"), mocap_frame_rate=np.array(120.0),
                surface_model_type=np.array("smplx"), expression=expression)
    m = read_amass(path)
    np.testing.assert_array_equal(m.model_poses(), packed)
    np.testing.assert_array_equal(m.expression, expression)
    assert inspect_amass(path)["n_expression"] == 10
    keys = save(tmp_path / "GRAB" / "s1" / "cup_poses.npz", root_orient=packed[:, :3], pose_body=packed[:, 3:66],
                pose_hand=packed[:, 75:], trans=rng.normal(size=(T, 3)), betas=rng.normal(size=16),
                gender=np.array("female"), mocap_frame_rate=np.array(60.0))
    rest = read_amass(keys).model_poses()
    np.testing.assert_array_equal(rest[:, 66:75], 0.0)
    np.testing.assert_array_equal(np.delete(rest, np.s_[66:75], axis=1), np.delete(packed, np.s_[66:75], axis=1))
    smplh = read_amass(save(tmp_path / "CMU" / "01" / "a_poses.npz", **smplh_arrays(rng)))
    assert smplh.model_poses() is smplh.poses and smplh.expression is None
    for bad in (expression[:-1], rng.normal(size=(T, 101))):
        path = save(tmp_path / "SOMA" / "s1" / "bad_stageii.npz", poses=packed, trans=rng.normal(size=(T, 3)),
                    betas=rng.normal(size=16), gender=np.array("male"), mocap_frame_rate=np.array(120.0),
                    expression=bad)
        with pytest.raises(AmassFormatError, match="'expression' has shape"):
            read_amass(path)


def test_walk_is_sorted_nested_and_skips_only_known_non_motions(tmp_path, rng):
    a = smplh_arrays(rng)
    save(tmp_path / "CMU" / "02" / "02_01_poses.npz", **a)
    save(tmp_path / "CMU" / "01" / "01_02_poses.npz", **a)
    save(tmp_path / "CMU" / "01" / "shape.npz", betas=a["betas"], gender=np.array("male"))
    save(tmp_path / "KIT" / "3" / "walking" / "walk01_poses.npz", **a)
    save(tmp_path / "SOMA" / "s1" / "female_stagei.npz", betas=a["betas"], gender=np.array("female"))
    save(tmp_path / "SOMA" / "s1" / "run_stageii.npz", **a)
    (tmp_path / "CMU" / "01" / "README.txt").write_text("not a motion")
    (tmp_path / "CMU" / "01" / "x_poses.npz").mkdir()
    keys = [s.key for s in iter_amass(tmp_path)]
    assert keys == ["CMU/01/01_02_poses", "CMU/01/x_poses", "CMU/02/02_01_poses",
                    "KIT/3/walking/walk01_poses", "SOMA/s1/run_stageii"]
    kit = [s for s in iter_amass(tmp_path) if s.dataset == "KIT"][0]
    assert isinstance(kit, SourceFile)
    assert (kit.subject, kit.name) == ("3/walking", "walk01_poses")
    assert kit.path == tmp_path / "KIT" / "3" / "walking" / "walk01_poses.npz"
    # the directory is yielded (never skipped silently) and fails on read
    bad = [s for s in iter_amass(tmp_path) if s.name == "x_poses"][0]
    with pytest.raises(AmassFormatError):
        read_amass(bad)
    assert read_amass(kit).key == "KIT/3/walking/walk01_poses"


def test_non_motion_and_missing_root_are_errors(tmp_path, rng):
    shape = save(tmp_path / "D" / "s" / "shape.npz", betas=rng.normal(size=16), gender=np.array("male"))
    with pytest.raises(AmassFormatError):
        read_amass(shape)
    with pytest.raises(AmassFormatError):
        list(iter_amass(tmp_path / "nope"))


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _object_array(value):
    a = np.empty((), dtype=object)
    a[()] = value
    return a


def _truncated(path, rng):
    save(path, **smplh_arrays(rng))
    path.write_bytes(path.read_bytes()[:300])


def _with(**changes):
    def make(path, rng):
        arrays = smplh_arrays(rng)
        for k, v in changes.items():
            if v is None:
                arrays.pop(k)
            else:
                arrays[k] = v(arrays) if callable(v) else v
        save(path, **arrays)
    return make


def _huge(path, rng):
    arrays = smplh_arrays(rng)
    arrays.pop("poses")
    save(path, **arrays)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (2**40, 156)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("poses.npy", buf.getvalue() + b"\0" * 64)


def _nan(a):
    p = a["poses"].copy()
    p[3, 5] = np.nan
    return p


BAD = {
    "truncated zip": _truncated,
    "nan in poses": _with(poses=_nan),
    "inf in trans": _with(trans=lambda a: a["trans"] + np.array([0, np.inf, 0])),
    "T mismatch poses/trans": _with(trans=lambda a: a["trans"][:-1]),
    "T mismatch dmpls": _with(dmpls=lambda a: a["dmpls"][:-2]),
    "missing trans": _with(trans=None),
    "missing gender": _with(gender=None),
    "missing frame rate": _with(mocap_framerate=None),
    "missing poses": _with(poses=None),
    "object array": _with(poses=lambda a: np.array([a["poses"], "x", None], dtype=object)),
    "zero frames": _with(poses=lambda a: a["poses"][:0], trans=lambda a: a["trans"][:0],
                         dmpls=lambda a: a["dmpls"][:0]),
    "fps zero": _with(mocap_framerate=np.array(0.0)),
    "fps negative": _with(mocap_framerate=np.array(-120.0)),
    "fps nan": _with(mocap_framerate=np.array(np.nan)),
    "fps text": _with(mocap_framerate=np.array("120")),
    "unknown gender": _with(gender=np.array("robot")),
    "numeric gender": _with(gender=np.array(1.0)),
    "integer poses": _with(poses=lambda a: a["poses"].astype(np.int32)),
    "wrong pose width": _with(poses=lambda a: a["poses"][:, :72]),
    "1-d trans": _with(trans=lambda a: a["trans"][:, 0]),
    "huge declared shape": _huge,
    "empty file": lambda path, rng: path.write_bytes(b""),
    "directory": lambda path, rng: path.mkdir(),
    "plain pickle": lambda path, rng: path.write_bytes(pickle.dumps({"poses": 1})),
    "bare npy": lambda path, rng: np.save(open(path, "wb"), np.zeros(3)),
    "random bytes": lambda path, rng: path.write_bytes(b"PK\x03\x04" + rng.bytes(500)),
    "smplx keys missing hands": lambda path, rng: save(
        path, root_orient=np.zeros((T, 3)), pose_body=np.zeros((T, 63)), trans=np.zeros((T, 3)),
        betas=np.zeros(16), gender=np.array("male"), mocap_frame_rate=np.array(30.0)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_raise_one_typed_error_naming_the_file(tmp_path, rng, case):
    path = tmp_path / "DS" / "sub" / "bad_poses.npz"
    path.parent.mkdir(parents=True)
    BAD[case](path, rng)
    with pytest.raises(AmassFormatError) as info:
        read_amass(path)
    err = info.value
    assert isinstance(err, InputError) and err.path == str(path)
    assert err.reason and "\n" not in err.reason and str(path) in str(err)


def test_pickle_payload_never_runs(tmp_path, rng):
    marker = tmp_path / "executed"
    arrays = smplh_arrays(rng)
    arrays["gender"] = _object_array(Payload(str(marker)))
    path = save(tmp_path / "D" / "s" / "evil_poses.npz", **arrays)
    assert not marker.exists()
    with pytest.raises(AmassFormatError, match="object"):
        read_amass(path)
    with pytest.raises(AmassFormatError):
        inspect_amass(path)
    assert not marker.exists()


def test_payload_in_an_ignored_key_is_never_read(tmp_path, rng):
    marker = tmp_path / "executed"
    arrays = smplh_arrays(rng)
    arrays["marker_labels"] = _object_array(Payload(str(marker)))
    m = read_amass(save(tmp_path / "D" / "s" / "ok_poses.npz", **arrays))
    assert "marker_labels" in m.keys and m.n_frames == T
    assert not marker.exists()


def test_inspect_is_json_able(tmp_path, rng):
    arrays = smplh_arrays(rng, gender=np.array(b"female"), fps=250.0)
    path = save(tmp_path / "D" / "s" / "x_poses.npz", **arrays)
    info = json.loads(json.dumps(inspect_amass(path)))
    assert info["model_type"] == "smplh" and info["gender"] == "female"
    assert info["source_fps"] == 250.0 and info["frames"] == T
    assert info["duration_s"] == pytest.approx(T / 250.0)
    assert info["n_betas"] == 16 and "marker_data" in info["keys"]
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_key_is_stable_for_a_single_file_root(tmp_path, rng):
    path = save(tmp_path / "only_poses.npz", **smplh_arrays(rng))
    (src,) = list(iter_amass(path))
    assert src.key == "only_poses" and src.path == path
    assert os.fspath(src.path) == read_amass(src).path


def test_npy_members_pass_the_same_header_checks_as_every_untrusted_npy(tmp_path, rng):
    # The AMASS reader had its own copy of the .npy header checks and refused format 3.0, which the
    # restricted .npz loader (body models, VideoPose3D files) accepts; now both share one reader
    # (pipelines.safe_pickle.npz.read_npy_header), and 3.0 is a valid .npy (numpy writes it for
    # utf-8 field names), so it loads everywhere.
    arrays = smplh_arrays(rng)

    def write(name, members):
        path = tmp_path / "D" / "s" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as zf:
            for key, data in members.items():
                zf.writestr(f"{key}.npy", data)
        return path

    def npy(value, version=None):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asarray(value), version=version)
        return buf.getvalue()

    members = {k: npy(v, (3, 0) if k == "poses" else None) for k, v in arrays.items()}
    np.testing.assert_array_equal(read_amass(write("v3_poses.npz", members)).poses, arrays["poses"])
    # a member that declares more data than it holds is refused by the shared check, re-typed
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (T, 3)})
    with pytest.raises(AmassFormatError, match="but holds only"):
        read_amass(write("short_poses.npz", {**members, "trans": head.getvalue() + b"\0" * 8}))
