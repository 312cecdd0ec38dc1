"""Reading files a user handed us: one bounded way, for every kind of file the project reads.

A path can name a FIFO (an open blocks forever), a device or a symlink to ``/dev/zero`` (reads never
end), a sparse file of 4 TiB that holds no data on disk, a link out of the folder it was found in,
or a file that is replaced while it is read. Every reader in the project therefore goes through
:func:`open_bounded` / :func:`read_bounded` / :func:`hash_bounded`:

1. ``stat`` first, so a FIFO or a device is refused without being opened (opening some devices
   has side effects);
2. open non-blocking and check the *opened descriptor* with ``fstat``: a regular file, the same one
   that was checked (a path swapped between the two is refused);
3. the size from that ``fstat`` against the byte limit of the file's kind (:data:`FILE_LIMITS`),
   before anything is read; reads stop one byte past the limit (a file that grows is refused too);
4. with ``root``, the real path of the opened descriptor must lie inside ``root`` (a symlink
   inside a dataset folder that points elsewhere is refused, however it was swapped in);
5. :func:`read_bounded` returns the bytes *and* their sha256, computed from those same bytes: what a
   caller parses is what it records.

Lives in ``schemas`` (standard library only) so that ``pipelines`` and ``uplift`` share it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from schemas.errors import InputError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# Largest file accepted, per kind, in bytes on disk. Each is several times the largest real file of
# that kind (figures in the comments); a larger file is refused before a byte of it is read.
FILE_LIMITS: dict[str, int] = {
    "amass": 1 * GiB,  # an AMASS motion .npz (the longest real ones: < 100 MB)
    "body_model": 1 * GiB,  # SMPL+H / SMPL-X / DMPL .npz or .pkl (SMPL-X: ~250 MB as float64)
    "regressor": 64 * MiB,  # joint regressor .npy / .npz (17 x 10475 float64: 1.4 MB)
    "vp3d": 512 * MiB,  # a VideoPose3D 3D or 2D file (real: 50-140 MB)
    "calibration": 1 * MiB,  # an MPI-INF-3DHP camera.calibration (real: ~10 KB)
    "run_config": 1 * MiB,  # a JSON / TOML / YAML run config (real: < 2 KB)
    "checkpoint_meta": 1 * MiB,  # a checkpoint's meta.json (real: ~3 KB)
    "checkpoint_weights": 2 * GiB,  # model / ema .safetensors (the N=351 model: ~20 MB)
    "checkpoint_state": 4 * GiB,  # state.pt: optimizer moments, RNG states (~3x the weights)
    "infer_input": 512 * MiB,  # a (T, 17, 2) keypoint .npy or a VideoPose3D 2D file for ``infer``
    "run_history": 64 * MiB,  # a run's metrics.json, read back on resume (a row an epoch: a few KB)
    "any": 4 * GiB,  # a file hashed for identity only, where no kind applies
}

# What error messages call each kind.
KIND_NAMES = {"amass": "an AMASS motion file", "body_model": "a body-model file", "regressor": "a joint regressor",
              "vp3d": "a VideoPose3D file", "calibration": "a camera calibration file",
              "run_config": "a run config", "checkpoint_meta": "a checkpoint's meta.json",
              "checkpoint_weights": "a checkpoint's weights", "checkpoint_state": "a checkpoint's state.pt",
              "infer_input": "an infer input", "run_history": "a run's metrics.json", "any": "this kind of file"}

_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def file_kind(mode: int) -> str:
    """'regular file', 'directory', 'FIFO (named pipe)', 'socket', 'character device', ... for a stat mode."""
    if stat.S_ISREG(mode):
        return "regular file"
    return next((name for test, name in _KINDS if test(mode)), "special file")


def byte_limit(kind: str | int) -> tuple[int, str]:
    """(limit in bytes, what messages call the file) for a kind of :data:`FILE_LIMITS` or a plain limit."""
    if isinstance(kind, str):
        return FILE_LIMITS[kind], KIND_NAMES.get(kind, kind)
    return int(kind), "this kind of file"


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


def opened_path(fd: int, path: str | os.PathLike) -> str:
    """The real path of the file open at ``fd`` (``/proc/self/fd``; ``realpath`` where there is none)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def is_within(real: str, root: str | os.PathLike) -> bool:
    """Whether the real path ``real`` lies inside the real path of ``root``."""
    base = os.path.realpath(root)
    try:
        return os.path.commonpath([real, base]) == base
    except ValueError:  # different drives, or one relative
        return False


@contextlib.contextmanager
def open_bounded(path: str | os.PathLike, kind: str | int = "any", error: type[InputError] = InputError, *,
                 root: str | os.PathLike | None = None, follow_symlinks: bool = True
                 ) -> Iterator[tuple[BinaryIO, int]]:
    """``(file, size)``: a regular file of at most ``kind``'s byte limit, open for binary reading.

    Everything but a regular file raises ``error`` without blocking: ``O_NONBLOCK`` keeps an open of a
    FIFO swapped in after the ``stat`` from hanging, and the descriptor itself is checked with
    ``fstat`` (same file, still regular). ``root``: the opened file's real path must lie inside it.
    ``follow_symlinks=False`` refuses a symlink as the last path component (``O_NOFOLLOW``).
    """
    limit, what = byte_limit(kind)
    before = check_regular(path, error)
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
             | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0)))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(path, f"cannot open file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise error(path, "changed while being opened (no longer the regular file that was checked)")
        if root is not None:
            real = opened_path(fd, path)
            if not is_within(real, root):
                raise error(path, f"its real path {real} lies outside {root}; refused without reading it")
        if st.st_size > limit:
            raise error(path, f"file is {st.st_size} bytes, over the {limit}-byte limit for {what}")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        yield fh, st.st_size


@dataclass(frozen=True)
class FileBytes:
    """The bytes of one file as read once, and the sha256 of exactly those bytes."""

    path: str
    data: bytes
    sha256: str


def read_bounded(path: str | os.PathLike, kind: str | int = "any", error: type[InputError] = InputError, *,
                 root: str | os.PathLike | None = None, follow_symlinks: bool = True) -> FileBytes:
    """All bytes of a regular file of at most ``kind``'s limit (:func:`open_bounded`), and their sha256.

    The hash is of the bytes returned, from the same read: a file replaced between a listing and
    this read is recorded under the hash of what was parsed, never of what was listed.
    """
    limit, what = byte_limit(kind)
    with open_bounded(path, kind, error, root=root, follow_symlinks=follow_symlinks) as (fh, size):
        try:
            # read what fstat saw, then in small pieces whatever the file grew by: ``read(limit + 1)``
            # would allocate the whole limit (GBs) up front, whatever the file's size
            data = fh.read(size)
            while len(data) <= limit and (more := fh.read(min(MiB, limit + 1 - len(data)))):
                data += more
        except OSError as exc:
            raise error(path, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(path, f"file grew past the {limit}-byte limit for {what} while being read")
    return FileBytes(os.fspath(path), data, hashlib.sha256(data).hexdigest())


def hash_bounded(*paths: str | os.PathLike, kind: str | int = "any", error: type[InputError] = InputError,
                 block: int = MiB, root: str | os.PathLike | None = None) -> str:
    """Hex sha256 of one regular file (or of several, concatenated), each within ``kind``'s limit,
    read in ``block``-byte pieces (for identity only: nothing of it is parsed). ``root``: each file's
    real path must lie inside it."""
    limit, what = byte_limit(kind)
    h = hashlib.sha256()
    for path in paths:
        with open_bounded(path, kind, error, root=root) as (fh, _):
            n = 0
            try:
                for chunk in iter(lambda: fh.read(block), b""):
                    n += len(chunk)
                    if n > limit:
                        raise error(path, f"file grew past the {limit}-byte limit for {what} while being read")
                    h.update(chunk)
            except OSError as exc:
                raise error(path, f"cannot read file: {exc.strerror or exc}") from None
    return h.hexdigest()


def read_text_bounded(path: str | os.PathLike, kind: str | int, error: type[InputError] = InputError) -> str:
    """A UTF-8 text file through :func:`read_bounded`; ``error`` for anything that is not UTF-8 text."""
    raw = read_bounded(path, kind, error).data
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(path, "not a text file (invalid UTF-8)") from None
