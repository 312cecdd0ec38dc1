"""Human3.6M / CPN in the VideoPose3D ``.npz`` format: read (and write) the files safely, import them as
corpus records.

The files everybody has (VideoPose3D, Pavllo et al. 2019)::

    data_3d_h36m.npz                    positions_3d: {subject: {action: (T, 32, 3) float32}}  world, metres, z-up
    data_2d_h36m_cpn_ft_h36m_dbb.npz    positions_2d: {subject: {action: [(T_c, 17, 2) | None] * 4}}  pixels
    data_2d_h36m_gt.npz                 same, ground-truth 2D
                                        metadata: {layout_name, num_joints, keypoints_symmetry}

Both keys are pickled object arrays: they are read only through :mod:`pipelines.safe_pickle`, so a
file naming any global besides numpy's array reconstruction is refused before anything executes.

Import: one sequence per subject/action (world joints reduced 32 -> 17 for training; all 32 are kept
in the optional ``joints_world_32`` array, see ``schemas.store``), one view per camera
(2D = that camera's detections, normalised with its resolution; 3D = the world joints in its frame).
2D sequences longer than the 3D one are trimmed to it and the dropped count is recorded per view
(``trimmed_frames``). Subjects, actions and cameras that cannot be paired become ``Reject`` rows.

The build that commits an import is ``pipelines.build_h36m``; the export back to these files is
``pipelines.h36m_export``.
"""

from __future__ import annotations

import logging
import os
import re
import reprlib
from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.hashing import json_hash
from schemas.records import Reject, SequenceData, ViewData
from pipelines.safe_files import dtype_text
from pipelines.safe_pickle import safe_load_npz
from schemas.bounds import record_problem
from schemas.files import check_regular, read_bounded
from schemas.cameras import H36M_CAMERA_IDS, Camera, h36m_camera, in_image, normalize_pixels, project, world_to_camera
from schemas.errors import CameraError, H36MFormatError
from schemas.h36m import action_take, canonical_action, split_of
from schemas.skeletons import H36M_17, H36M_32_PARENTS, H36M_32_TO_17

log = logging.getLogger(__name__)

IMPORTER_VERSION = "h36m-vp3d-1"
H36M_FPS = 50.0
NUM_CAMERAS = 4

# VideoPose3D's metadata of the 17-joint H36M layout; exported files carry it, imported ones must match.
VP3D_METADATA = {
    "layout_name": "h36m",
    "num_joints": 17,
    "keypoints_symmetry": [list(H36M_17.left), list(H36M_17.right)],
}

# File names by detection source, as VideoPose3D spells them.
_DETECTION_SUFFIX = {"cpn": "cpn_ft_h36m_dbb", "gt": "gt"}


def vp3d_filenames(name: str = "h36m", detections: str = "cpn") -> tuple[str, str]:
    """The VideoPose3D file names ``(data_3d_<name>.npz, data_2d_<name>_<suffix>.npz)`` for a detection source."""
    return f"data_3d_{name}.npz", f"data_2d_{name}_{_DETECTION_SUFFIX.get(detections, detections)}.npz"


def _natural(name: str) -> tuple:
    """Sort key: S2 before S11. Only ASCII digit runs are numbers (``'²'.isdigit()`` is true, ``int('²')`` fails);
    every part is paired with its text so numbers and words never compare with each other."""
    return tuple((int(p), p) if p.isascii() and p.isdigit() else (-1, p) for p in re.split(r"([0-9]+)", name))


# ----------------------------------------------------------------------------------------------------
# Reading the files
# ----------------------------------------------------------------------------------------------------

def _load_object_key(path: str | os.PathLike, key: str, kind: str = "vp3d") -> tuple[Any, dict, str]:
    """(the pickled object under ``key``, the arrays read, sha256 of the file bytes parsed).

    The file is read once (``schemas.files.read_bounded``: a regular file within ``kind``'s byte
    limit) and parsed from those bytes, so its recorded hash is that of what was imported. Only the
    keys we use are inflated; object arrays are expected here (and only here).
    """
    fb = read_bounded(path, kind, H36MFormatError)
    arrays = safe_load_npz(path, keys={key, "metadata"}, allow_object=True, data=fb.data)  # errors name the file
    if key not in arrays:
        raise H36MFormatError(path, f"no {key!r} array (keys: {sorted(arrays)}); not a VideoPose3D file")
    arr = arrays[key]
    if arr.dtype != object or arr.shape != ():
        raise H36MFormatError(path, f"{key!r} is a {dtype_text(arr.dtype)} array of shape {arr.shape}, expected a "
                                    f"pickled dict")
    return arr.item(), arrays, fb.sha256


def _check_nested(path, obj: Any, what: str) -> dict:
    if not isinstance(obj, dict):
        raise H36MFormatError(path, f"{what} is a {type(obj).__name__}, expected a dict")
    for k in obj:
        if not isinstance(k, str):
            raise H36MFormatError(path, f"{what} has a non-string key {k!r}")
    return obj


def _as_float32(path, arr: Any, where: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise H36MFormatError(path, f"{where} is not a numeric array ({type(arr).__name__})")
    return np.asarray(arr, dtype=np.float32)


def load_positions_3d(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read ``data_3d_*.npz``: subject -> action -> (T, J, 3) float32 world positions in metres.

    J is 32 for the original files and 17 for our exports; shapes are checked per sequence at import
    (a bad array becomes a reject row, not a failed file). Raises ``UnsafePickleError`` for a pickle
    naming any forbidden global, ``H36MFormatError`` for a wrong key or nesting.
    """
    return read_positions_3d(path)[0]


def read_positions_3d(path: str | os.PathLike) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """(:func:`load_positions_3d`, sha256 of the bytes parsed)."""
    obj, _, sha = _load_object_key(path, "positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in _check_nested(path, obj, "positions_3d").items():
        actions = _check_nested(path, actions, f"positions_3d[{subject!r}]")
        out[subject] = {a: _as_float32(path, x, f"positions_3d[{subject!r}][{a!r}]") for a, x in actions.items()}
    return out, sha


def load_positions_2d(path: str | os.PathLike) -> tuple[dict[str, dict[str, list[np.ndarray | None]]], dict]:
    """Read ``data_2d_*.npz``: (subject -> action -> per-camera list of (T_c, 17, 2) pixels or None, metadata).

    Cameras are in the order of the H36M camera table; real CPN files hold ``None`` for missing ones.
    ``metadata`` (absent -> the H36M defaults) must describe the 17-joint H36M layout: a file in another
    joint order would silently mislabel joints, so it is refused.
    """
    pos, metadata, _ = read_positions_2d(path)
    return pos, metadata


def read_positions_2d(path: str | os.PathLike, kind: str = "vp3d"
                      ) -> tuple[dict[str, dict[str, list[np.ndarray | None]]], dict, str]:
    """(:func:`load_positions_2d`'s two values, sha256 of the bytes parsed); ``kind``: the byte limit."""
    obj, arrays, sha = _load_object_key(path, "positions_2d", kind)
    metadata = dict(VP3D_METADATA)
    if "metadata" in arrays:
        meta = arrays["metadata"]
        meta = meta.item() if isinstance(meta, np.ndarray) and meta.dtype == object and meta.shape == () else meta
        if not isinstance(meta, dict):
            raise H36MFormatError(path, f"'metadata' is a {type(meta).__name__}, expected a dict")
        metadata = meta
        _check_metadata(path, metadata)
    out: dict[str, dict[str, list[np.ndarray | None]]] = {}
    for subject, actions in _check_nested(path, obj, "positions_2d").items():
        actions = _check_nested(path, actions, f"positions_2d[{subject!r}]")
        out[subject] = {}
        for action, cams in actions.items():
            where = f"positions_2d[{subject!r}][{action!r}]"
            if isinstance(cams, np.ndarray) and cams.dtype == object and cams.ndim == 1:
                cams = list(cams)
            if not isinstance(cams, (list, tuple)):
                raise H36MFormatError(path, f"{where} is a {type(cams).__name__}, expected a list of per-camera arrays")
            out[subject][action] = [None if c is None else _as_float32(path, c, f"{where}[{i}]") for i, c in enumerate(cams)]
    return out, metadata, sha


def _short(value: Any) -> str:
    """A bounded repr for messages: ``reprlib`` stops after a few items and levels, so a metadata value
    of millions of elements is never formatted whole."""
    text = _REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_REPR = reprlib.Repr()
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 8
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


def _check_metadata(path, meta: dict) -> None:
    layout = meta.get("layout_name", "h36m")
    if isinstance(layout, np.ndarray) and layout.shape == () and layout.dtype.kind in "US":
        layout = layout.item()
    if isinstance(layout, bytes):
        layout = layout.decode("latin1")
    if not isinstance(layout, str) or layout != "h36m":
        raise H36MFormatError(path, f"metadata layout_name is {_short(layout)}, only the 'h36m' layout is supported")
    joints = meta.get("num_joints", 17)
    if isinstance(joints, np.ndarray) and joints.shape == () and joints.dtype.kind in "iu":
        joints = joints.item()
    # an int (or a numpy integer) only: int() of a list raises, of a 5000-digit string refuses to convert
    if isinstance(joints, bool) or not isinstance(joints, (int, np.integer)) or int(joints) != 17:
        raise H36MFormatError(path, f"metadata num_joints is {_short(joints)}, expected 17")
    sym = meta.get("keypoints_symmetry")
    if sym is not None:
        try:
            if len(sym) != 2 or any(len(side) > 64 for side in sym):
                raise ValueError
            left, right = ([int(j) for j in side] for side in sym)
        except (TypeError, ValueError, OverflowError):
            raise H36MFormatError(path, f"metadata keypoints_symmetry is malformed: {_short(sym)}") from None
        if left != list(H36M_17.left) or right != list(H36M_17.right):
            raise H36MFormatError(path, f"metadata keypoints_symmetry {_short(sym)} does not match the H36M 17-joint order")


def reduce_32_to_17(x: np.ndarray) -> np.ndarray:
    """(..., 32, C) full H36M layout -> (..., 17, C) in ``H36M_17`` order (VideoPose3D's ``remove_joints``)."""
    if x.shape[-2] != 32:
        raise ValueError(f"expected 32 joints on axis -2, got shape {x.shape}")
    return x[..., list(H36M_32_TO_17), :]


def _nearest_kept_ancestor() -> tuple[int, ...]:
    """(32,) for each H36M joint the index (0..16) of itself or its nearest ancestor among the 17 kept."""
    kept = {j: i for i, j in enumerate(H36M_32_TO_17)}
    out = []
    for j in range(32):
        while j not in kept:
            j = H36M_32_PARENTS[j]
        out.append(kept[j])
    return tuple(out)


def expand_17_to_32(x: np.ndarray) -> np.ndarray:
    """(..., 17, C) -> (..., 32, C) in the full H36M layout, for loaders that hard-code 32 joints.

    The 15 joints the corpus does not store (toes, hand ends, duplicates) are placeholders at their
    nearest kept ancestor, so ``reduce_32_to_17(expand_17_to_32(x)) == x`` exactly.
    """
    if x.shape[-2] != 17:
        raise ValueError(f"expected 17 joints on axis -2, got shape {x.shape}")
    return x[..., list(_nearest_kept_ancestor()), :]


def save_vp3d_npz(path: str | os.PathLike, **objects) -> None:
    """``np.savez_compressed`` with each value boxed in a 0-d object array, as VideoPose3D writes them."""
    boxed = {}
    for k, v in objects.items():
        box = np.empty((), dtype=object)
        box[()] = v
        boxed[k] = box
    np.savez_compressed(path, **boxed)


# ----------------------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------------------

def resolve_files(data: str | os.PathLike | tuple | Mapping, detections: str = "cpn", name: str = "h36m") -> tuple[Path, Path]:
    """``(path_3d, path_2d)`` from a folder (VideoPose3D names), a ``(3d, 2d)`` pair or ``{"3d":, "2d":}``."""
    if isinstance(data, Mapping):
        p3, p2 = Path(data["3d"]), Path(data["2d"])
    elif isinstance(data, (tuple, list)):
        p3, p2 = (Path(p) for p in data)
    else:
        folder = Path(data)
        if not folder.exists():
            raise H36MFormatError(folder, "folder not found")
        if not folder.is_dir():
            raise H36MFormatError(folder, "not a folder (expected one holding the VideoPose3D files)")
        n3, n2 = vp3d_filenames(name, detections)
        p3, p2 = folder / n3, folder / n2
    for p in (p3, p2):
        check_regular(p, H36MFormatError)  # a FIFO or a device is refused without being opened
    return p3, p2


def _config_hash(detections: str, sha_2d: str) -> str:
    return json_hash({"importer": IMPORTER_VERSION, "detections": detections, "joints": "h36m32->17+32",
                      "fps": H36M_FPS, "sha_2d": sha_2d})


def _check_3d(x: np.ndarray) -> str | None:
    if x.ndim != 3 or x.shape[1] not in (32, 17) or x.shape[2] != 3:
        return f"3D positions have shape {x.shape}, expected (T, 32, 3) or (T, 17, 3)"
    if x.shape[0] == 0:
        return "3D positions have no frames"
    if not np.isfinite(x).all():
        return "3D positions contain NaN or infinite values"
    return None


def _check_2d(x: np.ndarray, n_frames: int) -> str | None:
    if x.ndim != 3 or x.shape[1] not in (32, 17) or x.shape[2] < 2:
        return f"2D keypoints have shape {x.shape}, expected (T, 17, 2)"
    if x.shape[0] < n_frames:
        return f"2D keypoints have {x.shape[0]} frames, fewer than the {n_frames} 3D frames"
    if not np.isfinite(x[:n_frames, :, :2]).all():
        return "2D keypoints contain NaN or infinite values"
    return None


def make_view(subject: str, cam_index: int, joints_world: np.ndarray, pixels: np.ndarray,
              detections: str, camera: Camera | None = None) -> ViewData:
    """One camera's view of a sequence.

    joints_world: (T, 17, 3) metres; pixels: (T', 17, 2+) with T' >= T (extra frames are trimmed).
    2D are stored normalised (float32, normalised in float64 so pixel export can invert them exactly);
    in_view comes from the ground-truth projection, not from the detections.
    """
    cam = camera if camera is not None else h36m_camera(subject, cam_index)
    T = joints_world.shape[0]
    xc = np.asarray(world_to_camera(joints_world.astype(np.float64), cam), dtype=np.float64)
    px_gt = project(xc, cam, distort=True)
    uv = normalize_pixels(np.asarray(pixels[:T, :, :2], dtype=np.float64), cam.res_w, cam.res_h)
    return ViewData(
        rig="h36m", camera_id=str(cam.id), rig_subject=subject, detections=detections,
        keypoints_2d=np.asarray(uv, dtype=np.float32),
        joints_cam=xc.astype(np.float32),
        in_view=np.asarray(in_image(px_gt, cam.res_w, cam.res_h, xc), dtype=bool),
        intrinsics=np.asarray(cam.intrinsics_vector(), dtype=np.float64),
        extrinsics=np.asarray(cam.extrinsics_matrix(), dtype=np.float64),
        trimmed_frames=int(pixels.shape[0] - T),
    )


def _pair_actions(actions_3d: Iterable[str], actions_2d: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Map each 3D action to its 2D action (exact name first, then same take under another spelling).

    Returns ({action_3d: action_2d}, [2D actions left unpaired]).
    """
    a2 = list(actions_2d)
    by_key: dict[str, list[str]] = {}
    for a in a2:
        by_key.setdefault(action_take(a), []).append(a)
    pairs, used = {}, set()
    for a in sorted(actions_3d):
        if a in a2:
            pairs[a] = a
    used.update(pairs.values())
    for a in sorted(actions_3d):
        if a in pairs:
            continue
        cands = [c for c in by_key.get(action_take(a), []) if c not in used]
        if len(cands) == 1:
            pairs[a] = cands[0]
            used.add(cands[0])
    return pairs, sorted(set(a2) - used)


@dataclass(frozen=True)
class VP3DFiles:
    """Both VideoPose3D files of an import, each read once: their contents and the sha256 of the bytes parsed."""

    p3: Path
    p2: Path
    pos3d: dict
    pos2d: dict
    sha3: str
    sha2: str


def read_vp3d_files(data: str | os.PathLike | tuple | Mapping, detections: str = "cpn",
                    name: str = "h36m") -> VP3DFiles:
    """Resolve (:func:`resolve_files`) and read both files; file-level problems raise ``InputError``."""
    p3, p2 = resolve_files(data, detections, name)
    pos3d, sha3 = read_positions_3d(p3)
    pos2d, _meta, sha2 = read_positions_2d(p2)
    return VP3DFiles(p3, p2, pos3d, pos2d, sha3, sha2)


def import_h36m(data: "str | os.PathLike | tuple | Mapping | VP3DFiles", detections: str = "cpn",
                name: str = "h36m") -> Iterator[SequenceData | Reject]:
    """Yield one ``SequenceData`` per subject/action (sorted) and a ``Reject`` for everything unpaired.

    ``data``: a folder holding the VideoPose3D files (``vp3d_filenames(name, detections)``), the two
    paths, or the files already read (:func:`read_vp3d_files`). Rejects (kind ``h36m``) name the file and ``#subject/action[/camera]``: subjects with 2D but
    no 3D (the CPN file's S2-S4), actions present in only one file, ``None`` / absent cameras, 2D
    shorter than 3D, malformed arrays, subjects without calibration. A sequence keeps its other views
    when one camera is missing; with no usable view it is rejected whole.
    File-level problems (missing file, forbidden pickle global, wrong nesting) raise ``InputError``.
    """
    files = data if isinstance(data, VP3DFiles) else read_vp3d_files(data, detections, name)
    p3, p2, pos3d, pos2d, sha3, sha2 = files.p3, files.p2, files.pos3d, files.pos2d, files.sha3, files.sha2
    cam_ids = tuple(H36M_CAMERA_IDS)
    chash = _config_hash(detections, sha2)

    def reject(path, frag, reason, sha):
        return Reject(source_path=f"{path}#{frag}", reason=reason, kind=H36MFormatError.kind, source_sha256=sha)

    for subject in sorted(set(pos3d) | set(pos2d), key=_natural):
        if subject not in pos3d:
            yield reject(p2, subject, f"subject {subject} has 2D keypoints but no 3D positions in {p3.name}", sha2)
            continue
        if subject not in pos2d:
            yield reject(p3, subject, f"subject {subject} has 3D positions but no 2D keypoints in {p2.name}", sha3)
            continue
        pairs, unpaired_2d = _pair_actions(pos3d[subject], pos2d[subject])
        for a2 in unpaired_2d:
            yield reject(p2, f"{subject}/{a2}", f"action {a2!r} of {subject} has 2D keypoints but no 3D positions", sha2)
        for action in sorted(pos3d[subject]):
            frag = f"{subject}/{action}"
            if action not in pairs:
                yield reject(p3, frag, f"action {action!r} of {subject} has 3D positions but no 2D keypoints in {p2.name}", sha3)
                continue
            x = pos3d[subject][action]
            bad = _check_3d(x)
            if bad:
                yield reject(p3, frag, bad, sha3)
                continue
            joints = reduce_32_to_17(x) if x.shape[1] == 32 else x
            joints_32 = x if x.shape[1] == 32 else expand_17_to_32(x)  # a 17-joint source: parents' positions
            T = joints.shape[0]
            cams = pos2d[subject][pairs[action]]
            views: list[ViewData] = []
            for c in range(max(NUM_CAMERAS, len(cams))):
                cfrag = f"{frag}/{cam_ids[c] if c < len(cam_ids) else c}"
                if c >= len(cams) or cams[c] is None:
                    yield reject(p2, cfrag, f"camera {c} of {subject}/{pairs[action]} has no 2D keypoints", sha2)
                    continue
                px = cams[c]
                bad = _check_2d(px, T)
                if bad:
                    yield reject(p2, cfrag, bad, sha2)
                    continue
                if px.shape[1] == 32:
                    px = reduce_32_to_17(px)
                try:
                    camera = h36m_camera(subject, c)
                except (KeyError, IndexError, ValueError, CameraError) as exc:
                    yield reject(p2, cfrag, f"no H36M calibration for {subject} camera {c}: {exc}", sha2)
                    continue
                views.append(make_view(subject, c, joints, px, detections, camera))
            if not views:
                yield reject(p2, frag, f"{subject}/{action} has no usable camera view", sha2)
                continue
            if any(v.trimmed_frames for v in views):
                log.info("%s: trimmed 2D to %d frames (%s)", frag, T, [v.trimmed_frames for v in views])
            seq = SequenceData(
                key=f"h36m/{subject}/{action}", source="h36m", joints_world=joints.astype(np.float32),
                joints_world_32=np.asarray(joints_32, dtype=np.float32),
                views=views, dataset="h36m", subject=subject, name=action, action=canonical_action(action),
                source_path=f"{p3}#{frag}", source_sha256=sha3, source_fps=H36M_FPS, fps=H36M_FPS,
                n_source_frames=T, split=split_of(subject), config_hash=chash,
            )
            bad = record_problem(seq)  # every array as stored (float32), finite and within the bounds
            yield reject(p3, frag, bad, sha3) if bad else seq
