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
