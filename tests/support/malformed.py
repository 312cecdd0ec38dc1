"""Malformed input files for fuzzing the loaders: every way a third-party file can be broken.

Each ``write_*`` function takes a ``numpy.random.Generator``, a mutation name and a path, writes one
malformed (or occasionally still valid) file there and returns a short description. The
reliability suite drives them with hypothesis; ``benchmarks/reliability_report.py`` with seeds.
Pickle payloads write a marker file when executed; ``marker`` names it, so a caller can prove that
nothing ran. Harness code (moved from ``pipelines.synthetic``): the pipelines never use it.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np


class Payload:
    """Unpickling this calls ``os.system`` (or ``open``) and leaves a marker file behind."""

    def __init__(self, marker: str, how: str = "system"):
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "open":
            return (open, (self.marker, "w"))
        return (os.system, (f"touch {self.marker}",))


# Common file-level corruptions, applicable to every input kind.
FILE_MUTATIONS = ("truncate", "random_bytes", "empty", "directory", "bad_member", "huge_shape",
                  "payload", "nested_payload")
ARRAY_MUTATIONS = ("drop_key", "extra_key", "wrong_dtype", "wrong_shape", "nan", "inf", "object_array",
                   "zero_length", "scalar", "string")


def _save_npz(path: Path, arrays: dict, compress: bool = False) -> None:
    with open(path, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **arrays)


def _object(value) -> np.ndarray:
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


def _huge_member(name: str) -> tuple[str, bytes]:
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**31, 2**20)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return f"{name}.npy", buf.getvalue() + b"\0" * 256


def _apply_file_mutation(mutation: str, rng: np.random.Generator, path: Path, good: dict, marker: str,
                         compress: bool) -> str:
    key = str(rng.choice(sorted(good))) if good else "x"
    if mutation == "truncate":
        _save_npz(path, good, compress)
        raw = path.read_bytes()
        cut = int(rng.integers(0, max(1, len(raw) - 1)))
        path.write_bytes(raw[:cut])
        return f"truncated at {cut} of {len(raw)} bytes"
    if mutation == "random_bytes":
        n = int(rng.integers(1, 4096))
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        if rng.random() < 0.5:
            data = b"PK\x03\x04" + data  # looks like a zip at first glance
        path.write_bytes(data)
        return f"{n} random bytes"
    if mutation == "empty":
        path.write_bytes(b"")
        return "empty file"
    if mutation == "directory":
        path.mkdir(parents=True, exist_ok=True)
        return "a directory where a file should be"
    if mutation == "bad_member":
        _save_npz(path, good, compress)
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(f"{key}_junk.npy", b"\x93NUMPY\x09\x00garbage-header")
        return "a member with a corrupt .npy header"
    if mutation == "huge_shape":
        _save_npz(path, {k: v for k, v in good.items() if k != key}, compress)
        name, data = _huge_member(key)
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(name, data)
        return f"{key} declares a 2**51-element array"
    if mutation == "payload":
        arrays = dict(good)
        arrays[key] = _object(Payload(marker, how=str(rng.choice(["system", "open"]))))
        _save_npz(path, arrays, compress)
        return f"{key} is a pickle whose __reduce__ runs a command"
    if mutation == "nested_payload":
        arrays = dict(good)
        arrays[key] = _object({"S1": {"Walk": [np.zeros(3), {"deep": Payload(marker)}]}})
        _save_npz(path, arrays, compress)
        return f"{key} hides a payload inside nested containers"
    raise ValueError(mutation)


def _mutate_arrays(mutation: str, rng: np.random.Generator, good: dict) -> tuple[dict, str]:
    arrays = dict(good)
    key = str(rng.choice(sorted(arrays)))
    value = np.asarray(arrays[key])
    if mutation == "drop_key":
        drop = rng.choice(sorted(arrays), size=int(rng.integers(1, len(arrays) + 1)), replace=False)
        for k in drop:
            arrays.pop(str(k))
        arrays.setdefault("unrelated", np.zeros(1))
        return arrays, f"dropped {sorted(map(str, drop))}"
    if mutation == "extra_key":
        arrays[f"extra_{int(rng.integers(1000))}"] = rng.normal(size=int(rng.integers(1, 10)))
        return arrays, "extra key (may still be valid)"
    if mutation == "wrong_dtype":
        dtype = str(rng.choice(["int8", "uint16", "bool", "complex64", "U3", "S2", "float16"]))
        try:
            arrays[key] = value.astype(dtype)
        except (TypeError, ValueError):
            arrays[key] = np.zeros(value.shape, dtype=dtype)
        return arrays, f"{key} as {dtype}"
    if mutation == "wrong_shape":
        shape = list(value.shape) or [1]
        axis = int(rng.integers(0, len(shape)))
        shape[axis] = max(0, shape[axis] + int(rng.choice([-3, -1, 1, 2, 7])))
        if rng.random() < 0.3:
            shape.append(int(rng.integers(1, 4)))
        arrays[key] = rng.normal(size=shape)
        return arrays, f"{key} reshaped to {shape}"
    if mutation in ("nan", "inf"):
        if value.dtype.kind != "f" or value.size == 0:
            value = np.asarray(value, dtype=np.float64) if value.dtype.kind in "iuf" else np.zeros(3)
        value = value.astype(np.float64).copy()
        flat = value.reshape(-1)
        flat[int(rng.integers(0, flat.size))] = np.nan if mutation == "nan" else -np.inf
        arrays[key] = value
        return arrays, f"{mutation} in {key}"
    if mutation == "object_array":
        arrays[key] = np.array([value, "x", None], dtype=object)
        return arrays, f"{key} as an object array"
    if mutation == "zero_length":
        shape = list(value.shape) or [0]
        shape[0] = 0
        arrays[key] = np.zeros(shape, dtype=value.dtype if value.dtype.kind != "O" else np.float64)
        return arrays, f"{key} with zero length"
    if mutation == "scalar":
        arrays[key] = np.float64(rng.normal())
        return arrays, f"{key} as a 0-d scalar"
    if mutation == "string":
        arrays[key] = np.array("not numbers")
        return arrays, f"{key} as a string"
    raise ValueError(mutation)


# --- valid templates per input kind (small, so that each case stays cheap) ----------------------


def amass_template(rng: np.random.Generator, frames: int = 12) -> dict:
    return {"poses": rng.normal(scale=0.2, size=(frames, 156)), "trans": rng.normal(size=(frames, 3)),
            "betas": rng.normal(size=16), "dmpls": rng.normal(scale=0.1, size=(frames, 8)),
            "gender": np.array(str(rng.choice(["male", "female"]))), "mocap_framerate": np.array(120.0)}


# Keys the SMPL+H loader needs; the large float arrays as float32 (the loader accepts any real dtype)
_FULL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


@functools.lru_cache(maxsize=1)
def _full_body_model() -> dict:
    from pipelines.synthetic.body_model import make_body_model

    m = make_body_model("male", seed=0)
    out = {k: (m[k].astype(np.float32) if m[k].dtype == np.float64 and m[k].size > 10_000 else m[k])
           for k in _FULL_KEYS}
    for a in out.values():
        a.flags.writeable = False  # shared by every case: mutations must copy
    return out


def full_body_model_template(rng: np.random.Generator) -> dict:
    """The procedural 6890-vertex SMPL+H model (valid as is), so mutations reach the loader's deep checks."""
    return dict(_full_body_model())


# Mutations that keep the file well-formed and the shapes plausible, so only the loader's semantic
# checks (skinning weights, faces, kinematic tree, vertex counts) can catch them.
DEEP_BODY_MODEL_MUTATIONS = ("weights_not_normalised", "negative_weights", "face_out_of_range", "kintree_cycle",
                             "kintree_reordered", "vertex_count", "posedirs_joints", "v_template_nonfinite",
                             "joint_count")


def _deep_body_model(mutation: str, rng: np.random.Generator, good: dict) -> tuple[dict, str]:
    a = dict(good)
    V = a["v_template"].shape[0]
    if mutation == "weights_not_normalised":
        w = np.array(a["weights"])
        rows = rng.choice(V, size=int(rng.integers(1, 50)), replace=False)
        w[rows] *= rng.uniform(1.05, 3.0)
        a["weights"] = w
        return a, f"skinning weights of {len(rows)} vertices scaled"
    if mutation == "negative_weights":
        w = np.array(a["weights"])
        v, j = int(rng.integers(V)), int(rng.integers(w.shape[1]))
        w[v, j] = -abs(w[v, j]) - 0.1
        return {**a, "weights": w}, f"negative weight at vertex {v}"
    if mutation == "face_out_of_range":
        f = np.array(a["f"])
        i = int(rng.integers(f.size))
        f.reshape(-1)[i] = int(rng.choice([V, V + int(rng.integers(1, 1000)), -1 - int(rng.integers(5))]))
        return {**a, "f": f}, f"face index {f.reshape(-1)[i]} at {i}"
    if mutation == "kintree_cycle":
        k = np.array(a["kintree_table"])
        j = int(rng.integers(1, k.shape[1]))
        k[0, j] = int(rng.integers(j, k.shape[1]))  # a parent after (or equal to) its child
        return {**a, "kintree_table": k}, f"joint {j} parent {k[0, j]}"
    if mutation == "kintree_reordered":
        k = np.array(a["kintree_table"])
        i, j = sorted(int(x) for x in rng.choice(np.arange(1, k.shape[1]), size=2, replace=False))
        k[0, j] = k[0, i] if k[0, j] != k[0, i] else max(0, i - 1)  # still a tree, not the SMPL+H one
        return {**a, "kintree_table": k}, f"joint {j} re-parented"
    if mutation == "vertex_count":
        n = int(rng.integers(V - 200, V - 1))
        return {**a, **{k: np.array(a[k][:n]) for k in ("v_template", "shapedirs", "posedirs", "weights")},
                "J_regressor": np.array(a["J_regressor"][:, :n]), "f": np.array(a["f"]) % n}, f"{n} vertices throughout"
    if mutation == "posedirs_joints":
        c = a["posedirs"].shape[2] - 9 * int(rng.integers(1, 4))
        return {**a, "posedirs": np.array(a["posedirs"][:, :, :c])}, f"posedirs with {c} columns"
    if mutation == "v_template_nonfinite":
        v = np.array(a["v_template"])
        v[int(rng.integers(V)), int(rng.integers(3))] = float(rng.choice([np.nan, np.inf, -np.inf]))
        return {**a, "v_template": v}, "non-finite vertex"
    if mutation == "joint_count":
        jb = int(rng.choice([24, 55, 51, 53]))
        w = rng.random((V, jb))
        w /= w.sum(1, keepdims=True)
        return {**a, "weights": w}, f"weights for {jb} joints"
    raise ValueError(mutation)


def mutations(kind: str) -> tuple[str, ...]:
    """Every mutation the writer of ``kind`` knows."""
    return MUTATIONS + (DEEP_BODY_MODEL_MUTATIONS if kind == "body_model" else ())


def regressor_template(rng: np.random.Generator, n_verts: int = 6890) -> np.ndarray:
    reg = np.zeros((17, n_verts))
    for j in range(17):
        idx = rng.choice(n_verts, size=6, replace=False)
        reg[j, idx] = rng.random(6)
        reg[j] /= reg[j].sum()
    return reg


def vp3d_template(rng: np.random.Generator, kind: str) -> dict:
    if kind == "3d":
        return {"positions_3d": _object({"S1": {"Walking 1": rng.normal(size=(8, 32, 3)).astype(np.float32)}})}
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    cams = [rng.uniform(0, 1000, size=(8, 17, 2)).astype(np.float32) for _ in range(4)]
    return {"positions_2d": _object({"S1": {"Walking 1": cams}}), "metadata": _object(meta)}


# --- writers per input kind ---------------------------------------------------------------------


def write_malformed_amass(rng: np.random.Generator, mutation: str, path: Path, marker: str) -> str:
    path = Path(path)
    good = amass_template(rng)
    if mutation in FILE_MUTATIONS:
        return _apply_file_mutation(mutation, rng, path, good, marker, compress=bool(rng.random() < 0.3))
    arrays, what = _mutate_arrays(mutation, rng, good)
    _save_npz(path, arrays)
    return what


def write_malformed_body_model(rng: np.random.Generator, mutation: str, path: Path, marker: str) -> str:
    path = Path(path)
    good = full_body_model_template(rng)
    if mutation in DEEP_BODY_MODEL_MUTATIONS:
        arrays, what = _deep_body_model(mutation, rng, good)
        if path.suffix == ".pkl":
            path.write_bytes(pickle.dumps(arrays, protocol=int(rng.integers(2, 6))))
        else:
            _save_npz(path, arrays)
        return what
    if path.suffix == ".pkl":
        if mutation in ("payload", "nested_payload", "truncate", "random_bytes", "empty", "directory"):
            if mutation == "directory":
                path.mkdir(parents=True, exist_ok=True)
                return "directory"
            if mutation == "empty":
                path.write_bytes(b"")
                return "empty"
            obj = dict(good)
            if mutation in ("payload", "nested_payload"):
                obj["shapedirs"] = Payload(marker) if mutation == "payload" else [{"x": Payload(marker)}]
            raw = pickle.dumps(obj, protocol=int(rng.integers(2, 6)))
            if mutation == "truncate":
                raw = raw[: int(rng.integers(0, len(raw)))]
            if mutation == "random_bytes":
                raw = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
            path.write_bytes(raw)
            return f"pkl: {mutation}"
        arrays, what = _mutate_arrays(mutation if mutation in ARRAY_MUTATIONS else "wrong_shape", rng, good)
        path.write_bytes(pickle.dumps(arrays, protocol=2))
        return f"pkl: {what}"
    if mutation in FILE_MUTATIONS:
        return _apply_file_mutation(mutation, rng, path, good, marker, compress=False)
    arrays, what = _mutate_arrays(mutation, rng, good)
    _save_npz(path, arrays)
    return what


def write_malformed_regressor(rng: np.random.Generator, mutation: str, path: Path, marker: str) -> str:
    path = Path(path)
    reg = regressor_template(rng, n_verts=int(rng.choice([6890, 6890, 100])))
    if path.suffix == ".npy":
        if mutation in ("payload", "nested_payload", "object_array"):
            np.save(path, np.array([Payload(marker), reg], dtype=object))  # np.save pickles objects
            return "object .npy with a payload"
        if mutation in ("truncate", "random_bytes", "empty", "directory", "huge_shape"):
            if mutation == "directory":
                path.mkdir(parents=True, exist_ok=True)
                return "directory"
            np.save(path, reg)
            raw = path.read_bytes()
            if mutation == "truncate":
                raw = raw[: int(rng.integers(0, len(raw)))]
            elif mutation == "random_bytes":
                raw = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
            elif mutation == "empty":
                raw = b""
            else:
                raw = _huge_member("r")[1]
            path.write_bytes(raw)
            return f"npy: {mutation}"
        arrays, what = _mutate_arrays(mutation if mutation in ARRAY_MUTATIONS else "nan", rng, {"r": reg})
        value = arrays.get("r", np.zeros(3))
        np.save(path, value)
        return f"npy: {what}"
    # scipy.sparse.save_npz layout: data, indices, indptr, format, shape
    import scipy.sparse as sp

    csr = sp.csr_matrix(reg)
    good = {"data": csr.data, "indices": csr.indices, "indptr": csr.indptr, "format": np.array(b"csr"),
            "shape": np.array(csr.shape)}
    if mutation in FILE_MUTATIONS:
        return _apply_file_mutation(mutation, rng, path, good, marker, compress=bool(rng.random() < 0.5))
    arrays, what = _mutate_arrays(mutation, rng, good)
    _save_npz(path, arrays)
    return f"sparse npz: {what}"


def write_malformed_vp3d(rng: np.random.Generator, mutation: str, path: Path, marker: str) -> str:
    path = Path(path)
    kind = str(rng.choice(["3d", "2d"]))
    good = vp3d_template(rng, kind)
    if mutation in FILE_MUTATIONS:
        return _apply_file_mutation(mutation, rng, path, good, marker, compress=bool(rng.random() < 0.5))
    if mutation in ("wrong_shape", "nan", "wrong_dtype", "zero_length", "string", "scalar", "object_array"):
        # corrupt inside the pickled structure, where the real content lives
        top = "positions_3d" if kind == "3d" else "positions_2d"
        tree = good[top].item()
        leaf = tree["S1"]["Walking 1"]
        arr = leaf if kind == "3d" else leaf[int(rng.integers(0, 4))]
        if mutation == "wrong_shape":
            bad = rng.normal(size=(arr.shape[0], int(rng.choice([16, 31, 33])), arr.shape[-1] + int(rng.choice([0, 1]))))
        elif mutation == "nan":
            bad = arr.copy()
            bad[0, 0, 0] = np.nan
        elif mutation == "wrong_dtype":
            bad = arr.astype(str(rng.choice(["int8", "complex64", "U2"])))
        elif mutation == "zero_length":
            bad = arr[:0]
        elif mutation == "string":
            bad = "not an array"
        elif mutation == "scalar":
            bad = 3.5
        else:
            bad = {"nested": [None, {1, 2}, (3, 4)]}
        if kind == "3d":
            tree["S1"]["Walking 1"] = bad
        else:
            leaf[int(rng.integers(0, 4))] = bad
        good[top] = _object(tree)
        _save_npz(path, good)
        return f"{kind}: {mutation} inside the pickled dict"
    arrays, what = _mutate_arrays(mutation, rng, good)
    _save_npz(path, arrays)
    return f"{kind}: {what}"


WRITERS = {
    "amass": (write_malformed_amass, (".npz",)),
    "body_model": (write_malformed_body_model, (".npz", ".pkl")),
    "regressor": (write_malformed_regressor, (".npy", ".npz")),
    "vp3d": (write_malformed_vp3d, (".npz",)),
}
MUTATIONS = FILE_MUTATIONS + ARRAY_MUTATIONS
