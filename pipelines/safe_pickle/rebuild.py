"""Step 3 of a restricted load: turn the parsed tree of plain objects and stand-ins into numpy / scipy values.

Nothing from the file reaches numpy unchecked:

- dtypes are rebuilt from a checked descr (kind, size, byte order; structured fields with offsets
  that fit the item); no flags or offsets from the file reach numpy; object dtypes only where the
  caller expects object arrays; zero-itemsize dtypes refused;
- arrays are built from byte strings of exactly ``count x itemsize`` bytes (object arrays from a
  list of exactly ``count`` items), against per-array and per-file budgets;
- nesting depth, container elements and shared references (a self-referencing list, a "billion
  laughs" DAG) are bounded; the structure is walked with a depth counter, never unbounded recursion.

Any problem raises :class:`InputError` naming the file.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from pipelines.safe_files import Budget, Limits, dtype_text
from pipelines.safe_pickle.allow_list import ArrayStub, ChumpyStub, DtypeStub, ScalarStub, SparseStub
from pipelines.safe_pickle.sparse import sparse_from_parts
from schemas.errors import InputError


_DESCR = re.compile(r"^([biufcSUOV])(\d{1,9})$")
_MAX_ITEMSIZE = 1 << 20
_MAX_FIELDS = 1024  # fields of one structured dtype
_MAX_DIM = 1 << 62  # largest side of a shape: its product stays cheap to compute


class Converter:
    """Turns a parsed tree of plain objects and stand-ins into numpy / scipy values, within ``limits``.

    ``budget``: the file's :class:`~pipelines.safe_files.Budget` (one for all members of an ``.npz``);
    a new one when not given. A shared object is converted once, but every further reference to it is
    charged again at its converted size (elements and bytes, nested shared parts included): whatever
    consumes the tree (``np.asarray`` of a list, an import looping over a dict of actions) makes a copy
    per reference, so the budget counts what will be allocated, not what the file spells.
    """

    def __init__(self, path, limits: Limits, allow_object: bool, budget: Budget | None = None):
        self.path, self.limits, self.allow_object = path, limits, allow_object
        self.budget = budget if budget is not None else Budget(path, limits)
        self.done: dict[int, Any] = {}  # id -> converted (shared references converted once)
        self.cost: dict[int, tuple[int, int]] = {}  # id -> (elements, bytes) charged when it was converted
        self.active: set[int] = set()  # ids on the current path (a cycle = a self-reference)
        self.keep: list = []  # keeps converted sources alive so ids stay unique

    def fail(self, reason: str):
        raise InputError(self.path, reason)

    def count(self, elements: int = 0, nbytes: int = 0) -> None:
        try:
            self.budget.charge(elements, nbytes)
        except InputError as exc:  # name this pickle (an .npz member names its key too)
            self.fail(exc.reason)

    def convert(self, obj: Any, depth: int = 0) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
            return obj
        if depth >= self.limits.max_depth:
            self.fail(f"pickle nests deeper than {self.limits.max_depth} levels")
        key = id(obj)
        if key in self.done:
            self.count(*self.cost[key])  # one more reference: one more copy downstream
            return self.done[key]
        if key in self.active:
            self.fail("pickle holds an object that contains itself")
        self.active.add(key)
        before = (self.budget.elements, self.budget.bytes)
        try:
            out = self._convert(obj, depth)
        finally:
            self.active.discard(key)
        self.cost[key] = (self.budget.elements - before[0], self.budget.bytes - before[1])
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
        if isinstance(obj, ArrayStub):
            return self.array(obj, d)
        if isinstance(obj, ScalarStub):
            return self.scalar(obj, d)
        if isinstance(obj, DtypeStub):
            return self.dtype(obj, d)
        if isinstance(obj, ChumpyStub):
            state = getattr(obj, "state", None)  # a NEWOBJ-made stub never ran __init__
            state = state if isinstance(state, dict) else {}
            if "x" not in state:
                self.fail("chumpy object without a numeric value 'x'")
            return np.asarray(self.convert(state["x"], d))
        if isinstance(obj, SparseStub):
            state = getattr(obj, "state", None)
            state = state if isinstance(state, dict) else {}
            state = self.convert(state, d)
            try:
                return sparse_from_parts(obj.format, state, state.get("_shape", state.get("shape")))
            except Exception as exc:  # malformed sparse state
                self.fail(f"malformed pickled sparse matrix: {str(exc)[:200]}")
        self.fail(f"unexpected pickled object ({type(obj).__name__})")

    # -- dtypes ------------------------------------------------------------------------------

    def dtype(self, stub: DtypeStub, depth: int) -> np.dtype:
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
        if not (isinstance(names, tuple) and isinstance(fields, dict) and names and len(names) <= _MAX_FIELDS
                and all(isinstance(n, str) for n in names) and set(names) == set(fields)):
            self.fail(f"pickled structured dtype has malformed names/fields (or more than {_MAX_FIELDS})")
        if not (isinstance(elsize, int) and 0 < elsize <= _MAX_ITEMSIZE and elsize == size):
            self.fail(f"pickled structured dtype has item size {elsize!r}; refused")
        formats, offsets = [], []
        for n in names:
            spec = fields[n]
            if not (isinstance(spec, tuple) and len(spec) in (2, 3) and isinstance(spec[0], DtypeStub)
                    and isinstance(spec[1], int) and not isinstance(spec[1], bool)):
                self.fail(f"pickled structured dtype field {n[:40]!r} is malformed")
            fdt = self.convert(spec[0], depth)
            if fdt.names is not None or fdt.subdtype is not None:
                self.fail(f"pickled structured dtype field {n[:40]!r} is itself structured; nested dtypes are refused")
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

    def array(self, stub: ArrayStub, depth: int) -> np.ndarray:
        state = stub.__dict__.get("state")
        if isinstance(state, tuple) and len(state) == 4:
            state = (1, *state)
        if not (isinstance(state, tuple) and len(state) == 5):
            self.fail("pickled array has no valid state")
        _, shape, dstub, fortran, data = state
        if not isinstance(dstub, DtypeStub):
            self.fail("pickled array has no valid dtype")
        dtype = self.convert(dstub, depth)
        if dtype.itemsize == 0 and not dtype.hasobject:
            self.fail(f"pickled array has a zero-size dtype ({dtype_text(dtype)}); refused")
        count = self.check_shape(shape)
        nbytes = count * (8 if dtype.hasobject else dtype.itemsize)
        if nbytes > self.limits.max_array_bytes:
            self.fail(f"pickled array of shape {tuple(shape)} and dtype {dtype_text(dtype)} takes {nbytes} bytes, "
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
            self.fail(f"pickled array of shape {tuple(shape)} and dtype {dtype_text(dtype)} needs {nbytes} bytes, "
                      f"got {got}")
        arr = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order=order)
        return arr.copy(order="K")

    def check_shape(self, shape) -> int:
        # each side bounded before anything multiplies them (a side can be a 32 MB long integer)
        if not (isinstance(shape, tuple) and len(shape) <= self.limits.max_dims
                and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= _MAX_DIM for s in shape)):
            self.fail(f"pickled array has an invalid shape (over {self.limits.max_dims} dimensions, or a side that "
                      f"is not an integer in 0..{_MAX_DIM})")
        return math.prod(shape)

    def scalar(self, stub: ScalarStub, depth: int):
        args = stub.__dict__.get("args", ())
        if len(args) != 2 or not isinstance(args[0], DtypeStub):
            self.fail("pickled numpy scalar is malformed")
        dtype = self.convert(args[0], depth)
        data = args[1]
        if dtype.hasobject:  # numpy stores the object itself here, not its bytes
            return self.convert(data, depth)
        if isinstance(data, str):
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize or dtype.itemsize == 0:
            self.fail(f"pickled numpy scalar of dtype {dtype_text(dtype)} has the wrong number of bytes")
        return np.frombuffer(data, dtype=dtype, count=1)[0].copy()
