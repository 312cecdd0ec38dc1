"""Step 2 of a restricted load: parse the pickle with every allow-listed global bound to an inert stand-in.

``pickle`` executes whatever callables a file names, and numpy's own reconstruction trusts the state it
is given: a 116-byte pickle that reaches ``dtype.__setstate__`` makes numpy read 8 file bytes as an
object pointer. So no numpy or scipy code runs during the parse: each allow-listed global (dtype,
array, scalar, chumpy, scipy.sparse) resolves to a stand-in that only records its arguments and state,
and :mod:`pipelines.safe_pickle.rebuild` turns the stand-ins into real objects afterwards. The
unpickler only ever calls these constructors, ``bytes()`` and a latin-1 encode; any other global, a
persistent id or the extension registry raises :class:`UnsafePickleError` before anything runs.
"""

from __future__ import annotations

import os
import pickle
from typing import BinaryIO

from schemas.errors import UnsafePickleError


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


class DtypeStub(_Stub):
    """``numpy.dtype(obj, align, copy)`` + BUILD(state): recorded, rebuilt by :func:`_dtype_from`."""


class ArrayStub(_Stub):
    """``_reconstruct(ndarray, ...)`` + BUILD((version, shape, dtype, fortran, data)), or ``_frombuffer``."""


class ScalarStub(_Stub):
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
    return ArrayStub()


def _np_frombuffer(buf, dtype, shape, order="C"):
    stub = ArrayStub()
    stub.state = (1, shape, dtype, order == "F", buf if isinstance(buf, (bytes, bytearray)) else None)
    if order not in ("C", "F"):
        stub.state = None  # refused by the converter
    return stub


def _np_scalar(dtype, data=None):
    return ScalarStub(dtype, data)


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): DtypeStub,
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
