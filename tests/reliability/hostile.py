"""Hostile files (issue 16): generators for each attack class and a runner that isolates every case.

Each case writes one crafted file (or special file) under a work folder and names the loader that
must refuse it with a typed error naming the file (or, for the legitimate cases, load it). Payloads
only ever try to create ``<work>/payload.executed``.

The runner forks one child per case from a clean, single-threaded process (``python -m
tests.reliability.hostile run WORK``), so a segfault, a hang or a memory bomb ends that child only:
the parent records it as ``crash`` / ``hang`` / ``over_budget`` and goes on. Every child runs under
``RLIMIT_AS`` (its start size + 2 GiB) and ``RLIMIT_CPU``; its peak RSS growth is read from
``/proc/self/status`` (``VmHWM`` - ``VmRSS`` at start).

Used by ``tests/reliability/test_hostile.py`` (one test per case) and ``benchmarks/reliability_report.py``
(``hostile_*`` counts).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RSS_BUDGET_MB = 300  # "a few hundred MB" at most per case
HANG_S = 60.0  # a case still running after this is a hang


# ---------------------------------------------------------------------------------------------
# Hand-assembled pickles: the crafted states below cannot be produced by pickle.dumps


def _g(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _s(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _b(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def _i(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


MARK, TUPLE, REDUCE, BUILD, NONE, TRUE, FALSE, STOP = b"(", b"t", b"R", b"b", b"N", b"\x88", b"\x89", b"."
PROTO = b"\x80\x03"


def _tuple(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def _dtype(descr: str, order="|", names=None, fields: bytes | None = None, elsize=-1, flags=0) -> bytes:
    """``numpy.dtype(descr)`` + BUILD with a state whose flags/offsets we choose."""
    names_b = NONE if names is None else _tuple(*(_s(n) for n in names))
    fields_b = NONE if fields is None else fields
    state = _tuple(_i(3), _s(order), NONE, names_b, fields_b, _i(elsize), _i(-1 if elsize == -1 else 1), _i(flags))
    return _g("numpy", "dtype") + _tuple(_s(descr), FALSE, TRUE) + REDUCE + state + BUILD


def _array(shape: tuple, dtype: bytes, data: bytes) -> bytes:
    """``_reconstruct(ndarray, (0,), b'b')`` + BUILD((1, shape, dtype, False, data))."""
    head = _g("numpy._core.multiarray", "_reconstruct") + _tuple(_g("numpy", "ndarray"), _tuple(_i(0)), _b(b"b")) + REDUCE
    return head + _tuple(_i(1), _tuple(*(_i(s) if s < 2**31 else b"L" + str(s).encode() + b"L\n" for s in shape)),
                         dtype, FALSE, data) + BUILD


def _dict(**items: bytes) -> bytes:
    return b"}" + MARK + b"".join(_s(k) + v for k, v in items.items()) + b"u"


def object_scalar_pointer() -> bytes:
    """``scalar(dtype('O') with its flags zeroed, 8 bytes)``: numpy would use the bytes as a PyObject*."""
    return _g("numpy._core.multiarray", "scalar") + _tuple(_dtype("O8", flags=0), _b(b"\x41" * 8)) + REDUCE


def object_field_past_item() -> bytes:
    """A structured dtype whose object field sits 16 MiB past its 8-byte item, and an array of it."""
    fields = b"}" + MARK + _s("a") + _tuple(_dtype("O8", flags=63), _i(16 << 20)) + b"u"
    return _array((1,), _dtype("V8", names=("a",), fields=fields, elsize=8, flags=16 | 1), _b(bytes(8)))


def nested_object_arrays(depth: int) -> bytes:
    """``depth`` object arrays of shape (1,) each holding the next; globals and constant parts memoised."""
    setup = (_g("numpy._core.multiarray", "_reconstruct") + b"q\x00" + b"0"
             + _tuple(_g("numpy", "ndarray"), _tuple(_i(0)), _b(b"b")) + b"q\x01" + b"0"
             + _tuple(_i(1)) + b"q\x02" + b"0" + _dtype("O8", flags=63) + b"q\x03" + b"0")
    open_level = b"h\x00h\x01" + REDUCE + MARK + b"K\x01h\x02h\x03" + FALSE + b"]"
    close_level = b"a" + TUPLE + BUILD
    return PROTO + setup + open_level * depth + NONE + close_level * depth + STOP


def long_binput(index: int) -> bytes:
    """9 bytes: NONE, LONG_BINPUT index (the C unpickler sizes its memo table to the index)."""
    return b"\x80\x02N" + b"r" + struct.pack("<I", index) + STOP


def ndarray_call(n: int) -> bytes:
    """``numpy.ndarray((n,), 'O')`` called directly: allocates n pointers at unpickling."""
    return PROTO + _g("numpy", "ndarray") + _tuple(_tuple(_i(n)), _s("O")) + REDUCE + STOP


def reconstruct_many_objects(n: int) -> bytes:
    """An object array declaring ``n`` elements with a one-element list (numpy walks the declared count)."""
    return PROTO + _array((n,), _dtype("O8", flags=63), b"]" + NONE + b"a") + STOP


def deep_list(depth: int) -> bytes:
    return PROTO + b"]" * depth + NONE + b"a" * depth + STOP


def self_list() -> bytes:
    return pickle.dumps(_self_ref(), protocol=2)


def _self_ref() -> list:
    lst: list = [1]
    lst.append(lst)
    return {"v_template": lst}


# ---------------------------------------------------------------------------------------------
# Files: .npy members with crafted headers, zips with crafted directories


def npy_header(descr, shape, fortran=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buf.getvalue()


def object_member(pickled: bytes, shape=()) -> bytes:
    """A ``.npy`` member of dtype object whose body is ``pickled`` (a full pickle stream)."""
    body = pickled if pickled.startswith(b"\x80") else PROTO + pickled + STOP
    return npy_header("|O", shape) + body


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name if name.endswith(".npy") else name + ".npy", raw)
    return path


def write_zip_inflating(path: Path, name: str, header: bytes, zero_mib: int, others: dict[str, bytes] = {}) -> Path:
    """A valid zip whose member ``name`` is ``header`` + ``zero_mib`` MiB of zeros, deflated to ~1 KB/MiB.

    Repeats one full-flushed deflate block (no back-references across it), so a 1.5 GB member costs
    a few MB of file and no compression time (only its CRC is computed). Other members are stored.
    """
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = [head.compress(header) + head.flush(zlib.Z_FULL_FLUSH)]
    blk = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = blk.compress(bytes(1 << 20)) + blk.flush(zlib.Z_FULL_FLUSH)
    stream += [block] * zero_mib
    stream.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush())
    data = b"".join(stream)
    crc, zero = zlib.crc32(header), bytes(1 << 20)
    for _ in range(zero_mib):
        crc = zlib.crc32(zero, crc)
    size = len(header) + (zero_mib << 20)
    entries = [(name, 8, crc, data, size)] + [(n, 0, zlib.crc32(r), r, len(r)) for n, r in others.items()]
    out, central = bytearray(), bytearray()
    for n, method, c, payload, usize in entries:
        fn = n.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, c, len(payload), usize, len(fn), 0)
        out += fn + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, c, len(payload),
                               usize, len(fn), 0, 0, 0, 0, 0, offset) + fn
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path


def write_zip_many_members(path: Path, n: int) -> Path:
    """A zip of ``n`` empty stored members (~100 bytes each in the file, a ZipInfo each when parsed)."""
    out, central = bytearray(), bytearray()
    for i in range(n):
        fn = f"{i}.npy".encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, 0, 0, 0, len(fn), 0) + fn
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, 0, 0, 0, len(fn),
                               0, 0, 0, 0, 0, offset) + fn
    n16 = min(n, 0xFFFF)  # (a zip64 end record would carry the full count; the classic one is enough here)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n16, n16, len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path


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
        p.write_bytes(PROTO + _dict(v_template=payload, joints=payload) + STOP)
        return "pipelines.body_model:load_body_model", [str(p)], str(p)
    return build


def _vp3d(kind: str, payload: bytes):
    """A VideoPose3D 3D or 2D file whose object member's pickle holds ``payload`` inside the nesting."""
    def build(work: Path):
        p = work / f"data_{kind}_h36m.npz"
        key = "positions_3d" if kind == "3d" else "positions_2d"
        inner = _dict(S1=_dict(**{"Walking 1": payload}))
        members = {key: object_member(PROTO + _array((), _dtype("O8", flags=63), b"]" + inner + b"a") + STOP)}
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
        members = {k: _npy(v) for k, v in amass_arrays().items()}
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
    big = _array((4_000_000, 32, 3), _dtype("f4", "<"), _b(bytes(64)))
    inner = _dict(S1=_dict(**{"Walking 1": big}))
    write_zip(p, {"positions_3d": object_member(PROTO + _array((), _dtype("O8", flags=63), b"]" + inner + b"a") + STOP)})
    return "pipelines.h36m:load_positions_3d", [str(p)], str(p)


def _poses_float32(gib: float):
    """AMASS ``poses`` of ``gib`` GiB of float32 (widened to float64 on load: twice that held)."""
    return lambda work: _poses_big(work, int(gib * (1 << 30)))


def _poses_big(work: Path, nbytes: int):
    p = work / "CMU" / "01" / "02_01_poses.npz"
    p.parent.mkdir(parents=True, exist_ok=True)
    frames = nbytes // (156 * 4) + 1
    others = {f"{k}.npy": _npy(v) for k, v in amass_arrays().items() if k != "poses"}
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
    return "tests.reliability.hostile:run_h36m_import", [str(d)], str(d)


def run_h36m_import(folder: str) -> int:
    from pipelines.h36m import import_h36m

    return len(list(import_h36m(folder)))


def _dmpl_missing(work: Path):
    from pipelines.synthetic.body_model import write_body_model_tree

    files = write_body_model_tree(work / "models")
    import shutil

    shutil.rmtree(work / "models" / "dmpls")
    p = work / "CMU" / "01" / "03_01_poses.npz"
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez(p, **amass_arrays(dmpls=True))
    return ("tests.reliability.hostile:run_sequence_joints",
            [str(p), str(work / "models"), str(files["J_regressor_h36m"])], str(work / "models"))


def run_sequence_joints(path: str, models: str, regressor: str):
    from pipelines.amass import read_amass
    from pipelines.sequence import sequence_joints

    return sequence_joints(read_amass(path), models, regressor, 30.0).shape


def _legit_p2_empty(work: Path):
    p = work / "model.pkl"
    p.write_bytes(pickle.dumps({"empty": np.zeros((0, 3)), "e32": np.zeros(0, np.float32), "x": np.arange(3.0),
                                "s": np.float64(2.5), "n": np.int64(17)}, protocol=2))
    return "tests.reliability.hostile:run_check_empty_pickle", [str(p)], str(p)


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
    marker = work.parent / "payload.executed"
    return PROTO + _g("posix", "system") + _tuple(_s(f"touch {marker}")) + REDUCE + STOP


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
                                                            "tests.reliability.hostile:run_load_objects")),
    Case("long_binput_150M_pkl", "memory_bomb", _pkl(long_binput(150_000_000))),
    Case("zero_itemsize_1e18_amass_member", "memory_bomb", _amass_member("poses", npy_header([], (10**18,)))),
    Case("zero_itemsize_1e18_regressor_npy", "memory_bomb", _regressor_file(".npy", npy_header([], (10**18,)))),
    Case("empty_coo_5e7_rows_regressor", "memory_bomb", _regressor_file(".npz", {
        "format": _npy(np.array(b"coo")), "shape": _npy(np.array([50_000_000, 6890])),
        "row": _npy(np.zeros(0, np.int32)), "col": _npy(np.zeros(0, np.int32)), "data": _npy(np.zeros(0))})),
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


# ---------------------------------------------------------------------------------------------
# Runner


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(case: Case, work: Path, fd: int) -> None:
    """In the forked child: build the case, run its target, write one JSON result to ``fd``."""
    res: dict = {"outcome": "loaded", "message": ""}
    import faulthandler

    faulthandler.disable()  # a crash is recorded by the parent as its signal; no dump into the test output
    try:
        cdir = work / case.name
        cdir.mkdir(parents=True, exist_ok=True)
        target, args, named = case.build(cdir)
        res["file"] = named
        size = _status_kb("VmSize") * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_CPU, (int(HANG_S), int(HANG_S) + 5))
        module, fn = target.split(":")
        import importlib

        func = getattr(importlib.import_module(module), fn)
        try:  # reset the peak RSS, so the case's own construction does not count
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        rss0 = _status_kb("VmRSS")
        t0 = time.perf_counter()
        try:
            value = func(*args)
            res["message"] = " ".join(repr(value).split())[:200]
        except Exception as exc:  # classified below
            from schemas.errors import InputError

            res["message"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            if isinstance(exc, InputError):
                res["outcome"] = "typed" if named in str(exc) else "typed_unnamed"
                res["memory_error"] = "MemoryError" in str(exc) or "more memory than" in str(exc)
            else:
                res["outcome"] = "untyped"
        res["seconds"] = time.perf_counter() - t0
        res["rss_mb"] = max(0, _status_kb("VmHWM") - rss0) / 1024
    except BaseException as exc:  # the case's own construction failed
        res.update(outcome="setup_error", message=f"{type(exc).__name__}: {exc}"[:300])
    os.write(fd, json.dumps(res).encode())
    os.close(fd)
    os._exit(0)


def run_case(case: Case, work: Path, hang_s: float = HANG_S) -> dict:
    """Fork, run one case, classify: typed / loaded / untyped / typed_unnamed / crash / hang (+ ok, over_budget)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            _child(case, work, w)
        finally:
            os._exit(3)
    os.close(w)
    chunks, deadline, status = [], time.monotonic() + hang_s, None
    while True:
        ready, _, _ = select.select([r], [], [], 0.2)
        if ready:
            data = os.read(r, 1 << 16)
            if data:
                chunks.append(data)
                continue
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            rest = os.read(r, 1 << 16) if select.select([r], [], [], 0)[0] else b""
            chunks.append(rest)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
    os.close(r)
    raw = b"".join(chunks)
    res = {"name": case.name, "category": case.category, "expect": case.expect}
    if status is None:
        res.update(outcome="hang", message=f"still running after {hang_s:.0f} s")
    elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        res.update(outcome="hang", message=f"used {HANG_S:.0f} s of CPU (RLIMIT_CPU)")
    elif os.WIFSIGNALED(status):
        res.update(outcome="crash", message=f"killed by signal {os.WTERMSIG(status)}")
    elif not raw:
        res.update(outcome="crash", message=f"exited {os.WEXITSTATUS(status)} without a result")
    else:
        res.update(json.loads(raw))
    res["payload_ran"] = (work / "payload.executed").exists()
    res["over_budget"] = bool(res.get("rss_mb", 0) > case.budget_mb or res.get("memory_error"))
    want = "typed" if case.expect == "typed" else "loaded"
    res["ok"] = (res["outcome"] == want and not res["over_budget"] and not res["payload_ran"]
                 and case.match in res.get("message", ""))
    return res


def run_all(work: Path, names=None) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    return [run_case(c, work) for c in CASES if names is None or c.name in names]


def summary(results: list[dict]) -> dict:
    """The counts reported in reliability_report.py's JSON line."""
    heavy = {c.name for c in CASES if c.budget_mb > RSS_BUDGET_MB}
    light = [r for r in results if r["name"] not in heavy]
    return {
        "hostile_cases": len(results),
        "hostile_crashes": sum(r["outcome"] == "crash" for r in results),
        "hostile_hangs": sum(r["outcome"] == "hang" for r in results),
        "hostile_over_budget": sum(bool(r["over_budget"]) for r in results),
        "hostile_untyped": sum(r["outcome"] in ("untyped", "typed_unnamed", "setup_error") for r in results),
        "hostile_wrong": sum(not r["ok"] for r in results),
        "hostile_payloads": sum(bool(r["payload_ran"]) for r in results),
        # cases that first load real-size body models (dmpls_without_dmpl_model) are left out of the maxima
        "hostile_max_seconds": round(max((r.get("seconds", 0.0) for r in light), default=0.0), 3),
        "hostile_max_rss_mb": round(max((r.get("rss_mb", 0.0) for r in light), default=0.0), 1),
    }


def run_suite(work: Path, names=None, timeout_s: float = 1800) -> list[dict]:
    """Run every case from a fresh, single-threaded interpreter (fork-safe), return the per-case results."""
    out = Path(work) / "hostile_results.json"
    cmd = [sys.executable, "-m", "tests.reliability.hostile", "run", str(work), "--out", str(out)]
    if names:
        cmd += ["--only", ",".join(names)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"hostile runner failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out.read_text())


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="run the hostile-file cases, one forked child each")
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("work", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", default="")
    args = ap.parse_args(argv)
    # preload what the cases use, so children fork with it (and each case's timing is its own)
    import pipelines.amass  # noqa: F401
    import pipelines.body_model  # noqa: F401
    import pipelines.build_amass  # noqa: F401
    import pipelines.h36m  # noqa: F401

    results = run_all(args.work, set(args.only.split(",")) if args.only else None)
    for r in results:
        print(f"{r['name']:42s} {r['outcome']:14s} ok={r['ok']!s:5s} {r.get('seconds', 0):6.3f}s "
              f"{r.get('rss_mb', 0):7.1f}MB  {r['message'][:110]}")
    print(json.dumps(summary(results)))
    if args.out:
        args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
