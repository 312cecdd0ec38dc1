"""``.npy`` / ``.npz`` containers from untrusted files: every size checked before anything is allocated.

Each member's header (dtype, shape) is checked before its data is read: no objects where numbers
are expected, no zero-size or sub-array dtypes, no fields outside their item, a declared size within
the member's real size and the budgets of :class:`~pipelines.safe_files.Limits`. A zip's entry count
and each member's decompressed size come from its directory and are checked before inflating.
Object arrays (VideoPose3D's files) go through :func:`~pipelines.safe_pickle.loads.safe_loads`.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from pipelines.safe_files import DEFAULT_LIMITS, Budget, Limits, dtype_text, open_regular, open_zip
from pipelines.safe_pickle.loads import safe_loads
from schemas.errors import InputError


MAX_DIM = 1 << 62  # largest side of an array shape: its product stays cheap to compute and to compare


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
        raise InputError(path, f"array {key!r} holds Python objects ({dtype_text(dtype)}) where only numbers "
                               f"are expected")
    if dtype.itemsize == 0:
        raise InputError(path, f"array {key!r} has a zero-size dtype ({dtype_text(dtype)}); refused")
    if dtype.subdtype is not None:
        raise InputError(path, f"array {key!r} has a sub-array dtype ({dtype_text(dtype)}); refused")
    for name, spec in (dtype.fields or {}).items():
        if spec[0].names is not None or spec[0].subdtype is not None:
            raise InputError(path, f"array {key!r}: field {name[:40]!r} is itself structured; nested dtypes are refused")
        if spec[1] < 0 or spec[1] + spec[0].itemsize > dtype.itemsize:
            raise InputError(path, f"array {key!r}: field {name[:40]!r} does not fit its {dtype.itemsize}-byte item")


@dataclass(frozen=True)
class NpyHeader:
    """A checked ``.npy`` header: what the member declares, and the data bytes it really holds."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    count: int  # elements
    body: int  # bytes after the header (from the zip directory or the file size)


def read_npy_header(fh: BinaryIO, path, key: str, available: int, limits: Limits, allow_object: bool) -> NpyHeader:
    """Read and check the header of one ``.npy`` in ``fh`` holding ``available`` bytes; nothing is allocated.

    Versions 1.0-3.0; the dtype passes :func:`check_dtype`; at most ``limits.max_dims`` dimensions,
    none negative. Raises InputError naming the file and the member.
    """
    shape, fortran, dtype = _read_header(fh, path, key)
    check_dtype(dtype, path, key, allow_object)
    if len(shape) > limits.max_dims or any(not 0 <= s <= MAX_DIM for s in shape):
        raise InputError(path, f"array {key!r} has an invalid shape (over {limits.max_dims} dimensions, or a side "
                               f"below 0 or over {MAX_DIM})")
    return NpyHeader(tuple(shape), bool(fortran), dtype, math.prod(shape), available - fh.tell())


def read_npy_data(fh: BinaryIO, path, key: str, head: NpyHeader) -> np.ndarray:
    """The numeric data after ``head``: exactly ``count x itemsize`` bytes, which the member must hold.

    The caller has checked the size against its budget; this allocates it. Raises InputError.
    """
    nbytes = head.count * head.dtype.itemsize
    if nbytes > head.body:
        raise InputError(path, f"array {key!r} declares {nbytes} bytes (shape {head.shape}) but holds only {head.body}")
    buf = bytearray(nbytes)
    got = fh.readinto(memoryview(buf)) if nbytes else 0
    while nbytes and got < nbytes:  # zip streams may return short reads
        n = fh.readinto(memoryview(buf)[got:])
        if not n:
            break
        got += n
    if got != nbytes:
        raise InputError(path, f"array {key!r} is truncated ({got} of {nbytes} bytes)")
    arr = np.frombuffer(buf, dtype=head.dtype, count=head.count)
    return arr.reshape(head.shape, order="F" if head.fortran else "C")


def _read_npy_member(fh: BinaryIO, path: str, key: str, available: int, limits: Limits,
                     allow_object: bool, budget: Budget | None = None) -> tuple[np.ndarray, int]:
    """One ``.npy`` from ``fh`` holding ``available`` bytes (from the zip directory or the file size).

    Every size is checked from the header before anything is allocated, and charged to ``budget``
    (the whole file's; object members charge what they convert to). Returns (array, bytes held).
    """
    budget = budget if budget is not None else Budget(path, limits)
    head = read_npy_header(fh, path, key, available, limits, allow_object)
    shape, count, body, dtype = head.shape, head.count, head.body, head.dtype
    if dtype.hasobject:  # the body is a pickle of the whole array
        if body > limits.max_array_bytes or count * 8 > limits.max_array_bytes:
            raise InputError(path, f"object array {key!r} ({body} bytes, shape {shape}) is over the "
                                   f"{limits.max_array_bytes}-byte limit")
        budget.charge(nbytes=body)  # the pickle itself is held while it is parsed
        arr = safe_loads(fh.read(body), f"{path}[{key}]", limits, allow_object=True, budget=budget)
        if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
            raise InputError(path, f"array {key!r}: object payload is not an array of shape {shape}")
        return arr, max(body, count * 8)
    nbytes = count * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise InputError(path, f"array {key!r} declares {nbytes} bytes (shape {shape}, {dtype_text(dtype)}); "
                               f"over the {limits.max_array_bytes}-byte limit")
    budget.charge(nbytes=nbytes)
    return read_npy_data(fh, path, key, head), nbytes


def safe_load_npy(path: str | os.PathLike, max_bytes: int | None = None, limits: Limits = DEFAULT_LIMITS,
                  kind: str | int = "any") -> np.ndarray:
    """Read one ``.npy`` (a regular file within ``kind``'s byte limit, ``schemas.files.FILE_LIMITS``) with
    its declared size checked before allocation; object arrays are refused."""
    path = os.fspath(path)
    if max_bytes is not None:
        limits = limits.replace(max_array_bytes=max_bytes)
    try:
        with open_regular(path, kind=kind) as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise InputError(path, "not a readable .npy file (bad magic)")
            fh.seek(0)
            size = os.fstat(fh.fileno()).st_size
            return _read_npy_member(fh, path, os.path.basename(path), size, limits, allow_object=False)[0]
    except InputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, TypeError, OverflowError) as exc:
        raise InputError(path, f"unreadable .npy: {type(exc).__name__}: {str(exc)[:200]}") from None


def safe_load_npz(path: str | os.PathLike, max_member_bytes: int | None = None, *, keys=None,
                  allow_object: bool = True, limits: Limits = DEFAULT_LIMITS, kind: str | int = "any",
                  data: bytes | None = None) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` (a regular file); object arrays go through the restricted unpickler.

    ``keys``: read only these members (others are listed but never inflated). Each member's
    decompressed size is taken from the zip directory and checked, with the running total for the
    file, before it is inflated (zipfile never inflates past the directory's size). One
    :class:`~pipelines.safe_files.Budget` covers the whole file: numeric members and what object
    members convert to, every shared reference counted. Object members are refused unless
    ``allow_object``. ``kind``: the file's byte limit (``schemas.files.FILE_LIMITS``). ``data``: the
    file's bytes, already read (``schemas.files.read_bounded``, which hashed them): parsed instead of
    opening ``path`` again. Raises :class:`InputError` (or :class:`UnsafePickleError`) naming the file
    for anything malformed.
    """
    path = os.fspath(path)
    if max_member_bytes is not None:
        limits = limits.replace(max_array_bytes=max_member_bytes)
    if data is not None:
        return _load_npz_members(io.BytesIO(data), path, keys, allow_object, limits)
    with open_regular(path, kind=kind) as raw:
        return _load_npz_members(raw, path, keys, allow_object, limits)


def _load_npz_members(raw: BinaryIO, path: str, keys, allow_object: bool, limits: Limits) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    total = 0
    budget = Budget(path, limits)
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
                    out[key], held = _read_npy_member(fh, path, key, info.file_size, limits, allow_object,
                                                      budget)
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
