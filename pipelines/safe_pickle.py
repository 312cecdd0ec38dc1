"""Restricted unpickling for untrusted files (SMPL ``.pkl`` models, VideoPose3D ``.npz`` object arrays).

``pickle`` executes whatever callables a file names, and numpy's own reconstruction trusts the state it
is given (a dtype's flags and field offsets, an array's element count): a 116-byte pickle that reaches
``dtype.__setstate__`` makes numpy read 8 file bytes as an object pointer. So *no numpy or scipy code
runs while a pickle is parsed*: every allow-listed global resolves to an inert stand-in of ours
(dtype, array, scalar, chumpy, scipy.sparse), which only records its arguments and state. After the
parse, :class:`_Converter` turns the stand-ins into real objects, validating each one first:

- dtypes are rebuilt from a checked descr (kind, size, byte order; structured fields with offsets
  that fit the item); no flags or offsets from the file reach numpy; object dtypes only where the
  caller expects object arrays; zero-itemsize dtypes refused;
- arrays are built from byte strings of exactly ``count x itemsize`` bytes (object arrays from a
  list of exactly ``count`` items), against per-array and per-file budgets;
- nesting depth, container elements and shared references (a self-referencing list, a "billion
  laughs" DAG) are bounded; the structure is walked with a depth counter, never unbounded recursion.

Before the parse, the opcode stream is scanned (``pickletools.genops``) for its opcode count and
memo indices, so a 9-byte ``LONG_BINPUT 150000000`` cannot make the unpickler allocate 2 GB.

With that, the allow-list is safe in-process: the unpickler only ever calls our own constructors,
``bytes()`` and a latin-1 encode, so there is nothing left for a crafted file to corrupt. (A worker
process per file would cost a process start and a copy of every array; see the issue-16 report.)
Any problem raises :class:`UnsafePickleError` / :class:`InputError` naming the file.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import re
import zipfile
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse

from pipelines.safe_files import DEFAULT_LIMITS, Limits, open_regular, open_zip
from schemas.errors import InputError, UnsafePickleError

# Largest sparse matrix side accepted from a file (an SMPL-X model has 10475 vertices); a COO of shape
# (5e7, 6890) would otherwise allocate 400 MB of index pointers with no data at all.
MAX_SPARSE_SIDE = 100_000


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


class _DtypeStub(_Stub):
    """``numpy.dtype(obj, align, copy)`` + BUILD(state): recorded, rebuilt by :func:`_dtype_from`."""


class _ArrayStub(_Stub):
    """``_reconstruct(ndarray, ...)`` + BUILD((version, shape, dtype, fortran, data)), or ``_frombuffer``."""


class _ScalarStub(_Stub):
    """``numpy._core.multiarray.scalar(dtype, data)``."""


class _NdarrayClass:
    """Stands for the ``numpy.ndarray`` global; not callable, so ``ndarray((375e6,), 'O')`` cannot run."""


_NDARRAY = _NdarrayClass()


def _sparse_stub(fmt: str) -> type:
    return type(f"{fmt}_stub", (SparseStub,), {"format": fmt})


def _reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to stubs over ``object``."""
    if base is not object or not (isinstance(cls, type) and issubclass(cls, (ChumpyStub, SparseStub))):
        raise pickle.UnpicklingError("copyreg._reconstructor used with a non-allow-listed class")
    return cls()


def _np_reconstruct(cls, shape=None, typecode=None):
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _ArrayStub()


def _np_frombuffer(buf, dtype, shape, order="C"):
    stub = _ArrayStub()
    stub.state = (1, shape, dtype, order == "F", buf if isinstance(buf, (bytes, bytearray)) else None)
    if order not in ("C", "F"):
        stub.state = None  # refused by the converter
    return stub


def _np_scalar(dtype, data=None):
    return _ScalarStub(dtype, data)


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeStub,
    **{(mod, "_reconstruct"): _np_reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _np_scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "_frombuffer"): _np_frombuffer for mod in ("numpy.core.numeric", "numpy._core.numeric")},  # protocol 5
}


def _numpy_global(module: str, name: str):
    return _NUMPY_GLOBALS.get((module, name))


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


def _empty_bytes(*args):
    """``bytes()``: how protocol 2 spells an empty byte string (e.g. the data of an empty array)."""
    if args:
        raise pickle.UnpicklingError("builtins.bytes allowed only without arguments")
    return b""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose globals are all inert stand-ins (see the module docstring); nothing from the file runs."""

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
        if (module, name) in {("__builtin__", "bytes"), ("builtins", "bytes")}:  # protocol 2: b""
            return _empty_bytes
        raise UnsafePickleError(self._path, f"pickle refers to forbidden global {module}.{name}; nothing was executed")

    def persistent_load(self, pid):
        raise UnsafePickleError(self._path, "pickle uses persistent ids; refused")


# ---------------------------------------------------------------------------------------------
# Before the parse: opcode count and memo indices


_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_REFUSED_OPS = {"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"}


def prescan_pickle(data: bytes, path, limits: Limits = DEFAULT_LIMITS) -> int:
    """Walk the opcodes of ``data`` without executing them; returns the opcode count.

    Refuses streams over ``limits.max_pickle_ops`` opcodes, memo indices over ``limits.max_memo``
    (the C unpickler sizes its memo table by the largest index), persistent ids and the copyreg
    extension registry. Raises InputError / UnsafePickleError.
    """
    ops = memo = 0
    try:
        for op, arg, _ in pickletools.genops(data):
            ops += 1
            if ops > limits.max_pickle_ops:
                raise InputError(path, f"pickle has more than {limits.max_pickle_ops} opcodes; over the limit")
            name = op.name
            if name in _PUT_OPS:
                idx = int(arg)
                if not 0 <= idx <= limits.max_memo:
                    raise InputError(path, f"pickle memo index {idx} is over the limit of {limits.max_memo}")
            elif name == "MEMOIZE":
                memo += 1
                if memo > limits.max_memo:
                    raise InputError(path, f"pickle memoizes more than {limits.max_memo} objects")
            elif name in _REFUSED_OPS:
                raise UnsafePickleError(path, f"pickle uses {name} (persistent ids / extension registry); refused")
            if name == "STOP":
                break
    except InputError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(path, f"corrupt pickle: {type(exc).__name__}: {str(exc)[:200]}") from None
    return ops


# ---------------------------------------------------------------------------------------------
# After the parse: stand-ins -> validated numpy / scipy objects


_DESCR = re.compile(r"^([biufcSUOV])(\d{1,9})$")
_MAX_ITEMSIZE = 1 << 20


class _Converter:
    """Turns a parsed tree of plain objects and stand-ins into numpy / scipy values, within ``limits``."""

    def __init__(self, path, limits: Limits, allow_object: bool):
        self.path, self.limits, self.allow_object = path, limits, allow_object
        self.done: dict[int, Any] = {}  # id -> converted (shared references converted once)
        self.active: set[int] = set()  # ids on the current path (a cycle = a self-reference)
        self.keep: list = []  # keeps converted sources alive so ids stay unique
        self.elements = 0
        self.bytes = 0

    def fail(self, reason: str):
        raise InputError(self.path, reason)

    def count(self, elements: int = 0, nbytes: int = 0) -> None:
        self.elements += elements
        self.bytes += nbytes
        if self.elements > self.limits.max_elements:
            self.fail(f"pickle holds more than {self.limits.max_elements} elements; over the limit")
        if self.bytes > self.limits.max_file_bytes:
            self.fail(f"pickle holds more than {self.limits.max_file_bytes} bytes of arrays; over the limit")

    def convert(self, obj: Any, depth: int = 0) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
            return obj
        if depth >= self.limits.max_depth:
            self.fail(f"pickle nests deeper than {self.limits.max_depth} levels")
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            self.fail("pickle holds an object that contains itself")
        self.active.add(key)
        try:
            out = self._convert(obj, depth)
        finally:
            self.active.discard(key)
        self.done[key] = out
        self.keep.append(obj)
        return out

    def _convert(self, obj: Any, depth: int) -> Any:
        d = depth + 1
        if isinstance(obj, bytearray):
            return bytes(obj)
        if isinstance(obj, (list, tuple)):
            self.count(len(obj))
            items = [self.convert(v, d) for v in obj]
            return items if isinstance(obj, list) else tuple(items)
        if isinstance(obj, dict):
            self.count(len(obj))
            out = {}
            for k, v in obj.items():
                k = self.convert(k, d)
                try:
                    out[k] = self.convert(v, d)
                except TypeError:  # unhashable converted key (an array)
                    self.fail("pickle holds a dict with an unhashable key")
            return out
        if isinstance(obj, (set, frozenset)):
            self.count(len(obj))
            if not all(v is None or isinstance(v, (bool, int, float, str, bytes)) for v in obj):
                self.fail("pickle holds a set of non-scalar values")
            return obj
        if isinstance(obj, _ArrayStub):
            return self.array(obj, d)
        if isinstance(obj, _ScalarStub):
            return self.scalar(obj, d)
        if isinstance(obj, _DtypeStub):
            return self.dtype(obj, d)
        if isinstance(obj, ChumpyStub):
            state = obj.state if isinstance(obj.state, dict) else {}
            if "x" not in state:
                self.fail("chumpy object without a numeric value 'x'")
            return np.asarray(self.convert(state["x"], d))
        if isinstance(obj, SparseStub):
            state = obj.state if isinstance(obj.state, dict) else {}
            state = self.convert(state, d)
            try:
                return sparse_from_parts(obj.format, state, state.get("_shape", state.get("shape")))
            except Exception as exc:  # malformed sparse state
                self.fail(f"malformed pickled sparse matrix: {str(exc)[:200]}")
        self.fail(f"unexpected pickled object ({type(obj).__name__})")

    # -- dtypes ------------------------------------------------------------------------------

    def dtype(self, stub: _DtypeStub, depth: int) -> np.dtype:
        """numpy dtype rebuilt from the stub's descr; flags, alignment and offsets never come from the file."""
        args = stub.__dict__.get("args", ())
        descr = args[0] if args else None
        m = _DESCR.match(descr) if isinstance(descr, str) else None
        if m is None:
            self.fail(f"pickled dtype {str(descr)[:40]!r} is not a supported descr")
        kind, size = m.group(1), int(m.group(2))
        state = stub.__dict__.get("state")
        order = "|"
        if state is not None:
            if not isinstance(state, tuple) or len(state) != 8 or state[0] != 3:
                self.fail("pickled dtype has an unsupported state (datetimes and old formats are refused)")
            _, order, subarray, names, fields, elsize = state[:6]
            if order not in ("<", ">", "|", "="):
                self.fail(f"pickled dtype has byte order {str(order)[:10]!r}")
            if subarray is not None:
                self.fail("pickled dtype has a sub-array; refused")
        else:
            names = fields = None
            elsize = -1
        if kind == "V":
            return self.structured(size, names, fields, elsize, depth)
        if names is not None or fields is not None:
            self.fail("pickled dtype has fields on a non-structured type")
        if kind == "O":
            if not self.allow_object:
                self.fail("holds Python objects (an object dtype) where only numbers are expected")
            return np.dtype(object)
        if kind in "SU":
            if size <= 0 or size > _MAX_ITEMSIZE:
                self.fail(f"pickled dtype {descr} has an item size of {size}; refused")
            dt = np.dtype(f"{'<' if order == '|' else order}{kind}{size}")
        else:
            try:
                dt = np.dtype(f"{'=' if order == '|' else order}{kind}{size}")
            except TypeError:
                self.fail(f"pickled dtype {descr!r} is not a numeric type")
        if elsize not in (-1, dt.itemsize) or not isinstance(elsize, int):
            self.fail(f"pickled dtype {descr} declares item size {elsize}, but it is {dt.itemsize}")
        return dt

    def structured(self, size, names, fields, elsize, depth) -> np.dtype:
        if not (isinstance(names, tuple) and isinstance(fields, dict) and names and set(names) == set(fields)
                and all(isinstance(n, str) for n in names)):
            self.fail("pickled structured dtype has malformed names/fields")
        if not (isinstance(elsize, int) and 0 < elsize <= _MAX_ITEMSIZE and elsize == size):
            self.fail(f"pickled structured dtype has item size {elsize!r}; refused")
        formats, offsets = [], []
        for n in names:
            spec = fields[n]
            if not (isinstance(spec, tuple) and len(spec) in (2, 3) and isinstance(spec[0], _DtypeStub)
                    and isinstance(spec[1], int) and not isinstance(spec[1], bool)):
                self.fail(f"pickled structured dtype field {n[:40]!r} is malformed")
            fdt = self.convert(spec[0], depth)
            if fdt.hasobject:
                self.fail(f"pickled structured dtype field {n[:40]!r} holds Python objects; refused")
            if spec[1] < 0 or spec[1] + fdt.itemsize > elsize:
                self.fail(f"pickled structured dtype field {n[:40]!r} at offset {spec[1]} (size {fdt.itemsize}) "
                          f"does not fit its {elsize}-byte item")
            formats.append(fdt)
            offsets.append(spec[1])
        try:
            return np.dtype({"names": list(names), "formats": formats, "offsets": offsets, "itemsize": elsize})
        except (TypeError, ValueError) as exc:
            self.fail(f"pickled structured dtype is invalid: {str(exc)[:200]}")

    # -- arrays and scalars ------------------------------------------------------------------

    def array(self, stub: _ArrayStub, depth: int) -> np.ndarray:
        state = stub.__dict__.get("state")
        if isinstance(state, tuple) and len(state) == 4:
            state = (1, *state)
        if not (isinstance(state, tuple) and len(state) == 5):
            self.fail("pickled array has no valid state")
        _, shape, dstub, fortran, data = state
        if not isinstance(dstub, _DtypeStub):
            self.fail("pickled array has no valid dtype")
        dtype = self.convert(dstub, depth)
        if dtype.itemsize == 0 and not dtype.hasobject:
            self.fail(f"pickled array has the zero-size dtype {dtype}; refused")
        count = self.check_shape(shape)
        nbytes = count * (8 if dtype.hasobject else dtype.itemsize)
        if nbytes > self.limits.max_array_bytes:
            self.fail(f"pickled array of shape {tuple(shape)} and dtype {dtype} takes {nbytes} bytes, "
                      f"over the {self.limits.max_array_bytes}-byte limit")
        self.count(count if dtype.hasobject else 0, nbytes)
        order = "F" if fortran else "C"
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != count:
                self.fail(f"pickled object array of shape {tuple(shape)} does not hold {count} items")
            flat = np.empty(count, dtype=object)
            for i, v in enumerate(data):
                flat[i] = self.convert(v, depth)
            return flat.reshape(shape, order=order)
        if isinstance(data, str):  # Python 2 pickles: byte strings decoded as latin-1
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)) or len(data) != nbytes:
            got = len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__
            self.fail(f"pickled array of shape {tuple(shape)} and dtype {dtype} needs {nbytes} bytes, got {got}")
        arr = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order=order)
        return arr.copy(order="K")

    def check_shape(self, shape) -> int:
        if not (isinstance(shape, tuple) and len(shape) <= self.limits.max_dims
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            self.fail(f"pickled array has an invalid shape {str(shape)[:80]}")
        return math.prod(shape)

    def scalar(self, stub: _ScalarStub, depth: int):
        args = stub.__dict__.get("args", ())
        if len(args) != 2 or not isinstance(args[0], _DtypeStub):
            self.fail("pickled numpy scalar is malformed")
        dtype = self.convert(args[0], depth)
        data = args[1]
        if dtype.hasobject:  # numpy stores the object itself here, not its bytes
            return self.convert(data, depth)
        if isinstance(data, str):
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize or dtype.itemsize == 0:
            self.fail(f"pickled numpy scalar of dtype {dtype} has the wrong number of bytes")
        return np.frombuffer(data, dtype=dtype, count=1)[0].copy()


def sparse_from_parts(fmt: str, parts: dict, shape, max_side: int = MAX_SPARSE_SIDE) -> scipy.sparse.csr_matrix:
    """Build a CSR matrix from untrusted ``data``/``indices``/``indptr`` (or ``row``/``col``) arrays.

    scipy trusts its inputs: 2-D parts abort the process and out-of-range indices corrupt memory, so
    every part is checked (1-D, integer indices in range, consistent lengths) before scipy sees it,
    and each side of ``shape`` is at most ``max_side`` (scipy allocates index pointers by the shape).
    Raises ValueError with the reason.
    """
    shape = np.asarray(shape)
    if shape.dtype.kind not in "iu" or shape.size != 2:
        raise ValueError(f"shape {str(shape.tolist())[:80]} is not a 2-D matrix shape")
    shape = tuple(int(s) for s in shape.reshape(-1))
    if min(shape) < 0 or max(shape) > max_side:
        raise ValueError(f"shape {shape} is not a 2-D matrix shape with sides up to {max_side}")

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


def safe_loads(data: bytes, path: str | os.PathLike | None = None, limits: Limits = DEFAULT_LIMITS,
               allow_object: bool = True) -> Any:
    """Unpickle ``data`` through the allow-list, within ``limits``; raises UnsafePickleError / InputError.

    ``allow_object``: whether object arrays (and object-dtype scalars) may appear at all.
    """
    if len(data) > limits.max_file_bytes:
        raise InputError(path, f"pickle is {len(data)} bytes, over the {limits.max_file_bytes}-byte limit")
    prescan_pickle(data, path, limits)
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), path).load()
    except InputError:
        raise
    except RecursionError:
        raise InputError(path, "pickle nests too deeply") from None
    except MemoryError:
        raise InputError(path, "pickle declares more memory than is available") from None
    except Exception as exc:  # truncated or corrupt pickle
        raise InputError(path, f"corrupt pickle: {type(exc).__name__}: {str(exc)[:200]}") from None
    try:
        return _Converter(path, limits, allow_object).convert(obj)
    except RecursionError:  # not expected (depth is bounded), but never a traceback
        raise InputError(path, "pickle nests too deeply") from None
    except MemoryError:
        raise InputError(path, "pickle's arrays need more memory than is available") from None


def safe_load_pickle(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS, allow_object: bool = False) -> Any:
    """Load a ``.pkl`` file (e.g. an SMPL model) through the allow-list; only a regular file is opened.

    Object arrays are not expected in model files and are refused unless ``allow_object``.
    """
    from pipelines.safe_files import read_regular

    try:
        data = read_regular(path, limits.max_file_bytes)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    return safe_loads(data, path, limits, allow_object)


def _read_header(fh: BinaryIO, path, key: str):
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=10_000)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=10_000)
    else:
        raise InputError(path, f"array {key!r}: unsupported .npy version {version}")
    return shape, fortran, dtype


def check_dtype(dtype: np.dtype, path, key: str, allow_object: bool) -> None:
    """Refuse zero-itemsize dtypes, objects where none are expected, and fields outside their item."""
    if dtype.hasobject and not allow_object:
        raise InputError(path, f"array {key!r} holds Python objects (dtype {dtype}) where only numbers are expected")
    if dtype.itemsize == 0:
        raise InputError(path, f"array {key!r} has the zero-size dtype {dtype}; refused")
    if dtype.subdtype is not None:
        raise InputError(path, f"array {key!r} has a sub-array dtype {dtype}; refused")
    for name, spec in (dtype.fields or {}).items():
        if spec[1] < 0 or spec[1] + spec[0].itemsize > dtype.itemsize:
            raise InputError(path, f"array {key!r}: field {name!r} does not fit its {dtype.itemsize}-byte item")


def _read_npy_member(fh: BinaryIO, path: str, key: str, available: int, limits: Limits,
                     allow_object: bool) -> tuple[np.ndarray, int]:
    """One ``.npy`` from ``fh`` holding ``available`` bytes (from the zip directory or the file size).

    Every size is checked from the header before anything is allocated. Returns (array, bytes held).
    """
    shape, fortran, dtype = _read_header(fh, path, key)
    check_dtype(dtype, path, key, allow_object)
    body = available - fh.tell()
    if len(shape) > limits.max_dims or any(s < 0 for s in shape):
        raise InputError(path, f"array {key!r} has an invalid shape {str(shape)[:80]}")
    count = math.prod(shape)
    if dtype.hasobject:  # the body is a pickle of the whole array
        if body > limits.max_array_bytes or count * 8 > limits.max_array_bytes:
            raise InputError(path, f"object array {key!r} ({body} bytes, shape {shape}) is over the "
                                   f"{limits.max_array_bytes}-byte limit")
        arr = safe_loads(fh.read(body), f"{path}[{key}]", limits, allow_object=True)
        if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
            raise InputError(path, f"array {key!r}: object payload is not an array of shape {shape}")
        return arr, max(body, count * 8)
    nbytes = count * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise InputError(path, f"array {key!r} declares {nbytes} bytes (shape {shape}, {dtype}); "
                               f"over the {limits.max_array_bytes}-byte limit")
    if nbytes > body:
        raise InputError(path, f"array {key!r} declares {nbytes} bytes (shape {shape}) but holds only {body}")
    buf = bytearray(nbytes)
    got = fh.readinto(memoryview(buf)) if nbytes else 0
    while nbytes and got < nbytes:  # zip streams may return short reads
        n = fh.readinto(memoryview(buf)[got:])
        if not n:
            break
        got += n
    if got != nbytes:
        raise InputError(path, f"array {key!r} is truncated ({got} of {nbytes} bytes)")
    arr = np.frombuffer(buf, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C"), nbytes


def safe_load_npy(path: str | os.PathLike, max_bytes: int | None = None, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Read one ``.npy`` (a regular file) with its declared size checked before allocation; object arrays are refused."""
    path = os.fspath(path)
    if max_bytes is not None:
        limits = limits.replace(max_array_bytes=max_bytes)
    try:
        with open_regular(path) as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise InputError(path, "not a .npy file (bad magic)")
            fh.seek(0)
            size = os.fstat(fh.fileno()).st_size
            return _read_npy_member(fh, path, os.path.basename(path), size, limits, allow_object=False)[0]
    except InputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, TypeError, OverflowError) as exc:
        raise InputError(path, f"unreadable .npy: {type(exc).__name__}: {str(exc)[:200]}") from None


def safe_load_npz(path: str | os.PathLike, max_member_bytes: int | None = None, *, keys=None,
                  allow_object: bool = True, limits: Limits = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` (a regular file); object arrays go through the restricted unpickler.

    ``keys``: read only these members (others are listed but never inflated). Each member's
    decompressed size is taken from the zip directory and checked, with the running total for the
    file, before it is inflated (zipfile never inflates past the directory's size). Object members
    are refused unless ``allow_object``. Raises :class:`InputError` (or :class:`UnsafePickleError`)
    naming the file for anything malformed.
    """
    path = os.fspath(path)
    if max_member_bytes is not None:
        limits = limits.replace(max_array_bytes=max_member_bytes)
    out: dict[str, np.ndarray] = {}
    total = 0
    with open_regular(path) as raw:
        zf = open_zip(raw, path, InputError, limits)
        with zf:
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if keys is not None and key not in keys:
                    continue
                # +header room: the budget is about data, a .npy header is at most a few KB
                if info.file_size > limits.max_array_bytes + 65536:
                    raise InputError(path, f"array {key!r} inflates to {info.file_size} bytes, over the "
                                           f"{limits.max_array_bytes}-byte limit (checked before inflating)")
                if total + info.file_size > limits.max_file_bytes + 65536:
                    raise InputError(path, f"arrays inflate to more than the {limits.max_file_bytes}-byte limit "
                                           f"for one file (checked before inflating {key!r})")
                try:
                    with zf.open(info) as fh:
                        out[key], held = _read_npy_member(fh, path, key, info.file_size, limits, allow_object)
                except InputError:
                    raise
                except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, TypeError,
                        SyntaxError, OverflowError, NotImplementedError, RuntimeError, MemoryError) as exc:
                    raise InputError(path, f"array {key!r} is unreadable: {type(exc).__name__}: "
                                           f"{str(exc)[:200]}") from None
                total += max(held, info.file_size)
                if total > limits.max_file_bytes + 65536:
                    raise InputError(path, f"arrays take more than the {limits.max_file_bytes}-byte limit for one file")
    return out
