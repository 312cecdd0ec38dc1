"""Opening files a user downloaded: regular files only, and budgets fixed before anything is allocated.

A path named ``*_poses.npz`` can be a symlink to ``/dev/zero`` (reads never end), a FIFO (an open
blocks forever) or a socket. :func:`check_regular` decides from ``stat`` alone, without opening the
file; :func:`open_regular` then opens non-blocking and re-checks the opened descriptor, so a path
swapped between the check and the open is refused too. File hashes read through :func:`open_regular`
(:func:`pipelines.hashing.sha256_file`).

:class:`Limits` holds the budgets every reader of untrusted arrays applies *before* allocating:
bytes per array and per file (decompressed, object arrays counted at 8 bytes an element), pickle
opcodes and memo indices, nesting depth and container elements.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from schemas.errors import InputError

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

_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def file_kind(mode: int) -> str:
    """'regular file', 'directory', 'FIFO (named pipe)', 'socket', 'character device', ... for a stat mode."""
    if stat.S_ISREG(mode):
        return "regular file"
    return next((name for test, name in _KINDS if test(mode)), "special file")


def check_regular(path: str | os.PathLike, error: type[InputError] = InputError) -> os.stat_result:
    """``os.stat`` of ``path`` (symlinks followed) when it is a regular file; ``error`` otherwise.

    Nothing is opened: a FIFO or device is refused before any read can block or run forever.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise error(path, "is a dangling symlink") from None
        raise error(path, "file not found") from None
    except OSError as exc:
        raise error(path, f"cannot stat file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        via = " (through a symlink)" if os.path.islink(path) else ""
        raise error(path, f"is a {file_kind(st.st_mode)}{via}, not a regular file; refused without reading it")
    return st


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, error: type[InputError] = InputError) -> Iterator[BinaryIO]:
    """Open a regular file for binary reading; anything else raises ``error`` without blocking.

    ``O_NONBLOCK`` keeps an open of a FIFO swapped in after :func:`check_regular` from hanging; the
    descriptor is checked again with ``fstat`` (same file, still regular).
    """
    before = check_regular(path, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(path, f"cannot open file: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise error(path, "changed while being opened (no longer the regular file that was checked)")
    with os.fdopen(fd, "rb") as fh:
        yield fh


def read_regular(path: str | os.PathLike, max_bytes: int, error: type[InputError] = InputError) -> bytes:
    """All bytes of a regular file of at most ``max_bytes`` (checked from its size before reading)."""
    with open_regular(path, error) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise error(path, f"file is {size} bytes, over the {max_bytes}-byte limit for this kind of file")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(path, f"file grew past the {max_bytes}-byte limit while being read")
    return data


def open_zip(fh: BinaryIO, path, error: type[InputError] = InputError, limits: Limits = DEFAULT_LIMITS):
    """``zipfile.ZipFile(fh)`` after checking the entry count its end record declares.

    A central directory of millions of tiny entries would otherwise become millions of ``ZipInfo``
    objects before any member is looked at.
    """
    try:
        end = zipfile._EndRecData(fh)  # the end-of-central-directory record, zip64 aware
        if end is None:
            raise zipfile.BadZipFile("File is not a zip file")
        if end[zipfile._ECD_ENTRIES_TOTAL] > limits.max_zip_members:
            raise error(path, f"zip directory lists {end[zipfile._ECD_ENTRIES_TOTAL]} entries, over the "
                              f"limit of {limits.max_zip_members}")
        fh.seek(0)
        return zipfile.ZipFile(fh)
    except InputError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise error(path, f"not a readable .npz (zip) file: {str(exc)[:200]}") from None

