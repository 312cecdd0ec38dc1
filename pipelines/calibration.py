"""MPI-INF-3DHP ``camera.calibration`` files -> :class:`schemas.cameras.Camera` (z-up world, metres).

Every problem raises :class:`CameraError` naming the file, the line and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from schemas.bounds import IMAGE_SIDE_PX, out_of_range, range_text
from schemas.cameras import Camera, camera_from_y_up_mm
from schemas.errors import CameraError
from schemas.files import read_bounded

MAX_CAMERAS = 64  # camera blocks in one file (the 3DHP studio has 14)


def _floats(path, lineno: int, key: str, values: list[str], count: int | None) -> np.ndarray:
    if count is not None and len(values) != count:
        raise CameraError(path, f"line {lineno}: '{key}' needs {count} numbers, found {len(values)}")
    try:
        arr = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        raise CameraError(path, f"line {lineno}: '{key}' has a non-numeric value") from None
    if not np.isfinite(arr).all():
        raise CameraError(path, f"line {lineno}: '{key}' has a non-finite value")
    return arr


def _camera_from_block(path, name: str, block: dict) -> Camera:
    for key in ("size", "intrinsic", "extrinsic"):
        if key not in block:
            raise CameraError(path, f"camera '{name}': missing '{key}'")
    (size_line, size) = block["size"]
    if np.any(size != np.round(size)) or any(out_of_range(v, *IMAGE_SIDE_PX) for v in size):
        raise CameraError(path, f"line {size_line}: 'size' must be two integers in {range_text(*IMAGE_SIDE_PX, 'pixels')}")
    (k_line, K) = block["intrinsic"]
    K = K.reshape(4, 4)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    expected_zero = [K[0, 1], K[0, 3], K[1, 0], K[1, 3], K[2, 0], K[2, 1], K[2, 3], K[3, 0], K[3, 1], K[3, 2]]
    if np.any(np.abs(expected_zero) > 1e-9) or K[2, 2] != 1 or K[3, 3] != 1:
        raise CameraError(path, f"line {k_line}: 'intrinsic' is not of the form [fx 0 cx 0; 0 fy cy 0; 0 0 1 0; 0 0 0 1]")
    if fx <= 0 or fy <= 0:
        raise CameraError(path, f"line {k_line}: 'intrinsic' focal lengths must be positive")
    (e_line, E) = block["extrinsic"]
    E = E.reshape(4, 4)
    if np.any(E[3] != np.array([0.0, 0.0, 0.0, 1.0])):
        raise CameraError(path, f"line {e_line}: 'extrinsic' last row must be 0 0 0 1")
    R = E[:3, :3]
    # the published matrices are orthonormal to ~1e-7; anything far off is a broken file
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) <= 0:
        raise CameraError(path, f"line {e_line}: 'extrinsic' rotation part is not a proper rotation")
    if "radial" in block:
        (r_line, radial) = block["radial"]
        if np.any(radial != 0):
            raise CameraError(path, f"line {r_line}: non-zero 'radial' distortion is not supported")
    return camera_from_y_up_mm("3dhp", name, int(size[0]), int(size[1]), fx, fy, cx, cy, E)


_COUNTS = {"size": 2, "intrinsic": 16, "extrinsic": 16, "radial": None}


def parse_3dhp_calibration(path: str | os.PathLike) -> list[Camera]:
    """Read an MPI-INF-3DHP ``camera.calibration`` file -> one Camera per ``name`` block, file order.

    Format (one key a line, values whitespace-separated)::

        Skeletool Camera Calibration File V1.0
        name          0
          sensor      10 10
          size        2048 2048
          animated    0
          intrinsic   fx 0 cx 0 0 fy cy 0 0 0 1 0 0 0 0 1
          extrinsic   <4x4 row-major world(y-up, mm)-to-camera>
          radial      0

    Cameras come back in the internal convention (z-up world, metres). Raises ``CameraError`` (file +
    one-line reason) on unreadable files (a FIFO, a device, over the 1 MiB limit for calibration
    files: ``schemas.files``), missing keys, wrong counts, non-numbers, bad matrices.
    Unknown keys inside a block (``sensor``, ``animated``) are ignored.
    """
    return read_3dhp_calibration(path)[0]


def read_3dhp_calibration(path: str | os.PathLike) -> tuple[list[Camera], str]:
    """(cameras, sha256 of the bytes parsed): :func:`parse_3dhp_calibration` and the file's identity
    from the same read."""
    path = Path(path)
    fb = read_bounded(path, "calibration", CameraError)
    try:
        text = fb.data.decode("utf-8")
    except UnicodeDecodeError:
        raise CameraError(path, "not a text file (invalid UTF-8)") from None
    return _parse_text(path, text), fb.sha256


def _parse_text(path: Path, text: str) -> list[Camera]:
    blocks: list[tuple[str, dict]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        key, values = parts[0], parts[1:]
        if key == "name":
            if len(blocks) >= MAX_CAMERAS:
                raise CameraError(path, f"line {lineno}: more than {MAX_CAMERAS} cameras; over the limit")
            if len(values) != 1:
                raise CameraError(path, f"line {lineno}: 'name' needs exactly one value")
            if any(values[0] == n for n, _ in blocks):
                raise CameraError(path, f"line {lineno}: duplicate camera name '{values[0]}'")
            blocks.append((values[0], {}))
            continue
        if not blocks:
            if key.startswith("Skeletool"):  # the header line
                continue
            raise CameraError(path, f"line {lineno}: '{key}' before the first 'name' entry")
        if key in _COUNTS:
            name, block = blocks[-1]
            if key in block:
                raise CameraError(path, f"line {lineno}: camera '{name}' repeats '{key}'")
            block[key] = (lineno, _floats(path, lineno, key, values, _COUNTS[key]))
    if not blocks:
        raise CameraError(path, "no camera ('name' entry) found")
    return [_camera_from_block(path, name, block) for name, block in blocks]
