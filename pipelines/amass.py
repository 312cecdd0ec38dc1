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
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pipelines.safe_files import DEFAULT_LIMITS, dtype_text, open_zip
from pipelines.safe_pickle.npz import read_npy_data, read_npy_header
from schemas.bounds import MAX_AXIS_ANGLE, MAX_POSITION_M, MAX_SHAPE_COEFF, SOURCE_FPS, beyond, out_of_range, range_text
from schemas.errors import AmassFormatError, InputError, one_line
from schemas.files import FileBytes, read_bounded
from schemas.skeletons import GENDERS, NUM_DMPLS, SMPLH_POSE_DIM, SMPLX_NUM_EXPRESSION, SMPLX_POSE_DIM

# Largest single array we agree to materialise, counted as held in memory (float64), and largest
# total per file: the budgets of every untrusted file (the longest AMASS sequences, a few minutes at
# 120-250 fps, take well under 100 MB). A declared shape beyond them is an error, not an OOM.
MAX_ARRAY_BYTES = DEFAULT_LIMITS.max_array_bytes
MAX_FILE_BYTES = DEFAULT_LIMITS.max_file_bytes
SMPLX_PACKED_DIM = SMPLX_POSE_DIM  # 165: root 3 | body 63 | jaw 3 | eyes 6 | hands 90

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
    expression: np.ndarray | None = None  # (T, E) SMPL-X expression coefficients, where the file has them

    def model_poses(self) -> np.ndarray:
        """The pose vector the body model takes: (T, 156) for SMPL+H; (T, 165) for SMPL-X in smplx's order
        root | body | jaw | eyes | hands (a file without jaw or eye poses: zeros, the model's rest)."""
        if self.model_type != "smplx":
            return self.poses
        T = self.n_frames
        jaw = self.extra_poses.get("jaw", np.zeros((T, 3)))
        eyes = self.extra_poses.get("eyes", np.zeros((T, 6)))
        return np.concatenate([self.poses[:, :66], jaw, eyes, self.poses[:, 66:]], axis=1)

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


def refused_sources(files: list[SourceFile], root: str | os.PathLike) -> dict[str, str]:
    """``{path: reason}`` for files a build must not read, decided from their names and links alone:

    - a file whose real path lies outside ``root`` (a symlink to elsewhere: a dataset folder must
      hold its data, and nothing outside it can be read through one);
    - a file whose sequence key equals an earlier file's ignoring letter case (``a_poses.npz`` and
      ``a_poses.NPZ`` give one key; keys that differ only in case collide on case-insensitive
      file systems): the later one, in ``files`` order, is refused, naming both.
    """
    from schemas.files import is_within

    out: dict[str, str] = {}
    first: dict[str, SourceFile] = {}
    for f in files:
        real = os.path.realpath(f.path)
        if not is_within(real, root) and os.path.isfile(real):  # a link to a device or FIFO: named by its kind
            out[str(f.path)] = f"is a link to {real}, outside the AMASS root {root}; refused without reading it"
            continue
        folded = f.key.casefold()
        if folded in first:
            out[str(f.path)] = (f"its sequence key {f.key!r} collides with that of {first[folded].path} (keys must "
                                f"differ in more than letter case); the later file is not built")
        else:
            first[folded] = f
    return out


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
                    raise AmassFormatError(self.path, f"array {key!r} declares shape {head.shape} of {dtype_text(head.dtype)} "
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


def _read_file(path: Path, root: str | os.PathLike | None) -> FileBytes:
    """The file's bytes and their sha256, from one bounded read (``schemas.files.read_bounded``): a
    regular file only (a FIFO or a symlink to /dev/zero is refused without being opened), within the
    byte limit for AMASS files and, with ``root``, whose real path lies inside ``root``."""
    return read_bounded(path, "amass", AmassFormatError, root=root)


def _open_archive(path: Path, data: bytes) -> _Archive:
    if not data:
        raise AmassFormatError(path, "empty file")
    if not data.startswith(b"PK"):
        kind = "a pickle" if data[:1] == b"\x80" else ("a bare .npy array" if data.startswith(b"\x93NUMPY") else "unknown bytes")
        raise AmassFormatError(path, f"not an .npz (zip) archive: starts like {kind}")
    return _Archive(path, data)


# ---------------------------------------------------------------------------------------------
# Validation helpers


def _float_array(arc: _Archive, key: str, ndim: int) -> np.ndarray:
    a = arc.get(key)
    if not np.issubdtype(a.dtype, np.floating):
        raise AmassFormatError(arc.path, f"{key!r} has dtype {dtype_text(a.dtype)}, expected floating point")
    if ndim == 1 and a.ndim == 2 and a.shape[0] == 1:
        a = a[0]  # some exporters keep betas as (1, B)
    if a.ndim != ndim:
        raise AmassFormatError(arc.path, f"{key!r} has shape {a.shape}, expected {ndim} dimensions")
    a = np.ascontiguousarray(a, dtype=np.float64)  # checked after the cast: what is used is what is checked
    bad = beyond(a, _BOUNDS.get(key, MAX_SHAPE_COEFF))
    if bad:
        raise AmassFormatError(arc.path, f"{key!r} holds {bad} ({_BOUND_TEXT.get(key, 'coefficients')})")
    return a


# Documented bounds (schemas.bounds) of each array read from a motion file, checked after the cast.
_BOUNDS = {"trans": MAX_POSITION_M, "poses": MAX_AXIS_ANGLE, "root_orient": MAX_AXIS_ANGLE,
           "pose_body": MAX_AXIS_ANGLE, "pose_hand": MAX_AXIS_ANGLE, "pose_jaw": MAX_AXIS_ANGLE,
           "pose_eye": MAX_AXIS_ANGLE, "betas": MAX_SHAPE_COEFF, "dmpls": MAX_SHAPE_COEFF}
_BOUND_TEXT = {"trans": "metres", "betas": "shape coefficients", "dmpls": "DMPL coefficients",
               **{k: "axis-angle radians" for k in ("poses", "root_orient", "pose_body", "pose_hand", "pose_jaw",
                                                     "pose_eye")}}


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
        raise AmassFormatError(arc.path, f"{key!r} must be one string (str or bytes), got {dtype_text(a.dtype)} {a.shape}")
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
        raise AmassFormatError(arc.path, f"{key!r} must be one number, got {dtype_text(a.dtype)} {a.shape}")
    fps = float(a.reshape(()).item())
    if out_of_range(fps, *SOURCE_FPS):
        raise AmassFormatError(arc.path, f"{key!r} = {fps:.6g} Hz is outside the documented range of source frame "
                                         f"rates ({range_text(*SOURCE_FPS, 'Hz')})")
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
    out["expression"] = None
    if out["model_type"] == "smplx" and "expression" in arc:
        expr = _float_array(arc, "expression", 2)
        if expr.shape[0] != n_frames or not 1 <= expr.shape[1] <= SMPLX_NUM_EXPRESSION:
            raise AmassFormatError(arc.path, f"'expression' has shape {expr.shape}, expected ({n_frames}, E) with "
                                             f"1 <= E <= {SMPLX_NUM_EXPRESSION}")
        out["expression"] = expr
    out["gender"] = _gender(arc)
    out["fps"] = _fps(arc)
    return out


def read_amass(path: str | os.PathLike | SourceFile, root: str | os.PathLike | None = None) -> MotionSequence:
    """Read and validate one AMASS motion file. Raises :class:`AmassFormatError` for any bad input.

    ``root`` (the AMASS root folder) fixes dataset/subject/key, and the file's real path must lie
    inside it (a symlink out of the root is refused); without it the file is taken to sit at
    ``<dataset>/<subject>/<file>``. A :class:`SourceFile` carries its own names.

    The file is read once; ``MotionSequence.sha256`` is the hash of exactly the bytes parsed. An error
    raised after the read carries that hash as ``source_sha256`` (a build records it in the reject row).
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
    fb = _read_file(p, root)
    try:
        arc = _open_archive(p, fb.data)
        parsed = _parse(arc)
    except AmassFormatError as e:
        e.source_sha256 = fb.sha256
        raise
    except MemoryError:
        raise _with_sha(AmassFormatError(p, "array too large to load (MemoryError)"), fb) from None
    except Exception as e:  # BadZipFile, EOFError, OSError, ValueError, zlib.error, struct.error...
        msg = one_line(e, 200, empty="")
        raise _with_sha(AmassFormatError(p, f"unreadable archive: {type(e).__name__}: {msg}"), fb) from None
    return MotionSequence(
        path=str(p), dataset=src.dataset, subject=src.subject, name=src.name, key=src.key, sha256=fb.sha256,
        model_type=parsed["model_type"], gender=parsed["gender"], fps=parsed["fps"],
        poses=parsed["poses"], trans=parsed["trans"], betas=parsed["betas"], dmpls=parsed["dmpls"],
        extra_poses=parsed["extra_poses"], keys=arc.keys, source_format=parsed["source_format"],
        expression=parsed["expression"],
    )


def _with_sha(exc: AmassFormatError, fb: FileBytes) -> AmassFormatError:
    exc.source_sha256 = fb.sha256
    return exc


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
        "n_expression": 0 if m.expression is None else int(m.expression.shape[1]),
        "sha256": m.sha256,
    }
