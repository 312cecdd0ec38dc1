"""Reading AMASS motion files (SMPL+H G, SMPL-X N/G separate keys, SMPL-X ``*_stageii.npz``).

Real AMASS downloads must load unchanged, and any file that cannot be read becomes an
:class:`~schemas.errors.AmassFormatError` naming it: never a crash, never a silent skip.

Safety: archives are read from one in-memory copy of the file (hashed once), every ``.npy`` header
we use is checked *before* its data is read, by the same checks as every untrusted ``.npy``
(:func:`pipelines.safe_pickle.npz.read_npy_header`: dtype without objects and of non-zero size, a
valid shape, declared size within the member's real size), then budgeted as held in memory (floats
as float64) under :data:`MAX_ARRAY_BYTES` and a running total under :data:`MAX_FILE_BYTES`; only
regular files are opened and nothing is unpickled. Keys we do not use (``marker_data``,
``marker_labels``, MoSh++ metadata...) are listed but never read, so an object array there is inert.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pipelines.hashing import sha256_bytes
from pipelines.safe_files import DEFAULT_LIMITS, open_zip, read_regular
from pipelines.safe_pickle.npz import read_npy_data, read_npy_header
from schemas.errors import AmassFormatError, InputError
from schemas.skeletons import GENDERS, NUM_DMPLS, SMPLH_POSE_DIM

# Largest single array we agree to materialise, counted as held in memory (float64), and largest
# total per file: the budgets of every untrusted file (the longest AMASS sequences, a few minutes at
# 120-250 fps, take well under 100 MB). A declared shape beyond them is an error, not an OOM.
MAX_ARRAY_BYTES = DEFAULT_LIMITS.max_array_bytes
MAX_FILE_BYTES = DEFAULT_LIMITS.max_file_bytes
SMPLX_PACKED_DIM = 165  # root 3 | body 63 | jaw 3 | eyes 6 | hands 90

# Layout of SMPL-X packed ``poses`` (T, 165), from the AMASS SMPL-X stageii release.
_X_ROOT, _X_BODY, _X_JAW, _X_EYES, _X_HANDS = (
    slice(0, 3), slice(3, 66), slice(66, 69), slice(69, 75), slice(75, 165))


def is_non_motion(name: str) -> bool:
    """Known non-motion files that sit beside sequences: ``shape.npz`` and ``{gender}_stagei.npz``."""
    return name == "shape.npz" or name.endswith("_stagei.npz")


@dataclass
class SourceFile:
    """One motion file found by :func:`iter_amass`."""

    path: Path
    dataset: str
    subject: str  # path parts between the dataset folder and the file, joined by "/"
    name: str  # file stem
    key: str  # "dataset/subject/name": unique within a root and stable across runs


@dataclass
class MotionSequence:
    """One AMASS sequence in SMPL+H layout, float64 as stored. T = frames in the file."""

    path: str
    dataset: str
    subject: str
    name: str
    key: str
    sha256: str
    model_type: str  # "smplh" | "smplx"
    gender: str  # "male" | "female" | "neutral"
    fps: float  # as stored in the file (mocap_framerate / mocap_frame_rate)
    poses: np.ndarray  # (T, 156) axis-angle: root 3 | body 63 | hands 90 (SMPL-X mapped into it)
    trans: np.ndarray  # (T, 3) metres, world (z-up)
    betas: np.ndarray  # (B,) all of them, never truncated
    dmpls: np.ndarray | None  # (T, 8) or None (SMPL-X has none)
    extra_poses: dict[str, np.ndarray] = field(default_factory=dict)  # "jaw" (T,3), "eyes" (T,6)
    keys: tuple[str, ...] = ()  # every key found in the archive
    source_format: str = "smplh"  # "smplh" | "smplx_keys" | "smplx_stageii"

    @property
    def n_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def duration_s(self) -> float:
        """Span from first to last frame plus one frame period, i.e. ``T / fps``."""
        return self.n_frames / self.fps


def _source_file(path: Path, root: Path, rel: str | None = None) -> SourceFile:
    """``rel``: ``path`` relative to ``root`` with ``/`` separators, when the caller has it already."""
    parts = tuple(rel.split("/")) if rel is not None else path.relative_to(root).parts
    dataset = parts[0] if len(parts) > 1 else ""
    subject = "/".join(parts[1:-1])
    last = parts[-1]
    name = last[: -len(".npz")] if last.lower().endswith(".npz") else Path(last).stem
    key = "/".join(p for p in (*parts[:-1], name) if p)
    return SourceFile(path=path, dataset=dataset, subject=subject, name=name, key=key)


def iter_amass(root: str | os.PathLike) -> Iterator[SourceFile]:
    """Walk ``root`` in sorted order and yield every ``*.npz`` except known non-motions.

    Anything named ``*.npz`` is yielded, even a directory or an empty file, so that
    :func:`read_amass` turns it into an error instead of it vanishing from the build.
    A ``root`` that is itself a file yields that file. Symlinked folders are not followed.
    """
    root = Path(root)
    if root.is_file():
        yield _source_file(root, root.parent)
        return
    if not root.is_dir():
        raise AmassFormatError(root, "AMASS root is not a directory")
    found: list[tuple[str, str]] = []  # (path relative to root with "/", path): strings, fast for 10^4 files
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for n in (*dirnames, *filenames):
            if n.lower().endswith(".npz") and not is_non_motion(n):
                found.append((n if rel_dir == "." else f"{rel_dir}/{n}", os.path.join(dirpath, n)))
    found.sort()
    for rel, p in found:
        yield _source_file(Path(p), root, rel)


# ---------------------------------------------------------------------------------------------
# Guarded archive access


class _Archive:
    """A zip of ``.npy`` members read from memory; headers are checked before any data is read."""

    def __init__(self, path: Path, data: bytes):
        self.path = path
        self.zf = open_zip(io.BytesIO(data), path, AmassFormatError)
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.held = 0  # bytes of arrays read so far (as held in memory), against MAX_FILE_BYTES
        for info in self.zf.infolist():
            if info.filename.endswith(".npy"):
                self.members[info.filename[:-4]] = info
        if not self.members:
            raise AmassFormatError(path, "zip archive holds no .npy arrays")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(sorted(self.members))

    def __contains__(self, key: str) -> bool:
        return key in self.members

    def get(self, key: str) -> np.ndarray:
        """One member, its header checked (:func:`read_npy_header`) and its size budgeted before reading."""
        info = self.members[key]
        if info.file_size > MAX_ARRAY_BYTES + 65536:  # from the zip directory: nothing inflated yet
            raise AmassFormatError(self.path, f"array {key!r} inflates to {info.file_size} bytes, over the "
                                              f"{MAX_ARRAY_BYTES}-byte limit")
        try:
            with self.zf.open(info) as f:
                head = read_npy_header(f, self.path, key, info.file_size, DEFAULT_LIMITS, allow_object=False)
                # what we will hold: floats are widened to float64, so a float32 array counts double
                held = head.count * max(head.dtype.itemsize, 8 if head.dtype.kind == "f" else 0)
                if held > MAX_ARRAY_BYTES:
                    raise AmassFormatError(self.path, f"array {key!r} declares shape {head.shape} of {head.dtype} "
                                                      f"({held} bytes as loaded), over the {MAX_ARRAY_BYTES}-byte limit")
                if self.held + held > MAX_FILE_BYTES:
                    raise AmassFormatError(self.path, f"arrays of this file take more than the {MAX_FILE_BYTES}-byte "
                                                      f"limit (at {key!r})")
                arr = read_npy_data(f, self.path, key, head)
        except AmassFormatError:
            raise
        except InputError as exc:  # the shared .npy checks: re-type, keep the reason
            raise AmassFormatError(self.path, exc.reason) from None
        self.held += held
        return arr


def _open_archive(path: Path) -> tuple[_Archive, str]:
    # a regular file only (a FIFO or a symlink to /dev/zero is refused without being opened), read once
    data = read_regular(path, MAX_FILE_BYTES, AmassFormatError)
    if not data:
        raise AmassFormatError(path, "empty file")
    sha = sha256_bytes(data)
    if not data.startswith(b"PK"):
        kind = "a pickle" if data[:1] == b"\x80" else ("a bare .npy array" if data.startswith(b"\x93NUMPY") else "unknown bytes")
        raise AmassFormatError(path, f"not an .npz (zip) archive: starts like {kind}")
    return _Archive(path, data), sha


# ---------------------------------------------------------------------------------------------
# Validation helpers


def _float_array(arc: _Archive, key: str, ndim: int) -> np.ndarray:
    a = arc.get(key)
    if not np.issubdtype(a.dtype, np.floating):
        raise AmassFormatError(arc.path, f"{key!r} has dtype {a.dtype}, expected floating point")
    if ndim == 1 and a.ndim == 2 and a.shape[0] == 1:
        a = a[0]  # some exporters keep betas as (1, B)
    if a.ndim != ndim:
        raise AmassFormatError(arc.path, f"{key!r} has shape {a.shape}, expected {ndim} dimensions")
    if not np.isfinite(a).all():
        raise AmassFormatError(arc.path, f"{key!r} holds non-finite values (NaN/inf)")
    return np.ascontiguousarray(a, dtype=np.float64)


def _frames(arc: _Archive, key: str, width: int, n_frames: int | None = None) -> np.ndarray:
    a = _float_array(arc, key, 2)
    if a.shape[1] != width:
        raise AmassFormatError(arc.path, f"{key!r} has shape {a.shape}, expected (T, {width})")
    if n_frames is not None and a.shape[0] != n_frames:
        raise AmassFormatError(arc.path, f"{key!r} has {a.shape[0]} frames but poses have {n_frames}")
    return a


def _scalar_text(arc: _Archive, key: str) -> str:
    a = arc.get(key)
    if a.size != 1 or a.dtype.kind not in "US":
        raise AmassFormatError(arc.path, f"{key!r} must be one string (str or bytes), got {a.dtype} {a.shape}")
    v = a.reshape(()).item()
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError:
            raise AmassFormatError(arc.path, f"{key!r} is not valid UTF-8") from None
    return v.strip()


def _gender(arc: _Archive) -> str:
    if "gender" not in arc:
        raise AmassFormatError(arc.path, "missing key 'gender'")
    g = _scalar_text(arc, "gender").lower()
    if g not in GENDERS:
        raise AmassFormatError(arc.path, f"unknown gender {g[:40]!r} (expected one of {', '.join(GENDERS)})")
    return g


def _fps(arc: _Archive) -> float:
    # SMPL+H G spells it mocap_framerate, SMPL-X mocap_frame_rate; accept either in either.
    key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in arc), None)
    if key is None:
        raise AmassFormatError(arc.path, "missing frame rate ('mocap_framerate' or 'mocap_frame_rate')")
    a = arc.get(key)
    if a.size != 1 or a.dtype.kind not in "fiu":
        raise AmassFormatError(arc.path, f"{key!r} must be one number, got {a.dtype} {a.shape}")
    fps = float(a.reshape(()).item())
    if not (math.isfinite(fps) and fps > 0):
        raise AmassFormatError(arc.path, f"{key!r} = {fps} is not a positive finite frame rate")
    return fps


def _require(arc: _Archive, *keys: str) -> None:
    missing = [k for k in keys if k not in arc]
    if missing:
        raise AmassFormatError(arc.path, f"missing key(s) {', '.join(map(repr, missing))}")


def _parse(arc: _Archive) -> dict:
    """Pick the layout from the keys and return poses/trans/betas/dmpls/extras in SMPL+H layout."""
    out: dict = {"extra_poses": {}, "dmpls": None}
    if "poses" in arc:
        poses = _float_array(arc, "poses", 2)
        width = poses.shape[1]
        if width == SMPLH_POSE_DIM:
            out["model_type"], out["source_format"] = "smplh", "smplh"
            out["poses"] = poses
        elif width == SMPLX_PACKED_DIM:
            out["model_type"], out["source_format"] = "smplx", "smplx_stageii"
            out["poses"] = np.concatenate([poses[:, _X_ROOT], poses[:, _X_BODY], poses[:, _X_HANDS]], axis=1)
            out["extra_poses"] = {"jaw": poses[:, _X_JAW].copy(), "eyes": poses[:, _X_EYES].copy()}
        else:
            raise AmassFormatError(arc.path, f"'poses' has shape {poses.shape}: expected (T, {SMPLH_POSE_DIM}) "
                                             f"SMPL+H or (T, {SMPLX_PACKED_DIM}) SMPL-X")
    elif "root_orient" in arc or "pose_body" in arc:
        _require(arc, "root_orient", "pose_body", "pose_hand")
        root = _frames(arc, "root_orient", 3)
        t = root.shape[0]
        body = _frames(arc, "pose_body", 63, t)
        hands = _frames(arc, "pose_hand", 90, t)
        out["model_type"], out["source_format"] = "smplx", "smplx_keys"
        out["poses"] = np.concatenate([root, body, hands], axis=1)
        if "pose_jaw" in arc:
            out["extra_poses"]["jaw"] = _frames(arc, "pose_jaw", 3, t)
        if "pose_eye" in arc:
            out["extra_poses"]["eyes"] = _frames(arc, "pose_eye", 6, t)
    else:
        raise AmassFormatError(arc.path, "no motion: neither 'poses' nor 'root_orient'/'pose_body' present "
                                         f"(keys: {', '.join(arc.keys)[:200]})")
    if "surface_model_type" in arc:
        smt = _scalar_text(arc, "surface_model_type").lower()
        if smt not in ("smplh", "smplx", "smpl+h", "smpl-x"):
            raise AmassFormatError(arc.path, f"unsupported surface_model_type {smt[:40]!r}")
        if smt.replace("+", "").replace("-", "") != out["model_type"]:
            raise AmassFormatError(arc.path, f"surface_model_type {smt!r} contradicts the pose layout "
                                             f"({out['model_type']})")
    n_frames = out["poses"].shape[0]
    if n_frames < 1:
        raise AmassFormatError(arc.path, "zero frames")
    _require(arc, "trans", "betas")
    out["trans"] = _frames(arc, "trans", 3, n_frames)
    betas = _float_array(arc, "betas", 1)
    if betas.shape[0] < 1:
        raise AmassFormatError(arc.path, "'betas' is empty")
    out["betas"] = betas
    if "dmpls" in arc:
        out["dmpls"] = _frames(arc, "dmpls", NUM_DMPLS, n_frames)
    out["gender"] = _gender(arc)
    out["fps"] = _fps(arc)
    return out


def read_amass(path: str | os.PathLike | SourceFile, root: str | os.PathLike | None = None) -> MotionSequence:
    """Read and validate one AMASS motion file. Raises :class:`AmassFormatError` for any bad input.

    ``root`` (the AMASS root folder) fixes dataset/subject/key; without it the file is taken to sit
    at ``<dataset>/<subject>/<file>``. A :class:`SourceFile` carries its own names.
    """
    if isinstance(path, SourceFile):
        src = path
    else:
        p = Path(path)
        if root is not None:
            try:
                src = _source_file(p, Path(root))
            except ValueError:
                raise AmassFormatError(p, f"not under the AMASS root {root}") from None
        else:
            src = _source_file(p, p.parents[2] if len(p.parents) > 2 else p.parent)
    p = Path(src.path)
    if is_non_motion(p.name):
        raise AmassFormatError(p, "is a shape/stagei file, not a motion")
    try:
        arc, sha = _open_archive(p)
        parsed = _parse(arc)
    except AmassFormatError:
        raise
    except MemoryError:
        raise AmassFormatError(p, "array too large to load (MemoryError)") from None
    except Exception as e:  # BadZipFile, EOFError, OSError, ValueError, zlib.error, struct.error...
        msg = str(e).splitlines()[0][:200] if str(e) else ""
        raise AmassFormatError(p, f"unreadable archive: {type(e).__name__}: {msg}") from None
    return MotionSequence(
        path=str(p), dataset=src.dataset, subject=src.subject, name=src.name, key=src.key, sha256=sha,
        model_type=parsed["model_type"], gender=parsed["gender"], fps=parsed["fps"],
        poses=parsed["poses"], trans=parsed["trans"], betas=parsed["betas"], dmpls=parsed["dmpls"],
        extra_poses=parsed["extra_poses"], keys=arc.keys, source_format=parsed["source_format"],
    )


def inspect_amass(path: str | os.PathLike) -> dict:
    """JSON-able summary of one motion file (raises :class:`AmassFormatError` like :func:`read_amass`)."""
    m = read_amass(path)
    return {
        "path": m.path,
        "model_type": m.model_type,
        "source_format": m.source_format,
        "gender": m.gender,
        "source_fps": m.fps,
        "frames": m.n_frames,
        "duration_s": m.duration_s,
        "keys": list(m.keys),
        "n_betas": int(m.betas.shape[0]),
        "has_dmpls": m.dmpls is not None,
        "extra_poses": sorted(m.extra_poses),
        "sha256": m.sha256,
    }
