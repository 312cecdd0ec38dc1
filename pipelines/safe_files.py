"""Opening files a user downloaded: regular files only, and budgets fixed before anything is allocated.

A path named ``*_poses.npz`` can be a symlink to ``/dev/zero`` (reads never end), a FIFO (an open
blocks forever) or a socket. :func:`check_regular` decides from ``stat`` alone, without opening the
file; :func:`open_regular` then opens non-blocking and re-checks the opened descriptor, so a path
swapped between the check and the open is refused too. Both are :mod:`schemas.files`, the one bounded
way every reader opens a file (byte limits per kind of file, the sha256 of the bytes read).

:class:`Limits` holds the budgets every reader of untrusted arrays applies *before* allocating:
bytes per array and per file (decompressed, object arrays counted at 8 bytes an element), pickle
opcodes and memo indices, nesting depth and container elements; :class:`Budget` counts one file's
allocations against them, all its members and every shared reference together.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from schemas.errors import InputError
from schemas.files import open_bounded, read_bounded

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Budgets for one untrusted file. The defaults fit the largest real files with room to spare.

    Real sizes: an AMASS sequence is < 100 MB as float64; an SMPL-X model file ~250 MB (its largest
    array, posedirs, ~120 MB); VideoPose3D's 3D file ~50 MB, the CPN 2D file ~100 MB.
    """

    max_array_bytes: int = 512 * MiB  # one array, as it will be held in memory
    max_file_bytes: int = 1024 * MiB  # all arrays read from one file together (decompressed)
    max_pickle_ops: int = 500_000  # opcodes in one pickle stream (the CPN 2D file has ~30k)
    max_memo: int = 1_000_000  # largest memo index a pickle may use
    max_depth: int = 64  # nesting of containers / object arrays
    max_elements: int = 5_000_000  # container items + object-array elements in one file
    max_dims: int = 32  # numpy's own limit on ndim
    max_zip_members: int = 10_000  # zipfile builds one ZipInfo (~0.5 KB) per directory entry on open

    def replace(self, **kw) -> "Limits":
        return Limits(**{**self.__dict__, **kw})


DEFAULT_LIMITS = Limits()

def open_regular(path: str | os.PathLike, error: type[InputError] = InputError, kind: str | int = "any"):
    """Open a regular file of at most ``kind``'s byte limit for binary reading (a context manager
    yielding the file); anything else raises ``error`` without blocking. See :func:`schemas.files.open_bounded`."""
    return _opened(path, kind, error)


@contextlib.contextmanager
def _opened(path, kind, error) -> Iterator[BinaryIO]:
    with open_bounded(path, kind, error) as (fh, _):
        yield fh


def read_regular(path: str | os.PathLike, max_bytes: int | str, error: type[InputError] = InputError) -> bytes:
    """All bytes of a regular file of at most ``max_bytes`` (or a kind of ``FILE_LIMITS``), checked
    from its size before reading. :func:`schemas.files.read_bounded` also returns their sha256."""
    return read_bounded(path, max_bytes, error).data


def dtype_text(dtype) -> str:
    """A dtype as error messages may print it: its kind and item size, never ``str(dtype)`` (a nested
    structured dtype whose levels share one sub-dtype would expand to 2^depth fields there)."""
    try:
        if dtype.names is not None:
            return f"a structured dtype of {len(dtype.names)} fields, {dtype.itemsize} bytes"
        return dtype.str
    except Exception:  # noqa: BLE001 - a message must never fail
        return "an unprintable dtype"


class Budget:
    """What one file may allocate, all its members together: bytes of arrays (as held in memory) and
    container elements. Every reference to a shared object is charged again at its converted size,
    since whatever consumes it (``np.asarray`` of a list, an import looping over a dict) makes a copy
    per reference."""

    def __init__(self, path, limits: "Limits"):
        self.path, self.limits = path, limits
        self.elements = 0
        self.bytes = 0

    def charge(self, elements: int = 0, nbytes: int = 0) -> None:
        self.elements += elements
        self.bytes += nbytes
        if self.elements > self.limits.max_elements:
            raise InputError(self.path, f"holds more than {self.limits.max_elements} container elements and "
                                        f"object-array items; over the limit for one file")
        if self.bytes > self.limits.max_file_bytes:
            raise InputError(self.path, f"its arrays take more than the {self.limits.max_file_bytes}-byte limit for "
                                        f"one file (every reference to a shared array counted)")


def _central_directory_entries(fh: BinaryIO, end, path, error, limit: int) -> int:
    """Entries in the zip's central directory, counted by walking it (46-byte headers, names skipped),
    stopping as soon as there are more than ``limit``: the end record's own count can lie."""
    size_cd, offset_cd = end[zipfile._ECD_SIZE], end[zipfile._ECD_OFFSET]
    concat = end[zipfile._ECD_LOCATION] - size_cd - offset_cd
    if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
        concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    fh.seek(offset_cd + concat)
    count = walked = 0
    while walked < size_cd:
        head = fh.read(zipfile.sizeCentralDir)
        if len(head) != zipfile.sizeCentralDir:
            raise zipfile.BadZipFile("truncated central directory")
        cd = struct.unpack(zipfile.structCentralDir, head)
        if cd[zipfile._CD_SIGNATURE] != zipfile.stringCentralDir:
            raise zipfile.BadZipFile("bad magic number for central directory")
        count += 1
        if count > limit:
            raise error(path, f"zip directory holds more than {limit} entries (over the limit; its end record "
                              f"claims {end[zipfile._ECD_ENTRIES_TOTAL]})")
        skip = cd[zipfile._CD_FILENAME_LENGTH] + cd[zipfile._CD_EXTRA_FIELD_LENGTH] + cd[zipfile._CD_COMMENT_LENGTH]
        fh.seek(skip, os.SEEK_CUR)
        walked += zipfile.sizeCentralDir + skip
    return count


def open_zip(fh: BinaryIO, path, error: type[InputError] = InputError, limits: Limits = DEFAULT_LIMITS):
    """``zipfile.ZipFile(fh)`` after checking how many entries its central directory really holds.

    A central directory of millions of tiny entries would otherwise become millions of ``ZipInfo``
    objects before any member is looked at; the end record's entry count is only a claim, so the
    directory itself is walked (headers only) and must hold at most ``limits.max_zip_members``
    entries, exactly as many as the end record says.
    """
    try:
        end = zipfile._EndRecData(fh)  # the end-of-central-directory record, zip64 aware
        if end is None:
            raise zipfile.BadZipFile("File is not a zip file")
        claimed = end[zipfile._ECD_ENTRIES_TOTAL]
        if claimed > limits.max_zip_members:
            raise error(path, f"zip directory lists {claimed} entries, over the limit of {limits.max_zip_members}")
        held = _central_directory_entries(fh, end, path, error, limits.max_zip_members)
        if held != claimed:
            raise error(path, f"zip directory holds {held} entries but its end record claims {claimed}")
        fh.seek(0)
        return zipfile.ZipFile(fh)
    except InputError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise error(path, f"not a readable .npz (zip) file: {str(exc)[:200]}") from None
