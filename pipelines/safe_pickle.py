"""Restricted unpickling for untrusted files (SMPL ``.pkl`` models, VideoPose3D ``.npz`` object arrays).

``pickle`` executes whatever callables a file names. This unpickler resolves only an allow-list of
globals: numpy array/dtype reconstruction, and inert stand-ins for the chumpy and scipy.sparse classes
found in SMPL-family model files (converted to numpy / scipy afterwards, never instantiated from the
file's state). Any other global raises :class:`UnsafePickleError` before anything is called.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse

from schemas.errors import InputError, UnsafePickleError


class _Stub:
    """Inert holder for an object's pickled state; ``__setstate__`` only stores it."""

    def __init__(self, *args):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state


class ChumpyStub(_Stub):
    """chumpy.Ch: its numeric value lives in ``state['x']``."""


class SparseStub(_Stub):
    """scipy.sparse csc/csr/coo matrix pickled by state dict."""

    format = None


def _sparse_stub(fmt: str) -> type:
    return type(f"{fmt}_stub", (SparseStub,), {"format": fmt})


def _reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to stubs over ``object``."""
    if base is not object or not (isinstance(cls, type) and issubclass(cls, _Stub)):
        raise pickle.UnpicklingError("copyreg._reconstructor used with a non-allow-listed class")
    return cls()


def _numpy_global(module: str, name: str):
    from numpy._core import multiarray, numeric  # numpy >= 2

    table = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): multiarray.scalar,
        ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,  # protocol 5
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
    }
    return table.get((module, name))


_CHUMPY_CLASSES = {("chumpy.ch", "Ch"), ("chumpy", "Ch"), ("chumpy.ch_ops", "add"),
                   ("chumpy.ch_ops", "multiply"), ("chumpy.reordering", "Select")}
_SPARSE_CLASSES = {
    (mod, f"{fmt}_matrix"): fmt
    for fmt in ("csc", "csr", "coo")
    for mod in ("scipy.sparse.csc", "scipy.sparse.csr", "scipy.sparse.coo",
                "scipy.sparse._csc", "scipy.sparse._csr", "scipy.sparse._coo", "scipy.sparse")
}
_SPARSE_STUBS = {fmt: _sparse_stub(fmt) for fmt in ("csc", "csr", "coo")}


def _latin1_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode allowed only for latin1 text")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only numpy arrays/dtypes and inert chumpy/scipy.sparse stand-ins."""

    def __init__(self, file: BinaryIO, path: str | os.PathLike | None = None):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        found = _numpy_global(module, name)
        if found is not None:
            return found
        if (module, name) in _CHUMPY_CLASSES:
            return ChumpyStub
        if (module, name) in _SPARSE_CLASSES:
            return _SPARSE_STUBS[_SPARSE_CLASSES[(module, name)]]
        if (module, name) in {("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")}:
            return _reconstructor
        if (module, name) in {("__builtin__", "object"), ("builtins", "object")}:
            return object
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles spell bytes
            return _latin1_encode
        raise UnsafePickleError(self._path, f"pickle refers to forbidden global {module}.{name}; nothing was executed")

    def persistent_load(self, pid):
        raise UnsafePickleError(self._path, "pickle uses persistent ids; refused")


def sparse_from_parts(fmt: str, parts: dict, shape) -> scipy.sparse.csr_matrix:
    """Build a CSR matrix from untrusted ``data``/``indices``/``indptr`` (or ``row``/``col``) arrays.

    scipy trusts its inputs: 2-D parts abort the process and out-of-range indices corrupt memory, so
    every part is checked (1-D, integer indices in range, consistent lengths) before scipy sees it.
    Raises ValueError with the reason.
    """
    shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    if len(shape) != 2 or min(shape) < 0:
        raise ValueError(f"shape {shape} is not a 2-D matrix shape")

    def vec(name, kind):
        arr = np.asarray(parts[name])
        if arr.ndim != 1 or arr.dtype.kind not in kind:
            raise ValueError(f"{name} must be a 1-D {'integer' if kind == 'iu' else 'numeric'} array, "
                             f"got {arr.dtype} {arr.shape}")
        return arr

    data = vec("data", "fiu").astype(np.float64)
    if fmt == "coo":
        row, col = vec("row", "iu").astype(np.int64), vec("col", "iu").astype(np.int64)
        if not (len(row) == len(col) == len(data)):
            raise ValueError("row, col and data lengths differ")
        if len(row) and (row.min() < 0 or row.max() >= shape[0] or col.min() < 0 or col.max() >= shape[1]):
            raise ValueError("coo indices out of range")
        return scipy.sparse.coo_matrix((data, (row, col)), shape=shape).tocsr()
    if fmt not in ("csr", "csc"):
        raise ValueError(f"unknown sparse format {fmt!r}")
    indices, indptr = vec("indices", "iu").astype(np.int64), vec("indptr", "iu").astype(np.int64)
    major, minor = (shape[0], shape[1]) if fmt == "csr" else (shape[1], shape[0])
    if len(indptr) != major + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(data):
        raise ValueError("indptr is inconsistent with the shape and data")
    if len(indices) != len(data) or (len(indices) and (indices.min() < 0 or indices.max() >= minor)):
        raise ValueError("indices out of range or inconsistent with data")
    cls = scipy.sparse.csr_matrix if fmt == "csr" else scipy.sparse.csc_matrix
    return scipy.sparse.csr_matrix(cls((data, indices, indptr), shape=shape))


def _convert(obj: Any, path) -> Any:
    """Replace stubs by numpy arrays / scipy matrices, recursively through containers."""
    if isinstance(obj, ChumpyStub):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "x" not in state:
            raise InputError(path, "chumpy object without a numeric value 'x'")
        return np.asarray(_convert(state["x"], path))
    if isinstance(obj, SparseStub):
        state = obj.state if isinstance(obj.state, dict) else {}
        try:
            return sparse_from_parts(obj.format, state, state.get("_shape", state.get("shape")))
        except Exception as exc:  # malformed sparse state
            raise InputError(path, f"malformed pickled sparse matrix: {exc}") from None
    if isinstance(obj, dict):
        return {k: _convert(v, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_convert(v, path) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_convert(v, path) for v in obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        out = np.empty(obj.shape, dtype=object)
        for idx, v in np.ndenumerate(obj):
            out[idx] = _convert(v, path)
        return out
    if isinstance(obj, _Stub):
        raise InputError(path, "unexpected pickled object")
    return obj


def safe_loads(data: bytes, path: str | os.PathLike | None = None) -> Any:
    """Unpickle ``data`` through the allow-list; raises UnsafePickleError / InputError."""
    return safe_load_stream(io.BytesIO(data), path)


def safe_load_stream(stream: BinaryIO, path: str | os.PathLike | None = None) -> Any:
    try:
        obj = RestrictedUnpickler(stream, path).load()
    except InputError:
        raise
    except RecursionError:
        raise InputError(path, "pickle nests too deeply") from None
    except MemoryError:
        raise InputError(path, "pickle declares more memory than is available") from None
    except Exception as exc:  # truncated or corrupt pickle
        raise InputError(path, f"corrupt pickle: {type(exc).__name__}: {exc}") from None
    return _convert(obj, path)


def safe_load_pickle(path: str | os.PathLike) -> Any:
    """Load a ``.pkl`` file (e.g. an SMPL model) through the allow-list."""
    try:
        with open(path, "rb") as fh:
            return safe_load_stream(fh, path)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None


def _read_npy_member(fh: BinaryIO, path: str, key: str, max_bytes: int) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=100_000)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=100_000)
    else:
        raise InputError(path, f"array {key!r}: unsupported .npy version {version}")
    if dtype.hasobject:
        arr = safe_load_stream(fh, f"{path}[{key}]")
        if not isinstance(arr, np.ndarray):
            raise InputError(path, f"array {key!r}: object payload is not an array")
        return arr
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    nbytes = count * dtype.itemsize
    if count < 0 or nbytes > max_bytes:
        raise InputError(path, f"array {key!r} declares {nbytes} bytes (shape {shape}); over the {max_bytes}-byte limit")
    data = fh.read(nbytes)
    if len(data) != nbytes:
        raise InputError(path, f"array {key!r} is truncated ({len(data)} of {nbytes} bytes)")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    order = "F" if fortran else "C"
    return arr.reshape(shape, order=order).copy()


def safe_load_npy(path: str | os.PathLike, max_bytes: int = 8 << 30) -> np.ndarray:
    """Read one ``.npy`` with its declared size checked before allocation; object arrays are refused."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            header = fh.read(6)
            fh.seek(0)
            if header != b"\x93NUMPY":
                raise InputError(path, "not a .npy file (bad magic)")
            fmt = np.lib.format
            version = fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            _, _, dtype = read(fh, max_header_size=100_000)
            if dtype.hasobject:
                raise InputError(path, "holds Python objects (needs pickle); refused")
            fh.seek(0)
            return _read_npy_member(fh, path, os.path.basename(path), max_bytes)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, TypeError, OverflowError) as exc:
        raise InputError(path, f"unreadable .npy: {type(exc).__name__}: {exc}") from None


def safe_load_npz(path: str | os.PathLike, max_member_bytes: int = 8 << 30) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz``; object arrays go through the restricted unpickler.

    Raises :class:`InputError` (or :class:`UnsafePickleError`) naming the file for anything malformed.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(path, "is a directory, expected an .npz file")
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"not a readable .npz (zip) file: {exc}") from None
    out: dict[str, np.ndarray] = {}
    with zf:
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with zf.open(info) as fh:
                    out[key] = _read_npy_member(fh, path, key, max_member_bytes)
            except InputError:
                raise
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, TypeError,
                    SyntaxError, OverflowError, NotImplementedError, RuntimeError) as exc:
                raise InputError(path, f"array {key!r} is unreadable: {type(exc).__name__}: {exc}") from None
    return out
