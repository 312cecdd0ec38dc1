import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

from pipelines.safe_pickle import safe_load_npz, safe_load_pickle, safe_loads
from schemas.errors import InputError, UnsafePickleError


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _OpenPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("payload_cls", [_Payload, _OpenPayload])
def test_payload_in_pkl_is_refused_and_never_runs(tmp_path, payload_cls):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "x": payload_cls(str(marker))}))
    with pytest.raises(UnsafePickleError) as info:
        safe_load_pickle(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_payload_in_npz_object_array_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data.npz"
    obj = np.empty((), dtype=object)
    obj[()] = {"S1": _Payload(str(marker))}
    np.savez(path, positions_3d=obj)
    with pytest.raises(UnsafePickleError):
        safe_load_npz(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_and_sparse_round_trip(protocol):
    m = sp.random(17, 100, density=0.05, format="csc", random_state=0)
    data = {"J": m, "a": np.arange(6.0).reshape(2, 3), "s": "male", "l": [1, 2]}
    out = safe_loads(pickle.dumps(data, protocol=protocol))
    assert abs(out["J"] - m).max() == 0
    assert np.array_equal(out["a"], data["a"]) and out["s"] == "male" and out["l"] == [1, 2]


def test_videopose3d_like_nested_dict(tmp_path):
    path = tmp_path / "d.npz"
    positions = {"S1": {"Walk 1": np.random.default_rng(0).normal(size=(5, 32, 3)).astype(np.float32)}}
    np.savez_compressed(path, positions_3d=positions, metadata={"layout_name": "h36m", "num_joints": 17})
    out = safe_load_npz(path)
    assert np.array_equal(out["positions_3d"].item()["S1"]["Walk 1"], positions["S1"]["Walk 1"])
    assert out["metadata"].item()["num_joints"] == 17


def test_truncated_and_bogus_files_raise_input_error(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, a=np.arange(1000.0))
    raw = good.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[: len(raw) // 2])
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    for p in (cut, empty, tmp_path, tmp_path / "missing.npz"):
        with pytest.raises(InputError):
            safe_load_npz(p)
    with pytest.raises(InputError):
        safe_loads(b"\x80\x04\x95garbage")


def test_huge_declared_shape_is_refused_without_allocating(tmp_path):
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**6)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("poses.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(InputError, match="declares"):
        safe_load_npz(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_legitimate_dtypes_round_trip(protocol):
    """No false positives: every dtype a real model / VideoPose3D file can hold loads exactly."""
    rec = np.zeros(3, dtype=[("a", "<f8"), ("b", ">i4"), ("c", "S3")])
    rec["a"], rec["b"], rec["c"] = [1.5, 2, 3], [4, 5, 6], [b"x", b"yz", b""]
    data = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3), "big_endian": np.arange(4, dtype=">f8"),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "u16": np.arange(5, dtype=np.uint16),
        "bool": np.array([True, False]), "text": np.array(["male", "fe"]), "bytes": np.array([b"ab"]),
        "c128": np.array([1 + 2j]), "empty": np.zeros((0, 17, 2), np.float32), "scalar": np.float32(0.5),
        "int": np.int64(17), "record": rec, "nested": [np.zeros(0), {"k": (np.ones(2), None)}],
    }
    out = safe_loads(pickle.dumps(data, protocol=protocol))
    for k, v in data.items():
        if isinstance(v, np.ndarray):
            assert out[k].dtype == v.dtype and out[k].shape == v.shape and np.array_equal(out[k], v), k
            assert out[k].flags.writeable
    assert out["scalar"] == np.float32(0.5) and out["int"] == 17
    assert out["nested"][1]["k"][1] is None and np.array_equal(out["nested"][1]["k"][0], np.ones(2))


def test_object_arrays_only_where_allowed():
    obj = np.empty(2, dtype=object)
    obj[:] = [np.zeros(2), "x"]
    raw = pickle.dumps({"cams": obj})
    assert safe_loads(raw)["cams"][1] == "x"
    with pytest.raises(InputError, match="Python objects"):
        safe_loads(raw, allow_object=False)


def test_shared_references_are_converted_once_but_charged_per_reference():
    """A DAG of 40 levels each referencing the level below twice spells 2**40 paths in 41 lists: every
    reference is charged at its converted size (a consumer copies per reference), so it is refused
    at once; a small DAG within the budget loads with its sharing intact."""
    a = [np.zeros(1)]
    for _ in range(40):
        a = [a, a]
    with pytest.raises(InputError, match="container elements"):
        safe_loads(pickle.dumps(a, protocol=4))
    b = [np.zeros(1)]
    for _ in range(10):
        b = [b, b]
    out = safe_loads(pickle.dumps(b, protocol=4))
    for _ in range(10):
        assert out[0] is out[1]
        out = out[0]
