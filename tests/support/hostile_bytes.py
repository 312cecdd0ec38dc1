"""Hostile bytes: hand-assembled pickles, ``.npy`` headers and zip containers that ``pickle.dumps``,
``np.save`` and ``zipfile`` would never write (crafted dtype states, memo indices, inflating members).

The building blocks of the cases in ``tests/support/hostile_cases.py``.
"""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------------------------
# Hand-assembled pickles: the crafted states below cannot be produced by pickle.dumps


def global_op(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def str_op(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def bytes_op(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def int_op(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


MARK, TUPLE, REDUCE, BUILD, NONE, TRUE, FALSE, STOP = b"(", b"t", b"R", b"b", b"N", b"\x88", b"\x89", b"."
PROTO = b"\x80\x03"


def tuple_op(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def dtype_op(descr: str, order="|", names=None, fields: bytes | None = None, elsize=-1, flags=0) -> bytes:
    """``numpy.dtype(descr)`` + BUILD with a state whose flags/offsets we choose."""
    names_b = NONE if names is None else tuple_op(*(str_op(n) for n in names))
    fields_b = NONE if fields is None else fields
    state = tuple_op(int_op(3), str_op(order), NONE, names_b, fields_b, int_op(elsize), int_op(-1 if elsize == -1 else 1), int_op(flags))
    return global_op("numpy", "dtype") + tuple_op(str_op(descr), FALSE, TRUE) + REDUCE + state + BUILD


def array_op(shape: tuple, dtype: bytes, data: bytes) -> bytes:
    """``_reconstruct(ndarray, (0,), b'b')`` + BUILD((1, shape, dtype, False, data))."""
    head = global_op("numpy._core.multiarray", "_reconstruct") + tuple_op(global_op("numpy", "ndarray"), tuple_op(int_op(0)), bytes_op(b"b")) + REDUCE
    return head + tuple_op(int_op(1), tuple_op(*(int_op(s) if s < 2**31 else b"L" + str(s).encode() + b"L\n" for s in shape)),
                         dtype, FALSE, data) + BUILD


def dict_op(**items: bytes) -> bytes:
    return b"}" + MARK + b"".join(str_op(k) + v for k, v in items.items()) + b"u"


def object_scalar_pointer() -> bytes:
    """``scalar(dtype('O') with its flags zeroed, 8 bytes)``: numpy would use the bytes as a PyObject*."""
    return global_op("numpy._core.multiarray", "scalar") + tuple_op(dtype_op("O8", flags=0), bytes_op(b"\x41" * 8)) + REDUCE


def object_field_past_item() -> bytes:
    """A structured dtype whose object field sits 16 MiB past its 8-byte item, and an array of it."""
    fields = b"}" + MARK + str_op("a") + tuple_op(dtype_op("O8", flags=63), int_op(16 << 20)) + b"u"
    return array_op((1,), dtype_op("V8", names=("a",), fields=fields, elsize=8, flags=16 | 1), bytes_op(bytes(8)))


def nested_object_arrays(depth: int) -> bytes:
    """``depth`` object arrays of shape (1,) each holding the next; globals and constant parts memoised."""
    setup = (global_op("numpy._core.multiarray", "_reconstruct") + b"q\x00" + b"0"
             + tuple_op(global_op("numpy", "ndarray"), tuple_op(int_op(0)), bytes_op(b"b")) + b"q\x01" + b"0"
             + tuple_op(int_op(1)) + b"q\x02" + b"0" + dtype_op("O8", flags=63) + b"q\x03" + b"0")
    open_level = b"h\x00h\x01" + REDUCE + MARK + b"K\x01h\x02h\x03" + FALSE + b"]"
    close_level = b"a" + TUPLE + BUILD
    return PROTO + setup + open_level * depth + NONE + close_level * depth + STOP


def long_binput(index: int) -> bytes:
    """9 bytes: NONE, LONG_BINPUT index (the C unpickler sizes its memo table to the index)."""
    return b"\x80\x02N" + b"r" + struct.pack("<I", index) + STOP


def ndarray_call(n: int) -> bytes:
    """``numpy.ndarray((n,), 'O')`` called directly: allocates n pointers at unpickling."""
    return PROTO + global_op("numpy", "ndarray") + tuple_op(tuple_op(int_op(n)), str_op("O")) + REDUCE + STOP


def reconstruct_many_objects(n: int) -> bytes:
    """An object array declaring ``n`` elements with a one-element list (numpy walks the declared count)."""
    return PROTO + array_op((n,), dtype_op("O8", flags=63), b"]" + NONE + b"a") + STOP


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


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)  # writes a hostile file for the tests; nothing here loads one
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


def write_zip_many_members(path: Path, n: int, claimed: int | None = None) -> Path:
    """A zip of ``n`` empty stored members (~100 bytes each in the file, a ZipInfo each when parsed);
    ``claimed``: the member count its end record states instead (a lie when it differs from ``n``)."""
    out, central = bytearray(), bytearray()
    for i in range(n):
        fn = f"{i}.npy".encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, 0, 0, 0, len(fn), 0) + fn
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, 0, 0, 0, len(fn),
                               0, 0, 0, 0, 0, offset) + fn
    n16 = min(n if claimed is None else claimed, 0xFFFF)  # (a zip64 end record would carry the full count)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n16, n16, len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path
