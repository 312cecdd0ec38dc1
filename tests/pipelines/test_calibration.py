"""MPI-INF-3DHP ``camera.calibration`` files (``pipelines.calibration``): parsed into the shipped figures, and
every malformed file refused with a one-line ``CameraError``."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.calibration import parse_3dhp_calibration
from schemas.cameras import mpi_inf_3dhp_camera, project, world_to_camera
from schemas.errors import CameraError, InputError
from tests.schemas.test_cameras import RAW_3DHP_0


def _block(name, fx, fy, cx, cy, E, size=(2048, 2048), radial="0"):
    K = [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    return (f"name          {name}\n  sensor      10 10\n  size        {size[0]} {size[1]}\n  animated    0\n"
            f"  intrinsic   {' '.join(str(v) for v in K)} \n"
            f"  extrinsic   {' '.join(repr(float(v)) for v in np.asarray(E).ravel())} \n"
            f"  radial      {radial}\n")


def _good_file(tmp_path, extra="", **kw):
    r = RAW_3DHP_0
    text = "Skeletool Camera Calibration File V1.0\n" + _block("0", r["fx"], r["fy"], r["cx"], r["cy"], r["E"], **kw)
    text += _block("7", 1000.0, 1001.0, 500.0, 400.0, np.diag([1.0, -1.0, -1.0, 1.0])) + extra
    path = tmp_path / "camera.calibration"
    path.write_text(text)
    return path


def test_parse_3dhp_calibration(tmp_path):
    cams = parse_3dhp_calibration(_good_file(tmp_path))
    assert [c.id for c in cams] == ["0", "7"] and all(c.rig == "3dhp" for c in cams)
    ref = mpi_inf_3dhp_camera(0)
    assert (cams[0].fx, cams[0].fy, cams[0].cx, cams[0].cy, cams[0].res_w) == (ref.fx, ref.fy, ref.cx, ref.cy, 2048)
    np.testing.assert_allclose(cams[0].extrinsics_matrix(), ref.extrinsics_matrix(), atol=1e-12)
    # camera "7": R_y = diag(1, -1, -1), camera at the y-up origin looking down -z (y-up) = +y (z-up)
    np.testing.assert_allclose(cams[1].optical_axis(), [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(project(world_to_camera(np.array([0.0, 2.0, 0.1]), cams[1]), cams[1]),
                               [500.0, 400.0 - 1001.0 * 0.05], atol=1e-9)


@pytest.mark.parametrize("mutate, words", [
    (lambda t: t.replace("  extrinsic", "  ignored", 1), "missing 'extrinsic'"),
    (lambda t: t.replace("size        2048 2048", "size        2048", 1), "'size' needs 2"),
    (lambda t: t.replace("intrinsic   1497.693", "intrinsic   abc", 1), "non-numeric"),
    (lambda t: t.replace("intrinsic   1497.693 0", "intrinsic   1497.693 5", 1), "not of the form"),
    (lambda t: t.replace("0.9650164", "1.9650164", 1), "not a proper rotation"),
    (lambda t: t.replace("radial      0", "radial      0.1", 1), "radial"),
    (lambda t: t.replace("name          7", "name          0", 1), "duplicate"),
    (lambda t: "size 2048 2048\n" + t, "before the first 'name'"),
    (lambda t: "Skeletool Camera Calibration File V1.0\n", "no camera"),
    (lambda t: t.replace("1497.693", "nan", 1), "non-finite"),
])
def test_malformed_calibration_raises_camera_error(tmp_path, mutate, words):
    path = _good_file(tmp_path)
    path.write_text(mutate(path.read_text()))
    with pytest.raises(CameraError) as exc:
        parse_3dhp_calibration(path)
    assert words in exc.value.reason and exc.value.path == str(path)
    assert "\n" not in str(exc.value) and isinstance(exc.value, InputError)


def test_unreadable_calibration_files(tmp_path):
    with pytest.raises(CameraError, match="not found"):
        parse_3dhp_calibration(tmp_path / "absent.calibration")
    binary = tmp_path / "binary.calibration"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(CameraError, match="not a text file"):
        parse_3dhp_calibration(binary)
