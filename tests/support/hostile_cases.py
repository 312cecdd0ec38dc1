"""Hostile files (issue 16): one case per attack class, each a crafted file and the loader that must refuse it.

Each case writes one crafted file (or special file) under a work folder and names the loader that
must refuse it with a typed error naming the file (or, for the legitimate cases, load it). Payloads
only ever try to create ``<work>/<case>/payload.executed``: each case has its own marker. ``tests/support/hostile_runner.py`` runs
every case in its own forked child.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tests.support.hostile_bytes import (PROTO, REDUCE, STOP, array_op, bytes_op, deep_list, dict_op, dtype_op,
                                              global_op, long_binput, nested_object_arrays, ndarray_call, npy_bytes,
                                              npy_header, object_field_past_item, object_member,
                                              object_scalar_pointer, reconstruct_many_objects, self_list, str_op,
                                              tuple_op, write_zip, write_zip_inflating, write_zip_many_members)

RSS_BUDGET_MB = 300  # "a few hundred MB" at most per case


# Valid contents the cases put hostile parts into


def amass_arrays(frames: int = 12, dmpls: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {"poses": rng.normal(scale=0.2, size=(frames, 156)), "trans": rng.normal(size=(frames, 3)),
           "betas": rng.normal(size=16), "gender": np.array("male"), "mocap_framerate": np.array(120.0)}
    if dmpls:
        out["dmpls"] = rng.normal(scale=0.1, size=(frames, 8))
    return out


def vp3d_2d_arrays(meta: dict | None = None, subjects=("S1",)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    cams = [rng.uniform(0, 1000, size=(8, 17, 2)).astype(np.float32) for _ in range(4)]
    box = np.empty((), dtype=object)
    box[()] = {s: {"Walking 1": cams} for s in subjects}
    out = {"positions_2d": box}
    if meta is not None:
        m = np.empty((), dtype=object)
        m[()] = meta
        out["metadata"] = m
    return out


def vp3d_3d_arrays(subjects=("S1",)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    box = np.empty((), dtype=object)
    box[()] = {s: {"Walking 1": rng.normal(size=(8, 32, 3)).astype(np.float32)} for s in subjects}
    return {"positions_3d": box}


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    name: str
    category: str  # memory_corruption | nesting | memory_bomb | special_file | untyped | legitimate
    build: Callable[[Path], tuple[str, list, str]]  # work dir -> (target "module:function", args, named path)
    expect: str = "typed"  # "typed": an InputError naming the file; "loads": returns normally
    budget_mb: float = RSS_BUDGET_MB  # peak RSS growth allowed (more only where real models are loaded)
    match: str = ""  # the error must say this (where a later check would also refuse the file)


def _body_model_pkl(payload: bytes):
    def build(work: Path):
        p = work / "model.pkl"
        p.write_bytes(PROTO + dict_op(v_template=payload, joints=payload) + STOP)
        return "pipelines.body_model:load_body_model", [str(p)], str(p)
    return build


def _vp3d(kind: str, payload: bytes):
    """A VideoPose3D 3D or 2D file whose object member's pickle holds ``payload`` inside the nesting."""
    def build(work: Path):
        p = work / f"data_{kind}_h36m.npz"
        key = "positions_3d" if kind == "3d" else "positions_2d"
        inner = dict_op(S1=dict_op(**{"Walking 1": payload}))
        members = {key: object_member(PROTO + array_op((), dtype_op("O8", flags=63), b"]" + inner + b"a") + STOP)}
        write_zip(p, members)
        fn = "load_positions_3d" if kind == "3d" else "load_positions_2d"
        return f"pipelines.h36m:{fn}", [str(p)], str(p)
    return build


def _pkl(payload: bytes, target="pipelines.safe_pickle:safe_load_pickle"):
    def build(work: Path):
        p = work / "model.pkl"
        p.write_bytes(payload)
        return target, [str(p)], str(p)
    return build


def _amass_member(name: str, raw: bytes):
    def build(work: Path):
        p = work / "CMU" / "01" / "01_01_poses.npz"
        p.parent.mkdir(parents=True, exist_ok=True)
        members = {k: npy_bytes(v) for k, v in amass_arrays().items()}
        members[name] = raw
        write_zip(p, members)
        return "pipelines.amass:read_amass", [str(p)], str(p)
    return build


def _regressor_file(suffix: str, raw: bytes | dict):
    def build(work: Path):
        p = work / f"J_regressor{suffix}"
        if isinstance(raw, dict):
            write_zip(p, raw)
        else:
            p.write_bytes(raw)
        return "pipelines.body_model:load_regressor", [str(p)], str(p)
    return build


def _model_inflating(work: Path):
    p = work / "smplh" / "male" / "model.npz"
    p.parent.mkdir(parents=True, exist_ok=True)
    write_zip_inflating(p, "shapedirs.npy", npy_header("<f8", ((1500 << 20) // 8,)), 1500)
    return "pipelines.body_model:load_body_model", [str(p)], str(p)


def _model_object_member(work: Path):
    p = work / "model.npz"
    write_zip(p, {"v_template": object_member(ndarray_call(10))})
    return "pipelines.body_model:load_body_model", [str(p)], str(p)


def _vp3d_object_over_cap(work: Path):
    """An object member whose array declares 1.5 GB of float32 (per-member byte cap on object members)."""
    p = work / "data_3d_h36m.npz"
    big = array_op((4_000_000, 32, 3), dtype_op("f4", "<"), bytes_op(bytes(64)))
    inner = dict_op(S1=dict_op(**{"Walking 1": big}))
    write_zip(p, {"positions_3d": object_member(PROTO + array_op((), dtype_op("O8", flags=63), b"]" + inner + b"a") + STOP)})
    return "pipelines.h36m:load_positions_3d", [str(p)], str(p)


def _poses_float32(gib: float):
    """AMASS ``poses`` of ``gib`` GiB of float32 (widened to float64 on load: twice that held)."""
    return lambda work: _poses_big(work, int(gib * (1 << 30)))


def _poses_big(work: Path, nbytes: int):
    p = work / "CMU" / "01" / "02_01_poses.npz"
    p.parent.mkdir(parents=True, exist_ok=True)
    frames = nbytes // (156 * 4) + 1
    others = {f"{k}.npy": npy_bytes(v) for k, v in amass_arrays().items() if k != "poses"}
    write_zip_inflating(p, "poses.npy", npy_header("<f4", (frames, 156)), (frames * 156 * 4 >> 20) + 1, others)
    return "pipelines.amass:read_amass", [str(p)], str(p)


def _special(kind: str, target: str, name: str):
    def build(work: Path):
        p = work / name  # short: a socket path must fit in 108 bytes
        if kind == "devzero":
            os.symlink("/dev/zero", p)
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(p))
            s.close()
        elif kind == "dir":
            p.mkdir()
        return target, [str(p)], str(p)
    return build


def _vp3d_meta(meta: dict):
    def build(work: Path):
        p = work / "data_2d_h36m_cpn_ft_h36m_dbb.npz"
        np.savez(p, **vp3d_2d_arrays(meta))
        return "pipelines.h36m:load_positions_2d", [str(p)], str(p)
    return build


def _h36m_unicode_subject(work: Path):
    d = work / "vp3d"
    d.mkdir()
    np.savez(d / "data_3d_h36m.npz", **vp3d_3d_arrays(("S1", "²")))
    np.savez(d / "data_2d_h36m_cpn_ft_h36m_dbb.npz", **vp3d_2d_arrays(None, ("S1", "²")))
    return "tests.support.hostile_cases:run_h36m_import", [str(d)], str(d)


def run_h36m_import(folder: str) -> int:
    from pipelines.h36m import import_h36m

    return len(list(import_h36m(folder)))


def _dmpl_missing(work: Path):
    from pipelines.synthetic.body_model import write_body_model_tree

    files = write_body_model_tree(work / "models")
    shutil.rmtree(work / "models" / "dmpls")
    p = work / "CMU" / "01" / "03_01_poses.npz"
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez(p, **amass_arrays(dmpls=True))
    return ("tests.support.hostile_cases:run_sequence_joints",
            [str(p), str(work / "models"), str(files["J_regressor_h36m"])], str(work / "models"))


def run_sequence_joints(path: str, models: str, regressor: str):
    from pipelines.amass import read_amass
    from pipelines.sequence import sequence_joints

    return sequence_joints(read_amass(path), models, regressor, 30.0).shape


def _legit_p2_empty(work: Path):
    p = work / "model.pkl"
    p.write_bytes(pickle.dumps({"empty": np.zeros((0, 3)), "e32": np.zeros(0, np.float32), "x": np.arange(3.0),
                                "s": np.float64(2.5), "n": np.int64(17)}, protocol=2))
    return "tests.support.hostile_cases:run_check_empty_pickle", [str(p)], str(p)


def run_check_empty_pickle(path: str) -> str:
    from pipelines.safe_pickle import safe_load_pickle

    out = safe_load_pickle(path)
    assert out["empty"].shape == (0, 3) and out["e32"].dtype == np.float32 and out["x"].tolist() == [0, 1, 2]
    assert out["s"] == 2.5 and out["n"] == 17
    return "ok"


def _legit_vp3d_p2(work: Path):
    """A VideoPose3D 3D file whose object member is a protocol-2 pickle with an empty camera array."""
    p = work / "data_3d_h36m.npz"
    pos = {"S1": {"Walking 1": np.zeros((8, 32, 3), np.float32), "Empty": np.zeros((0, 32, 3), np.float32)}}
    box = np.empty((), dtype=object)
    box[()] = pos
    write_zip(p, {"positions_3d": npy_header("|O", ()) + pickle.dumps(box, protocol=2)})
    return "pipelines.h36m:load_positions_3d", [str(p)], str(p)


def _marker_payload(work: Path) -> bytes:
    """A real code-execution payload (os.system touching the marker), for the pickled-global class."""
    marker = work / "payload.executed"  # the case's own folder (hostile_runner.payload_marker)
    return PROTO + global_op("posix", "system") + tuple_op(str_op(f"touch {marker}")) + REDUCE + STOP


def _exec_pkl(work: Path):
    p = work / "model.pkl"
    p.write_bytes(_marker_payload(work))
    return "pipelines.body_model:load_body_model", [str(p)], str(p)


CASES: tuple[Case, ...] = (
    # 1. memory corruption through dtype state
    Case("dtype_zero_flags_scalar_model_pkl", "memory_corruption", _body_model_pkl(object_scalar_pointer())),
    Case("dtype_zero_flags_scalar_vp3d_3d", "memory_corruption", _vp3d("3d", object_scalar_pointer())),
    Case("dtype_zero_flags_scalar_vp3d_2d", "memory_corruption", _vp3d("2d", b"]" + object_scalar_pointer() + b"a")),
    Case("dtype_object_field_past_item_model_pkl", "memory_corruption", _body_model_pkl(object_field_past_item())),
    Case("dtype_object_field_past_item_vp3d_3d", "memory_corruption", _vp3d("3d", object_field_past_item())),
    Case("global_os_system_model_pkl", "memory_corruption", _exec_pkl),
    # 2. nesting
    Case("nested_object_arrays_200k_vp3d", "nesting",
         lambda w: (lambda p: ("pipelines.h36m:load_positions_3d", [str(p)], str(p)))(
             write_zip(w / "data_3d_h36m.npz", {"positions_3d": npy_header("|O", ()) + nested_object_arrays(200_000)}))),
    Case("nested_object_arrays_40k_vp3d", "nesting",  # under the opcode limit: the depth limit refuses it
         lambda w: (lambda p: ("pipelines.h36m:load_positions_3d", [str(p)], str(p)))(
             write_zip(w / "data_3d_h36m.npz", {"positions_3d": npy_header("|O", ()) + nested_object_arrays(40_000)}))),
    Case("deep_list_pkl", "nesting", _pkl(deep_list(200_000), "pipelines.body_model:load_body_model")),
    Case("self_referencing_list_pkl", "nesting", _pkl(self_list(), "pipelines.body_model:load_body_model")),
    # 3. memory bombs
    Case("ndarray_call_375e6_objects_pkl", "memory_bomb", _pkl(ndarray_call(375_000_000))),
    Case("reconstruct_2e8_objects_pkl", "memory_bomb", _pkl(reconstruct_many_objects(200_000_000),
                                                            "tests.support.hostile_cases:run_load_objects")),
    Case("long_binput_150M_pkl", "memory_bomb", _pkl(long_binput(150_000_000))),
    Case("zero_itemsize_1e18_amass_member", "memory_bomb", _amass_member("poses", npy_header([], (10**18,)))),
    Case("zero_itemsize_1e18_regressor_npy", "memory_bomb", _regressor_file(".npy", npy_header([], (10**18,)))),
    Case("empty_coo_5e7_rows_regressor", "memory_bomb", _regressor_file(".npz", {
        "format": npy_bytes(np.array(b"coo")), "shape": npy_bytes(np.array([50_000_000, 6890])),
        "row": npy_bytes(np.zeros(0, np.int32)), "col": npy_bytes(np.zeros(0, np.int32)), "data": npy_bytes(np.zeros(0))})),
    Case("model_member_inflates_1_5GB", "memory_bomb", _model_inflating),
    Case("model_object_member", "memory_bomb", _model_object_member),
    Case("vp3d_object_member_over_cap", "memory_bomb", _vp3d_object_over_cap),
    Case("zip_directory_65k_members_amass", "memory_bomb",
         lambda w: (lambda p: ("pipelines.amass:read_amass", [str(p)], str(p)))(
             write_zip_many_members(w / "many_poses.npz", 65_535)), match="zip directory lists"),
    Case("zip_directory_65k_members_vp3d", "memory_bomb",
         lambda w: (lambda p: ("pipelines.h36m:load_positions_3d", [str(p)], str(p)))(
             write_zip_many_members(w / "data_3d_h36m.npz", 65_535)), match="zip directory lists"),
    Case("amass_poses_2GB_float32", "memory_bomb", _poses_float32(2.0)),
    # within the per-array cap as stored, over it once widened to float64: refused before reading
    Case("amass_poses_300MB_float32_doubled", "memory_bomb", _poses_float32(0.3)),
    # 4. special files
    Case("poses_symlink_dev_zero_read", "special_file", _special("devzero", "pipelines.amass:read_amass", "x_poses.npz")),
    Case("poses_symlink_dev_zero_hash", "special_file", _special("devzero", "pipelines.hashing:sha256_file", "x_poses.npz")),
    Case("poses_fifo_read", "special_file", _special("fifo", "pipelines.amass:read_amass", "x_poses.npz")),
    Case("poses_fifo_hash", "special_file", _special("fifo", "pipelines.hashing:sha256_file", "x_poses.npz")),
    Case("poses_socket_read", "special_file", _special("socket", "pipelines.amass:read_amass", "x_poses.npz")),
    Case("model_fifo", "special_file", _special("fifo", "pipelines.body_model:load_body_model", "model.npz")),
    Case("model_pkl_dev_zero", "special_file", _special("devzero", "pipelines.body_model:load_body_model", "model.pkl")),
    Case("regressor_fifo", "special_file", _special("fifo", "pipelines.body_model:load_regressor", "J.npy")),
    Case("regressor_dev_zero", "special_file", _special("devzero", "pipelines.body_model:load_regressor", "J.npz")),
    Case("regressor_directory", "special_file", _special("dir", "pipelines.body_model:load_regressor", "J.npy")),
    Case("vp3d_fifo", "special_file", _special("fifo", "pipelines.h36m:load_positions_3d", "data_3d_h36m.npz")),
    # 5. formerly untyped errors
    Case("vp3d_meta_layout_array", "untyped", _vp3d_meta({"layout_name": np.array(["h36m", "x"]), "num_joints": 17})),
    Case("vp3d_meta_num_joints_list", "untyped", _vp3d_meta({"layout_name": "h36m", "num_joints": [17]})),
    Case("vp3d_meta_num_joints_5000_digits", "untyped", _vp3d_meta({"layout_name": "h36m", "num_joints": "9" * 5000})),
    Case("vp3d_meta_symmetry_5000_digits", "untyped",
         _vp3d_meta({"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [["9" * 5000], [1]]})),
    # loads three real-size (6890-vertex) body models before it can see the missing DMPLs
    Case("dmpls_without_dmpl_model", "untyped", _dmpl_missing, budget_mb=600),
    Case("h36m_subject_superscript_two", "untyped", _h36m_unicode_subject, expect="loads"),
    # 6. legitimate files that must load
    Case("protocol2_pickle_empty_arrays", "legitimate", _legit_p2_empty, expect="loads"),
    Case("protocol2_vp3d_empty_array", "legitimate", _legit_vp3d_p2, expect="loads"),
)


def run_load_objects(path: str):
    """safe_load_pickle with object arrays allowed (as inside a VideoPose3D member)."""
    from pipelines.safe_pickle import safe_load_pickle

    return safe_load_pickle(path, allow_object=True)
