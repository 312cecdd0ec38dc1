"""The camera model: the Camera record, the two capture rigs' figures (Human3.6M, MPI-INF-3DHP) and
the numpy maths (world <-> camera, projection with distortion, undistortion, pixel normalisation).

Every camera is expressed in ONE internal convention:

* world frame: z-up, metres, floor at z = 0 (as AMASS and Human3.6M);
* camera frame: x right, y down, z forward (optical axis), metres;
* ``X_cam = R @ X_world + t`` (``R`` world-to-camera, ``t`` in metres);
* pixels through VideoPose3D's re-implementation of the Human3.6M projection model::

      x = clamp(X[:2] / X[2], -1, 1); r2 = |x|^2
      radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3;  tan = p1 x0 + p2 x1
      x' = x (radial + tan) + (p1, p2) r2;      pixel = f x' + c

* normalised image coordinates keep the aspect ratio: ``u = px / w * 2 - 1``, ``v = py / w * 2 - h / w``.

This module is the one definition: the builds (``pipelines``) call it, and the window loader's torch
kernel (``uplift.views.project_windows``) is tested equal to it.

The published figures are carried below as literals (facts, copied from the VideoPose3D H36M table
and the MPI-INF-3DHP training ``camera.calibration`` values); the conversions into the internal
convention are small functions here so that every consumer sees the same numbers.

* Human3.6M: a quaternion (w, x, y, z) that rotates camera to world and the camera centre in world
  millimetres, so ``R = R(q)^T`` and ``t = -R @ C / 1000``.
* MPI-INF-3DHP: a world(y-up, mm)-to-camera matrix ``[R_y | t_mm]``. The y-up world is turned into
  the z-up one by ``X_zup = Y_UP_TO_Z_UP @ X_yup`` (a +90 degree turn about x), folded into R:
  ``R = R_y @ Y_UP_TO_Z_UP.T`` and ``t = t_mm / 1000``. Their ``camera.calibration`` files are read
  by ``pipelines.calibration``.

The maths take ``cam`` as a ``Camera`` or as the stored vectors: intrinsics ``(..., 11)`` (fx fy cx cy
k1 k2 k3 p1 p2 res_w res_h, ``schemas.store.INTRINSICS_FIELDS``) or extrinsics ``(..., 3, 4)``
``[R | t]``. With a batch of B cameras (leading axes ``(B,)``), points carry the same leading axes:
``(B, ..., 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGS = ("h36m", "3dhp")


@dataclass(frozen=True)
class Camera:
    """One calibrated camera in the internal convention (z-up world, metres; see the module doc)."""

    rig: str  # "h36m" | "3dhp"
    id: str  # "54138969" / "0".."13"
    subject: str  # H36M subject whose extrinsics these are ("" for 3DHP)
    res_w: int
    res_h: int
    fx: float  # pixels
    fy: float
    cx: float
    cy: float
    k: tuple[float, float, float]  # radial distortion k1 k2 k3
    p: tuple[float, float]  # tangential distortion p1 p2
    R: tuple  # 3x3 world(z-up, metres)-to-camera rotation, row-major nested tuples
    t: tuple  # (3,) metres; X_cam = R @ X_world + t

    def intrinsics_vector(self) -> np.ndarray:
        """(11,) float64 in the order of ``schemas.store.INTRINSICS_FIELDS``."""
        return np.array([self.fx, self.fy, self.cx, self.cy, *self.k, *self.p, self.res_w, self.res_h],
                        dtype=np.float64)

    def extrinsics_matrix(self) -> np.ndarray:
        """(3, 4) float64 world-to-camera ``[R | t]``, t in metres."""
        return np.concatenate([np.asarray(self.R, dtype=np.float64),
                               np.asarray(self.t, dtype=np.float64)[:, None]], axis=1)

    def centre(self) -> np.ndarray:
        """(3,) camera centre in world metres: ``C = -R^T t``."""
        R = np.asarray(self.R, dtype=np.float64)
        return -R.T @ np.asarray(self.t, dtype=np.float64)

    def optical_axis(self) -> np.ndarray:
        """(3,) unit viewing direction (camera +z) in world coordinates: the third row of R."""
        axis = np.asarray(self.R, dtype=np.float64)[2]
        return axis / np.linalg.norm(axis)


def _tuple3x3(m: np.ndarray) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(m, dtype=np.float64))


def _tuple3(v: np.ndarray) -> tuple:
    return tuple(float(x) for x in np.asarray(v, dtype=np.float64).reshape(3))


def quaternion_to_matrix(q) -> np.ndarray:
    """(3, 3) rotation of the unit quaternion ``q = (w, x, y, z)``: ``R @ v == qrot(q, v)``."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(np.asarray(q, dtype=np.float64))
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


# ---------------------------------------------------------------------------------------------
# Human3.6M (VideoPose3D's table). World z-up, floor at z = 0, centres in millimetres.

H36M_SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")

# id, (fx, fy), (cx, cy), (k1, k2, k3), (p1, p2), res_w, res_h
_H36M_INTRINSICS = (
    ("54138969", (1145.0494384765625, 1143.7811279296875), (512.54150390625, 515.4514770507812),
     (-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043),
     (-0.0009756988729350269, -0.00142447161488235), 1000, 1002),
    ("55011271", (1149.6756591796875, 1147.5916748046875), (508.8486328125, 508.0649108886719),
     (-0.1942136287689209, 0.2404085397720337, 0.006819975562393665),
     (-0.0016190266469493508, -0.0027408944442868233), 1000, 1000),
    ("58860488", (1149.1407470703125, 1148.7989501953125), (519.8158569335938, 501.40264892578125),
     (-0.2083381861448288, 0.25548800826072693, -0.0024604974314570427),
     (0.0014843869721516967, -0.0007599993259645998), 1000, 1000),
    ("60457274", (1145.5113525390625, 1144.77392578125), (514.9682006835938, 501.88201904296875),
     (-0.198384091258049, 0.21832367777824402, -0.008947807364165783),
     (-0.0005872055771760643, -0.0018133620033040643), 1000, 1002),
)

# subject -> per camera (table order): (orientation quaternion w x y z, camera centre mm)
_H36M_EXTRINSICS = {
    "S1": (
        ((0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
         (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
        ((0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
         (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
        ((0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
         (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
        ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
         (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    ),
    "S5": (
        ((0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332),
         (2097.3916015625, 4880.94482421875, 1605.732421875)),
        ((0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915),
         (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
        ((0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576),
         (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
        ((0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092),
         (-1637.1737060546875, -3867.3173828125, 1547.033203125)),
    ),
    "S6": (
        ((0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938),
         (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
        ((0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428),
         (1969.803955078125, -5128.73876953125, 1632.77880859375)),
        ((0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334),
         (-1769.596435546875, 5185.361328125, 1476.993408203125)),
        ((0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802),
         (-1721.668701171875, -3884.13134765625, 1540.4879150390625)),
    ),
    "S7": (
        ((0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778),
         (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
        ((0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508),
         (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
        ((0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278),
         (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
        ((0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523),
         (-1734.7105712890625, -3832.42138671875, 1548.5830078125)),
    ),
    "S8": (
        ((0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773),
         (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
        ((0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615),
         (2219.965576171875, -5148.453125, 1613.0440673828125)),
        ((0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755),
         (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
        ((0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708),
         (-1476.913330078125, -3896.7412109375, 1547.97216796875)),
    ),
    "S9": (
        ((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
         (2044.45849609375, 4935.1171875, 1481.2275390625)),
        ((0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801),
         (1990.959716796875, -5123.810546875, 1568.8048095703125)),
        ((0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915),
         (-1670.9921875, 5211.98583984375, 1528.387939453125)),
        ((0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822),
         (-1696.04345703125, -3827.099853515625, 1591.4127197265625)),
    ),
    "S11": (
        ((0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467),
         (2098.440185546875, 4926.5546875, 1500.278564453125)),
        ((0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085),
         (2083.182373046875, -4912.1728515625, 1561.07861328125)),
        ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
         (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
        ((0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809),
         (-1590.738037109375, -3854.1689453125, 1578.017578125)),
    ),
}


def h36m_camera(subject: str, index: int) -> Camera:
    """Camera ``index`` (0..3, table order of ``H36M_CAMERA_IDS``) with ``subject``'s extrinsics."""
    if subject not in _H36M_EXTRINSICS:
        raise KeyError(f"unknown Human3.6M subject {subject!r}; expected one of {H36M_SUBJECTS}")
    if not 0 <= index < len(H36M_CAMERA_IDS):
        raise IndexError(f"Human3.6M camera index {index} out of range 0..{len(H36M_CAMERA_IDS) - 1}")
    cam_id, (fx, fy), (cx, cy), k, p, res_w, res_h = _H36M_INTRINSICS[index]
    q, centre_mm = _H36M_EXTRINSICS[subject][index]
    R = quaternion_to_matrix(q).T  # the quaternion rotates camera to world
    t = -R @ (np.asarray(centre_mm, dtype=np.float64) / 1000.0)
    return Camera(rig="h36m", id=cam_id, subject=subject, res_w=res_w, res_h=res_h,
                  fx=fx, fy=fy, cx=cx, cy=cy, k=k, p=p, R=_tuple3x3(R), t=_tuple3(t))


def h36m_rig(subject: str) -> list[Camera]:
    """The four cameras of one subject's sessions, in ``H36M_CAMERA_IDS`` order."""
    return [h36m_camera(subject, i) for i in range(len(H36M_CAMERA_IDS))]


# ---------------------------------------------------------------------------------------------
# MPI-INF-3DHP training cameras (camera.calibration values). World y-up, millimetres, no distortion.

MPI_INF_3DHP_RES = (2048, 2048)
# X_zup = Y_UP_TO_Z_UP @ X_yup: (x, y, z) -> (x, -z, y), a proper rotation (+90 degrees about x).
Y_UP_TO_Z_UP = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))

# id, fx, fy, cx, cy, rows 0-2 of the world(y-up, mm)-to-camera 4x4 (row 3 is 0 0 0 1)
_MPI_INF_3DHP_CAMERAS = (
    (0, 1497.693, 1497.103, 1024.704, 1051.394,
     ((0.9650164, 0.00488022, 0.262144, -562.8666),
      (-0.004488356, -0.9993728, 0.0351275, 1398.138),
      (0.262151, -0.03507521, -0.9643893, 3852.623))),
    (1, 1495.217, 1495.52, 1030.519, 1052.626,
     ((0.6050639, -0.02184232, 0.7958773, -1429.856),
      (-0.22647, -0.9630526, 0.1457429, 738.1779),
      (0.7632883, -0.2684261, -0.587655, 4897.966))),
    (2, 1495.587, 1497.828, 983.8873, 987.5902,
     ((-0.3608179, -0.009492658, 0.932588, 57.25702),
      (-0.0585942, -0.9977421, -0.03282591, 1307.287),
      (0.9307939, -0.06648842, 0.359447, 2799.822))),
    (3, 1495.886, 1496.033, 1029.06, 1041.409,
     ((-0.0721105, -0.04817664, 0.9962325, -284.8168),
      (-0.4393254, -0.8951841, -0.07508985, 807.9184),
      (0.895429, -0.443085, 0.04338695, 3177.16))),
    (4, 1490.952, 1491.108, 987.6075, 1019.069,
     ((0.3737275, 0.09688602, 0.9224646, -1563.911),
      (-0.009716132, -0.9940662, 0.1083427, 801.9608),
      (0.9274878, -0.04945343, -0.3705685, 3517.316))),
    (5, 1500.414, 1499.971, 1012.331, 998.5009,
     ((-0.3521056, 0.01328985, -0.9358659, 358.4134),
      (-0.04961938, -0.9987582, 0.004485628, 994.5658),
      (-0.9346441, 0.0480165, 0.3523278, 3439.832))),
    (6, 1498.471, 1498.8, 999.7319, 1010.251,
     ((-0.9150326, -0.04843184, 0.4004618, 569.4388),
      (-0.1804886, -0.8386868, -0.5138369, 528.871),
      (0.3607481, -0.5424563, 0.7586845, 3687.369))),
    (7, 1498.831, 1499.674, 987.2716, 976.8773,
     ((-0.9995936, 0.02847456, 0.001368653, 1378.866),
      (-0.02843213, -0.9992908, 0.0246889, 1270.781),
      (0.002070688, 0.02463995, 0.9996943, 2631.567))),
    (8, 1500.172, 1500.837, 1017.387, 1043.032,
     ((0.000575281, 0.06160985, -0.9981001, 221.3543),
      (0.2082146, -0.9762325, -0.06013997, 659.87),
      (-0.978083, -0.2077844, -0.01338968, 3644.688))),
    (9, 1501.554, 1501.9, 1010.423, 1037.096,
     ((0.04176839, 0.00780962, -0.9990969, 388.6217),
      (0.5555364, -0.831324, 0.01672664, 137.5452),
      (-0.8304425, -0.5557333, -0.03906159, 4216.635))),
    (10, 1498.423, 1498.585, 1041.614, 997.0433,
     ((-0.8970265, 0.1361548, -0.4204822, 1167.962),
      (0.09417118, -0.8706428, -0.4828178, 617.6362),
      (-0.4318278, -0.4726976, 0.7681679, 4472.351))),
    (11, 1495.779, 1493.703, 1009.802, 999.9984,
     ((0.9170455, 0.1972746, -0.3465695, 134.8272),
      (0.1720879, 0.5882171, 0.7901813, 251.5094),
      (0.3597408, -0.7842726, 0.5054733, 4570.244))),
    (12, 1501.326, 1501.491, 1000.56, 1014.975,
     ((-0.7926738, 0.1323657, 0.5951031, 412.4695),
      (-0.396246, 0.6299778, -0.66792, 532.7588),
      (-0.4633114, -0.7652499, -0.4469175, 4887.095))),
    (13, 1496.961, 1497.378, 1005.702, 1004.214,
     ((-0.8701088, -0.09522671, -0.4835728, 867.1278),
      (0.4120245, 0.3978655, -0.8197188, 827.4572),
      (0.270456, -0.9124883, -0.3069505, 3985.159))),
)


def camera_from_y_up_mm(rig: str, id: str, res_w: int, res_h: int, fx: float, fy: float, cx: float,
                        cy: float, extrinsic_y_up_mm, k=(0.0, 0.0, 0.0), p=(0.0, 0.0),
                        subject: str = "") -> Camera:
    """Camera from a world(y-up, mm)-to-camera ``[R_y | t_mm]`` ((3, 4) or (4, 4)) matrix.

    ``X_cam = R_y @ X_yup + t = (R_y @ A.T) @ X_zup + t`` with ``A = Y_UP_TO_Z_UP``.
    """
    e = np.asarray(extrinsic_y_up_mm, dtype=np.float64)[:3, :4]
    R = e[:, :3] @ np.asarray(Y_UP_TO_Z_UP).T
    t = e[:, 3] / 1000.0
    return Camera(rig=rig, id=str(id), subject=subject, res_w=int(res_w), res_h=int(res_h),
                  fx=float(fx), fy=float(fy), cx=float(cx), cy=float(cy),
                  k=tuple(float(v) for v in k), p=tuple(float(v) for v in p),
                  R=_tuple3x3(R), t=_tuple3(t))


def mpi_inf_3dhp_camera(index: int) -> Camera:
    """Training camera ``index`` (0..13) in the internal z-up metres convention."""
    if not 0 <= index < len(_MPI_INF_3DHP_CAMERAS):
        raise IndexError(f"MPI-INF-3DHP camera index {index} out of range 0..{len(_MPI_INF_3DHP_CAMERAS) - 1}")
    cam_id, fx, fy, cx, cy, rows = _MPI_INF_3DHP_CAMERAS[index]
    return camera_from_y_up_mm("3dhp", str(cam_id), *MPI_INF_3DHP_RES, fx, fy, cx, cy, rows)


def mpi_inf_3dhp_rig(indices=None) -> list[Camera]:
    """The training cameras ``indices`` (default: all 14), in the given order."""
    if indices is None:
        indices = range(len(_MPI_INF_3DHP_CAMERAS))
    return [mpi_inf_3dhp_camera(int(i)) for i in indices]


def all_rig_cameras(rig: str) -> list[Camera]:
    """Every camera of ``rig``: the 4 of each of the 7 H36M subjects (28) for "h36m", the 14 for "3dhp"."""
    if rig == "h36m":
        return [c for s in H36M_SUBJECTS for c in h36m_rig(s)]
    if rig == "3dhp":
        return mpi_inf_3dhp_rig()
    raise ValueError(f"unknown rig {rig!r}; expected one of {RIGS}")


def capture_volume_centre(cameras: list[Camera]) -> np.ndarray:
    """(3,) floor point (z = 0) below the least-squares convergence point of the optical axes.

    Minimises ``sum_i |(I - d_i d_i^T)(P - C_i)|^2`` over P (C_i centres, d_i unit axes).
    """
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for cam in cameras:
        d = cam.optical_axis()
        M = np.eye(3) - np.outer(d, d)
        A += M
        b += M @ cam.centre()
    P = np.linalg.lstsq(A, b, rcond=None)[0]
    return np.array([P[0], P[1], 0.0])


# =============================================================================================
# The camera model (numpy, float64)

# ---------------------------------------------------------------------------------------------
# parameter plumbing


def _intrinsics(cam) -> np.ndarray:
    """(..., 11) float64 from a Camera or an intrinsics array."""
    k = cam.intrinsics_vector() if isinstance(cam, Camera) else np.asarray(cam, dtype=np.float64)
    if k.shape[-1:] != (11,):
        raise ValueError(f"intrinsics must have a trailing axis of 11, got shape {k.shape}")
    return k


def _extrinsics(cam) -> np.ndarray:
    """(..., 3, 4) float64 from a Camera or an extrinsics array."""
    e = cam.extrinsics_matrix() if isinstance(cam, Camera) else np.asarray(cam, dtype=np.float64)
    if e.shape[-2:] != (3, 4):
        raise ValueError(f"extrinsics must have trailing axes (3, 4), got shape {e.shape}")
    return e


def _per_point(v: np.ndarray, point_ndim: int) -> np.ndarray:
    """Reshape a per-camera value (B...) so it broadcasts over points (B..., N..., C) -> (B..., 1..., 1)."""
    v = np.asarray(v, dtype=np.float64)
    return v.reshape(v.shape + (1,) * (point_ndim - v.ndim))


def cameras_to_arrays(cams) -> tuple[np.ndarray, np.ndarray]:
    """Stack Cameras into ``intrinsics (B, 11)`` and ``extrinsics (B, 3, 4)`` float64 arrays."""
    return (np.stack([c.intrinsics_vector() for c in cams]), np.stack([c.extrinsics_matrix() for c in cams]))


# ---------------------------------------------------------------------------------------------
# rigid transforms


def world_to_camera(X, cam) -> np.ndarray:
    """``X (B..., N..., 3)`` world metres -> camera frame ``(B..., N..., 3)`` (float64)."""
    E = _extrinsics(cam)
    X = np.asarray(X, dtype=np.float64)
    batch = E.shape[:-2]
    Xf = X.reshape(batch + (-1, 3))
    out = Xf @ np.swapaxes(E[..., :3], -1, -2) + E[..., None, :, 3]  # matmul: einsum is ~10x slower
    return out.reshape(X.shape)


def camera_to_world(Xc, cam) -> np.ndarray:
    """Inverse of ``world_to_camera``: ``X = R^-1 (X_cam - t)``, shapes as there.

    ``R^-1`` rather than ``R^T``: the published 3DHP rotations are orthonormal only to ~1e-7, and the
    exact inverse keeps world -> camera -> world an identity.
    """
    E = _extrinsics(cam)
    Xc = np.asarray(Xc, dtype=np.float64)
    batch = E.shape[:-2]
    Xf = Xc.reshape(batch + (-1, 3)) - E[..., None, :, 3]
    out = Xf @ np.swapaxes(np.linalg.inv(E[..., :3]), -1, -2)
    return out.reshape(Xc.shape)


# ---------------------------------------------------------------------------------------------
# projection


def _distort(x: np.ndarray, k1, k2, k3, p1, p2) -> np.ndarray:
    """Normalised image-plane coords (..., 2) -> distorted ones, the model in the module doc."""
    r2 = x[..., 0] ** 2 + x[..., 1] ** 2
    radial = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    tan = p1 * x[..., 0] + p2 * x[..., 1]
    scale = radial + tan
    return np.stack([x[..., 0] * scale + p1 * r2, x[..., 1] * scale + p2 * r2], axis=-1)


def project(Xc, cam, distort: bool = True) -> np.ndarray:
    """Camera-frame points ``(B..., N..., 3)`` -> pixels ``(B..., N..., 2)`` (float64).

    Points with ``z <= 0`` give meaningless pixels (as in VideoPose3D); ``in_image`` flags them.
    """
    K = _intrinsics(cam)
    Xc = np.asarray(Xc, dtype=np.float64)
    nd = Xc.ndim - 1
    fx, fy, cx, cy, k1, k2, k3, p1, p2 = (_per_point(K[..., i], nd) for i in range(9))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.clip(Xc[..., :2] / Xc[..., 2:3], -1.0, 1.0)
    if distort:
        x = _distort(x, k1, k2, k3, p1, p2)
    return np.stack([fx * x[..., 0] + cx, fy * x[..., 1] + cy], axis=-1)


def undistort_points(px, cam, iters: int = 10) -> np.ndarray:
    """Pixels ``(B..., N..., 2)`` -> undistorted normalised image-plane coords ``(x/z, y/z)`` (float64).

    Inverts ``project``'s distortion by Newton's method from the distorted coordinates (converges in
    a few steps for the H36M lenses across the whole image). The clamp at |x/z| = 1 cannot be undone.
    """
    K = _intrinsics(cam)
    px = np.asarray(px, dtype=np.float64)
    nd = px.ndim - 1
    fx, fy, cx, cy, k1, k2, k3, p1, p2 = (_per_point(K[..., i], nd) for i in range(9))
    d = np.stack([(px[..., 0] - cx) / fx, (px[..., 1] - cy) / fy], axis=-1)
    a, b = d[..., 0].copy(), d[..., 1].copy()
    for _ in range(iters):
        r2 = a * a + b * b
        radial = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        dradial = k1 + 2.0 * k2 * r2 + 3.0 * k3 * r2**2  # d radial / d r2
        s = radial + p1 * a + p2 * b
        g0 = a * s + p1 * r2 - d[..., 0]
        g1 = b * s + p2 * r2 - d[..., 1]
        # Jacobian of (g0, g1) with respect to (a, b)
        j00 = s + a * (2.0 * a * dradial + p1) + 2.0 * p1 * a
        j01 = a * (2.0 * b * dradial + p2) + 2.0 * p1 * b
        j10 = b * (2.0 * a * dradial + p1) + 2.0 * p2 * a
        j11 = s + b * (2.0 * b * dradial + p2) + 2.0 * p2 * b
        det = j00 * j11 - j01 * j10
        a = a - (j11 * g0 - j01 * g1) / det
        b = b - (-j10 * g0 + j00 * g1) / det
    return np.stack([a, b], axis=-1)


# ---------------------------------------------------------------------------------------------
# pixel normalisation and visibility


def normalize_pixels(px, res_w, res_h) -> np.ndarray:
    """Pixels ``(B..., N..., 2)`` -> ``[-1, 1]`` along x keeping the aspect ratio (float64).

    ``res_w``/``res_h`` are scalars or per-camera arrays ``(B...)``.
    """
    px = np.asarray(px, dtype=np.float64)
    w, h = _per_point(res_w, px.ndim - 1), _per_point(res_h, px.ndim - 1)
    return np.stack([px[..., 0] / w * 2.0 - 1.0, px[..., 1] / w * 2.0 - h / w], axis=-1)


def denormalize_pixels(uv, res_w, res_h) -> np.ndarray:
    """Inverse of ``normalize_pixels``: ``(B..., N..., 2)`` normalised -> pixels (float64)."""
    uv = np.asarray(uv, dtype=np.float64)
    w, h = _per_point(res_w, uv.ndim - 1), _per_point(res_h, uv.ndim - 1)
    return np.stack([(uv[..., 0] + 1.0) * w / 2.0, (uv[..., 1] + h / w) * w / 2.0], axis=-1)


def in_image(px, res_w, res_h, Xc) -> np.ndarray:
    """Bool mask ``(B..., N...)``: the pixel lies in ``[0, w) x [0, h)`` and the point is in front (z > 0).

    Points whose ``|x/z|`` or ``|y/z|`` exceeds 1 are also out: the model clamps them, so their pixel
    is not where the point is (for the H36M and 3DHP lenses the image edges lie well inside that cone).
    """
    px = np.asarray(px, dtype=np.float64)
    Xc = np.asarray(Xc, dtype=np.float64)
    w, h = _per_point(res_w, px.ndim - 1), _per_point(res_h, px.ndim - 1)
    z = Xc[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        unclamped = (np.abs(Xc[..., 0]) <= z) & (np.abs(Xc[..., 1]) <= z)
    inside = (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)
    return inside & (z > 0) & unclamped & np.isfinite(px).all(axis=-1)
