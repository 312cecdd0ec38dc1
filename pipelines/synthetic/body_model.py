"""A procedural SMPL+H body model in the AMASS ``model.npz`` format, plus an H36M-style regressor.

No licensed data: the body is a set of elliptic tubes (trimesh meshes) laid along the SMPL-H 52-joint
skeleton in the SMPL canonical frame (y up, facing +z, the subject's left at +x, metres). It has
exactly 6890 vertices like SMPL+H, so everything written for the real model (smplx, SPIN-style
17 x 6890 regressors, the AMASS conversion layout) runs unchanged on it.

What each array holds:
It is as dense as the real SMPL+H where the mesh-free regression's cost depends on it:
- ``weights`` (6890, 52): each tube vertex blends the bones along its chain with Gaussian falloff, up
  to 4 bones a vertex like SMPL+H (about 3/4 of the vertices on 3 or 4 bones, rows sum to 1).
- ``shapedirs`` (6890, 3, 16): bone-length, girth and proportion changes (betas move the joints too;
  betas 10..15 include length changes so truncating to 10 betas is visible), plus a smooth sub-mm
  field so that every entry is non-zero, as in SMPL.
- ``posedirs`` (6890, 3, 459): correctives linear in (R_j - I), up to ~1 cm near each joint and
  ~1e-5 m far from it: every entry non-zero, as in SMPL+H.
- ``J_regressor`` (52, 6890): the mean of the vertex ring centred on each joint, so regressing the
  template gives the rest joints exactly.
- DMPL ``eigvec`` (6890, 3, 8): millimetre-scale smooth radial soft-tissue fields on torso and limbs.
- ``J_regressor_h36m.npy`` (17, 6890): 4-9 vertices a joint like SPIN's, written in SPIN's row order
  (left leg in rows 1-3), so readers go through the same side resolution as with the real file.

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.optimize
import trimesh

from schemas.skeletons import H36M_17, NUM_DMPLS, SMPLH_52

NUM_VERTICES = 6890
NUM_BETAS = 16
GENDERS = ("male", "female", "neutral")
_J = {name: i for i, name in enumerate(SMPLH_52.joints)}
_PARENTS = np.asarray(SMPLH_52.parents, dtype=np.int64)

# Rest joints of the left side and the midline (male, metres, SMPL canonical frame); right = mirror.
_BODY_LEFT = {
    "pelvis": (0.0, -0.223, 0.028),
    "left_hip": (0.070, -0.314, 0.024),
    "spine1": (0.0, -0.109, 0.002),
    "left_knee": (0.104, -0.676, 0.017),
    "spine2": (0.0, 0.020, 0.003),
    "left_ankle": (0.089, -1.079, -0.027),
    "spine3": (0.0, 0.074, 0.028),
    "left_foot": (0.115, -1.138, 0.093),
    "neck": (0.0, 0.287, -0.015),
    "left_collar": (0.082, 0.195, -0.006),
    "head": (0.0, 0.353, 0.037),
    "left_shoulder": (0.172, 0.226, -0.015),
    "left_elbow": (0.432, 0.213, -0.042),
    "left_wrist": (0.686, 0.222, -0.044),
}
# Finger chains relative to the left wrist: first joint offset, then the two bone vectors and the tip.
_FINGER_LEFT = {
    "index": ((0.095, -0.006, 0.026), (0.034, -0.003, 0.0), (0.025, -0.003, 0.0), (0.022, -0.003, 0.0)),
    "middle": ((0.098, -0.003, 0.004), (0.037, -0.003, 0.0), (0.027, -0.003, 0.0), (0.024, -0.003, 0.0)),
    "pinky": ((0.080, -0.010, -0.040), (0.025, -0.003, -0.004), (0.018, -0.002, -0.002), (0.017, -0.002, 0.0)),
    "ring": ((0.090, -0.008, -0.019), (0.033, -0.003, -0.002), (0.025, -0.003, 0.0), (0.022, -0.003, 0.0)),
    "thumb": ((0.028, -0.016, 0.030), (0.026, -0.009, 0.022), (0.024, -0.006, 0.014), (0.020, -0.004, 0.010)),
}


def _sides(name: str) -> tuple[str, ...]:
    return (name,) if not name.startswith("left_") else (name, "right_" + name[5:])


def rest_joints(gender: str, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rest joints ``(52, 3)`` for one gender, and the extra points (finger tips) by name."""
    if gender not in GENDERS:
        raise ValueError(f"unknown gender {gender!r}")
    pts: dict[str, np.ndarray] = {}
    for name, p in _BODY_LEFT.items():
        pts[name] = np.asarray(p, dtype=np.float64)
    for finger, (first, *bones) in _FINGER_LEFT.items():
        p = pts["left_wrist"] + first
        pts[f"left_{finger}1"] = p
        for k, b in enumerate(bones):
            p = p + b
            pts[f"left_{finger}{k + 2}" if k < 2 else f"left_{finger}_tip"] = p
    # Gender proportions: female smaller, narrower shoulders, wider hips; neutral in between.
    f = {"male": 0.0, "female": 1.0, "neutral": 0.5}[gender]
    scale = 1.0 - 0.06 * f
    for name in list(pts):
        p = pts[name].copy()
        if name.startswith("left_") and any(k in name for k in ("collar", "shoulder", "elbow", "wrist")) \
                or any(k in name for k in ("index", "middle", "pinky", "ring", "thumb")):
            p[0] -= 0.012 * f  # narrower shoulders move the whole arm in
        if name.startswith("left_") and any(k in name for k in ("hip", "knee", "ankle", "foot")):
            p[0] += 0.008 * f
        pts[name] = p * scale
    # Seeded jitter of a few millimetres, symmetric so that the body stays mirror-symmetric.
    rng = np.random.default_rng([seed, GENDERS.index(gender)])
    for name in sorted(pts):
        if name == "pelvis":
            continue
        pts[name] = pts[name] + rng.normal(0.0, 0.002, 3) * (name.startswith("left_") or name in _BODY_LEFT)
    for name in list(pts):
        if name.startswith("left_"):
            p = pts[name].copy()
            p[0] = -p[0]
            pts["right_" + name[5:]] = p
        elif name in _BODY_LEFT:
            pts[name][0] = 0.0
    joints = np.stack([pts[n] for n in SMPLH_52.joints])
    extra = {n: p for n, p in pts.items() if n not in _J}
    return joints, extra


@dataclass
class _Tube:
    """An elliptic tube along a polyline of knots; ``bones[k]`` skins segment k."""

    name: str
    group: str  # torso | head | arm | palm | finger | leg | foot
    knots: np.ndarray  # (m+1, 3)
    knot_joints: tuple  # joint index at each knot whose J_regressor ring is here, or -1
    bones: tuple  # (m,) joint indices
    radii: np.ndarray  # (m+1, 2) semi-axes along e1, e2
    ref: np.ndarray  # (3,) reference for e1
    segments: int  # vertices per ring
    rings: tuple  # (m,) rings per segment
    pre: int = -1  # bone blended in at u=0
    post: int = -1  # bone blended in at u=m


def _tube_specs(J: np.ndarray, extra: dict, torso_segments: int, torso_rings: tuple, head_extra: int) -> list[_Tube]:
    X, Y, Z = np.eye(3)
    tubes = []
    pel, sp1, sp2, sp3, neck, head = (J[_J[n]] for n in ("pelvis", "spine1", "spine2", "spine3", "neck", "head"))
    tubes.append(_Tube(
        "torso", "torso", np.stack([pel - (0, 0.09, 0.01), pel, sp1, sp2, sp3, neck]),
        (-1, _J["pelvis"], _J["spine1"], _J["spine2"], _J["spine3"], _J["neck"]),
        (_J["pelvis"], _J["pelvis"], _J["spine1"], _J["spine2"], _J["spine3"]),
        np.array([(0.125, 0.085), (0.160, 0.105), (0.150, 0.100), (0.155, 0.110), (0.170, 0.110), (0.060, 0.055)]),
        X, torso_segments, torso_rings, post=_J["neck"]))
    tubes.append(_Tube(
        "head", "head", np.stack([neck, head, head + (0, 0.09, 0.01), head + (0, 0.165, 0.0)]),
        (-1, _J["head"], -1, -1), (_J["neck"], _J["head"], _J["head"]),
        np.array([(0.055, 0.055), (0.075, 0.085), (0.085, 0.095), (0.055, 0.060)]),
        X, 28, (5, 5 + head_extra, 4), pre=_J["spine3"]))
    for side, sx in (("left", 1.0), ("right", -1.0)):
        j = lambda n: _J[f"{side}_{n}"]  # noqa: E731
        tubes.append(_Tube(
            f"{side}_arm", "arm", J[[j("collar"), j("shoulder"), j("elbow"), j("wrist")]],
            (j("collar"), j("shoulder"), j("elbow"), j("wrist")), (j("collar"), j("shoulder"), j("elbow")),
            np.array([(0.060, 0.060), (0.055, 0.052), (0.040, 0.038), (0.028, 0.033)]),
            Y, 22, (3, 8, 8), pre=_J["spine3"], post=j("wrist")))
        tubes.append(_Tube(
            f"{side}_palm", "palm", np.stack([J[j("wrist")], J[j("middle1")] - (sx * 0.012, 0, 0)]),
            (-1, -1), (j("wrist"),), np.array([(0.016, 0.034), (0.014, 0.045)]),
            Y, 18, (5,), pre=j("elbow")))
        for finger in ("index", "middle", "pinky", "ring", "thumb"):
            ids = [j(f"{finger}{k}") for k in (1, 2, 3)]
            r0 = 0.011 if finger != "thumb" else 0.012
            tubes.append(_Tube(
                f"{side}_{finger}", "finger", np.stack([J[i] for i in ids] + [extra[f"{side}_{finger}_tip"]]),
                tuple(ids) + (-1,), tuple(ids), np.array([(r0, r0), (r0 * 0.9, r0 * 0.9), (r0 * 0.8, r0 * 0.8),
                                                          (r0 * 0.7, r0 * 0.7)]),
                Y, 10, (3, 3, 3), pre=j("wrist")))
        tubes.append(_Tube(
            f"{side}_leg", "leg", J[[j("hip"), j("knee"), j("ankle")]], (j("hip"), j("knee"), j("ankle")),
            (j("hip"), j("knee")), np.array([(0.085, 0.085), (0.055, 0.055), (0.040, 0.040)]),
            X, 26, (12, 12), pre=_J["pelvis"], post=j("ankle")))
        ank, foot = J[j("ankle")], J[j("foot")]
        tubes.append(_Tube(
            f"{side}_foot", "foot", np.stack([ank + (0, -0.03, -0.05), foot, foot + (0, -0.01, 0.085)]),
            (-1, j("foot"), -1), (j("ankle"), j("foot")), np.array([(0.038, 0.040), (0.045, 0.025), (0.038, 0.018)]),
            X, 18, (4, 4), pre=j("knee")))
    return tubes


def _build_tube(tube: _Tube, v0: int):
    """Vertices, faces, and per-vertex (u, centre, radial, joint weights) of one tube."""
    K = tube.knots
    m = len(K) - 1
    seg_dir = [(K[k + 1] - K[k]) / np.linalg.norm(K[k + 1] - K[k]) for k in range(m)]
    knot_dir = [seg_dir[0]] + [(seg_dir[k - 1] + seg_dir[k]) / np.linalg.norm(seg_dir[k - 1] + seg_dir[k])
                               for k in range(1, m)] + [seg_dir[-1]]
    us = np.concatenate([k + np.arange(n) / n for k, n in enumerate(tube.rings)] + [[float(m)]])
    theta = 2.0 * np.pi * np.arange(tube.segments) / tube.segments
    verts, centres, radial, u_all, knot_rings = [], [], [], [], {}
    for r, u in enumerate(us):
        k = min(int(np.floor(u)), m - 1)
        f = u - k
        c = (1 - f) * K[k] + f * K[k + 1]
        d = (1 - f) * knot_dir[k] + f * knot_dir[k + 1]
        d /= np.linalg.norm(d)
        e1 = tube.ref - (tube.ref @ d) * d
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(d, e1)
        a, b = (1 - f) * tube.radii[k] + f * tube.radii[k + 1]
        off = a * np.cos(theta)[:, None] * e1 + b * np.sin(theta)[:, None] * e2
        verts.append(c + off)
        centres.append(np.repeat(c[None], len(theta), 0))
        radial.append(off)
        u_all.append(np.full(len(theta), u))
        if abs(u - round(u)) < 1e-12:
            knot_rings[int(round(u))] = v0 + r * tube.segments + np.arange(tube.segments)
    cap0 = K[0] - seg_dir[0] * 0.6 * tube.radii[0].min()
    cap1 = K[-1] + seg_dir[-1] * 0.6 * tube.radii[-1].min()
    verts = np.concatenate(verts + [cap0[None], cap1[None]])
    centres = np.concatenate(centres + [K[:1], K[-1:]])
    radial = np.concatenate(radial + [(cap0 - K[0])[None], (cap1 - K[-1])[None]])
    u_all = np.concatenate(u_all + [[0.0], [float(m)]])
    # Faces: quads between consecutive rings, fans at the caps.
    R, S = len(us), tube.segments
    i = np.arange(S)
    faces = []
    for r in range(R - 1):
        a, b = r * S + i, r * S + (i + 1) % S
        c, d = (r + 1) * S + i, (r + 1) * S + (i + 1) % S
        faces += [np.stack([a, c, d], 1), np.stack([a, d, b], 1)]
    p0, p1 = R * S, R * S + 1
    faces += [np.stack([np.full(S, p0), (i + 1) % S, i], 1),
              np.stack([np.full(S, p1), (R - 1) * S + i, (R - 1) * S + (i + 1) % S], 1)]
    faces = np.concatenate(faces) + v0
    return verts, faces, centres, radial, u_all, _tube_weights(tube, u_all), knot_rings


SKIN_SIGMA = 0.45  # Gaussian width of a bone's influence, in segments along the tube
MAX_BONES = 4  # as SMPL+H: up to 4 bones a vertex
MIN_WEIGHT = 1e-3


def _tube_weights(tube: _Tube, u: np.ndarray) -> np.ndarray:
    """(n, 52) skinning weights as dense as SMPL+H's: every bone of the chain (with the bones before
    and after the tube) pulls with a Gaussian of the distance to its segment's centre along ``u``; the
    4 strongest above MIN_WEIGHT are kept and renormalised, so most vertices blend 3-4 bones."""
    m = len(tube.knots) - 1
    chain = [(tube.pre, -0.5)] + [(b, k + 0.5) for k, b in enumerate(tube.bones)] + [(tube.post, m + 0.5)]
    Wt = np.zeros((len(u), 52))
    for bone, centre in chain:
        if bone >= 0:
            Wt[:, bone] += np.exp(-0.5 * ((u - centre) / SKIN_SIGMA) ** 2)
    Wt /= Wt.sum(1, keepdims=True)
    cut = np.sort(Wt, axis=1)[:, -MAX_BONES][:, None]
    Wt[(Wt < cut) | (Wt < MIN_WEIGHT)] = 0.0
    return Wt / Wt.sum(1, keepdims=True)


def _fit_torso(J, extra) -> tuple[int, tuple, int]:
    """Pick torso ring layout so that the whole body has exactly NUM_VERTICES vertices."""
    seg_len = np.linalg.norm(np.diff(_tube_specs(J, extra, 32, (1,) * 5, 0)[0].knots, axis=0), axis=1)
    for head_extra in range(0, 12):
        others = sum(t.segments * (sum(t.rings) + 1) + 2 for t in _tube_specs(J, extra, 32, (1,) * 5, head_extra)[1:])
        rest = NUM_VERTICES - others - 2
        for s in range(44, 27, -1):
            if rest % s == 0 and rest // s >= 20:
                n = rest // s - 1
                raw = seg_len / seg_len.sum() * n
                rings = np.maximum(np.floor(raw).astype(int), 1)
                for idx in np.argsort(-(raw - np.floor(raw))):
                    if rings.sum() >= n:
                        break
                    rings[idx] += 1
                while rings.sum() > n:
                    rings[np.argmax(rings)] -= 1
                return s, tuple(int(r) for r in rings), head_extra
    raise RuntimeError("cannot fit the tube layout to 6890 vertices")


@dataclass
class _Mesh:
    verts: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    centres: np.ndarray
    radial: np.ndarray
    u: np.ndarray
    group: np.ndarray  # (V,) object: tube group
    tube: np.ndarray  # (V,) int: tube index
    tubes: list
    knot_rings: dict  # joint index -> vertex indices of its ring


def _build_mesh(J: np.ndarray, extra: dict) -> _Mesh:
    s, rings, head_extra = _fit_torso(J, extra)
    tubes = _tube_specs(J, extra, s, rings, head_extra)
    parts, offsets, v0, joint_rings = [], [], 0, {}
    for ti, t in enumerate(tubes):
        out = _build_tube(t, v0)
        parts.append(out)
        offsets.append(v0)
        for k, ring in out[6].items():
            if t.knot_joints[k] >= 0:
                joint_rings[t.knot_joints[k]] = ring
        v0 += len(out[0])
    # One trimesh per tube; concatenation keeps vertex order, so ring indices stay valid.
    mesh = trimesh.util.concatenate([trimesh.Trimesh(p[0], p[1] - off, process=False)
                                     for p, off in zip(parts, offsets)])
    assert len(mesh.vertices) == NUM_VERTICES, len(mesh.vertices)
    assert sorted(joint_rings) == list(range(52))
    return _Mesh(
        verts=np.asarray(mesh.vertices, dtype=np.float64), faces=np.asarray(mesh.faces, dtype=np.int64),
        weights=np.concatenate([p[5] for p in parts]), centres=np.concatenate([p[2] for p in parts]),
        radial=np.concatenate([p[3] for p in parts]), u=np.concatenate([p[4] for p in parts]),
        group=np.concatenate([[t.group] * len(p[0]) for t, p in zip(tubes, parts)]),
        tube=np.concatenate([[i] * len(p[0]) for i, p in enumerate(parts)]), tubes=tubes, knot_rings=joint_rings)


def _subtree(root: int) -> np.ndarray:
    inside = np.zeros(52, dtype=bool)
    inside[root] = True
    for j in range(1, 52):
        if inside[_PARENTS[j]]:
            inside[j] = True
    return inside


def _move_subtree(mesh: _Mesh, J: np.ndarray, parent: str, child: str, delta) -> np.ndarray:
    """(V, 3) field moving the subtree of ``child`` by ``delta``, ramping along the parent bone."""
    p, c = _J[parent], _J[child]
    axis = J[c] - J[p]
    t = np.clip((mesh.verts - J[p]) @ axis / (axis @ axis), 0.0, 1.0)
    s = mesh.weights[:, _subtree(c)].sum(1) + mesh.weights[:, p] * t
    return s[:, None] * np.asarray(delta, dtype=np.float64)


def _lengthen(mesh, J, parent, child, amount, sides=True) -> np.ndarray:
    out = 0.0
    for pa, ch in zip(_sides(parent), _sides(child)) if sides else [(parent, child)]:
        d = J[_J[ch]] - J[_J[pa]]
        out = out + _move_subtree(mesh, J, pa, ch, amount * d / np.linalg.norm(d))
    return out


def _shape_dirs(mesh: _Mesh, J: np.ndarray) -> np.ndarray:
    """(V, 3, 16) shape directions: proportions, lengths and girths, about one s.d. per unit."""
    g = mesh.group
    limb = np.isin(g, ("torso", "arm", "leg"))
    dirs = [
        0.035 * (mesh.verts - J[_J["pelvis"]]),  # 0 stature
        0.10 * mesh.radial * limb[:, None],  # 1 overall girth
        _lengthen(mesh, J, "left_hip", "left_knee", 0.02) + _lengthen(mesh, J, "left_knee", "left_ankle", 0.02),  # 2
        _lengthen(mesh, J, "pelvis", "spine1", 0.01, False) + _lengthen(mesh, J, "spine1", "spine2", 0.01, False)
        + _lengthen(mesh, J, "spine2", "spine3", 0.01, False),  # 3 torso length
        _lengthen(mesh, J, "left_collar", "left_shoulder", 0.015),  # 4 shoulder width
        sum(_move_subtree(mesh, J, "pelvis", h, (sx * 0.012, 0, 0))
            for h, sx in (("left_hip", 1.0), ("right_hip", -1.0))),  # 5 hip width
        0.10 * mesh.radial * (g == "torso")[:, None] * (mesh.radial[:, 2:3] > 0),  # 6 belly / chest depth
        _lengthen(mesh, J, "left_shoulder", "left_elbow", 0.015) + _lengthen(mesh, J, "left_elbow", "left_wrist", 0.015),
        0.08 * (mesh.verts - J[_J["head"]]) * (g == "head")[:, None],  # 8 head size
        0.10 * (mesh.verts - J[_J["left_wrist"]]) * (np.isin(g, ("palm", "finger")) & (mesh.verts[:, 0] > 0))[:, None]
        + 0.10 * (mesh.verts - J[_J["right_wrist"]]) * (np.isin(g, ("palm", "finger")) & (mesh.verts[:, 0] < 0))[:, None],  # 9 hands
        _lengthen(mesh, J, "spine3", "neck", 0.015, False),  # 10 neck length
        _lengthen(mesh, J, "left_ankle", "left_foot", 0.012),  # 11 foot length
        _lengthen(mesh, J, "left_shoulder", "left_elbow", 0.015) - _lengthen(mesh, J, "left_elbow", "left_wrist", 0.015),
        _lengthen(mesh, J, "left_hip", "left_knee", 0.02) - _lengthen(mesh, J, "left_knee", "left_ankle", 0.02),
        0.12 * mesh.radial * (((g == "leg") & (mesh.u < 1)) | ((g == "arm") & (mesh.u < 2)))[:, None]
        + _lengthen(mesh, J, "left_knee", "left_ankle", 0.008),  # 14 limb girth with a longer shin
        _move_subtree(mesh, J, "spine2", "spine3", (0, 0.008, -0.012)),  # 15 posture
    ]
    S = np.stack(dirs, axis=-1)
    # SMPL's shape space moves every vertex a little in every direction: a smooth dense field of
    # ~0.5 mm per unit beta on top of the parts above (never exactly 0).
    rng = np.random.default_rng(7)
    freq, phase = rng.normal(0.0, 4.0, (S.shape[2], 3, 3)), rng.uniform(0, 2 * np.pi, (S.shape[2], 3))
    for k in range(S.shape[2]):
        S[:, :, k] += 5e-4 * np.sin(mesh.verts @ freq[k] + phase[k]) + 1e-5
    return S


def _pose_dirs(mesh: _Mesh, J: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 459) correctives linear in (R_j - I), j >= 1, dense like SMPL+H's: local bulges and
    displacements of up to ~1 cm near each joint, decaying to ~1e-5 m far from it, never exactly 0."""
    d = np.linalg.norm(mesh.verts[:, None, :] - J[None, 1:, :], axis=2)  # (V, 51)
    amp = 1.5e-3 * np.exp(-((d / 0.15) ** 2)) + 2e-5
    P = rng.standard_normal((NUM_VERTICES, 3, 9 * 51)) * np.repeat(amp, 9, axis=1)[:, None, :]
    mats = rng.normal(0.0, 0.006, (52, 3, 9))  # a small free displacement per joint
    bulge = rng.normal(0.0, 0.08, (52, 9))  # radial bulge, relative to the local radius
    for ti, t in enumerate(mesh.tubes):
        m = len(t.knots) - 1
        sel = np.flatnonzero(mesh.tube == ti)
        for k in range(m + 1):
            j = t.bones[k] if 0 < k < m else (t.bones[0] if (k == 0 and t.pre >= 0) else (t.post if k == m else -1))
            if j <= 0:
                continue
            dist = np.abs(mesh.u[sel] - k)
            gk = np.where(dist < 0.6, np.exp(-(dist / 0.3) ** 2), 0.0)
            near = sel[gk > 0]
            gk = gk[gk > 0]
            block = mats[j][None] + mesh.radial[near][:, :, None] * bulge[j][None, None, :]
            P[near, :, 9 * (j - 1):9 * j] += gk[:, None, None] * block
    P[P == 0.0] = 1e-7
    return P


def _dmpl_dirs(mesh: _Mesh, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 8) soft-tissue fields: smooth radial waves on torso and limbs, a few millimetres."""
    soft = np.isin(mesh.group, ("torso", "leg", "arm"))
    rad = mesh.radial / np.maximum(np.linalg.norm(mesh.radial, axis=1, keepdims=True), 1e-9)
    ang = np.arctan2(mesh.radial[:, 2], mesh.radial[:, 0])
    out = np.zeros((NUM_VERTICES, 3, NUM_DMPLS))
    for k in range(NUM_DMPLS):
        f, n, ph, ps = rng.uniform(0.5, 2.0), rng.integers(0, 3), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
        amp = 0.004 * np.cos(2 * np.pi * f * mesh.u / 2 + ph) * np.cos(n * ang + ps) * soft
        out[:, :, k] = amp[:, None] * rad
    return out


def make_body_model(gender: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of one AMASS-style SMPL+H ``model.npz`` plus ``"eigvec"`` (the DMPL basis).

    Keys: v_template (6890, 3), shapedirs (6890, 3, 16), posedirs (6890, 3, 459), J_regressor (52, 6890),
    weights (6890, 52), kintree_table (2, 52), f (F, 3), hands_components{l,r} (45, 45),
    hands_mean{l,r} (45,), J (52, 3) rest joints, eigvec (6890, 3, 8).
    """
    J, extra = rest_joints(gender, seed)
    mesh = _build_mesh(J, extra)
    rng = np.random.default_rng([seed, 1000 + GENDERS.index(gender)])
    Jreg = np.zeros((52, NUM_VERTICES))
    for j, ring in mesh.knot_rings.items():
        Jreg[j, ring] = 1.0 / len(ring)
    kintree = np.stack([_PARENTS, np.arange(52)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # how the released files spell "no parent"
    hands = {}
    for side in ("l", "r"):
        q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
        hands[f"hands_components{side}"] = q.T
        hands[f"hands_mean{side}"] = rng.normal(0.0, 0.15, 45)
    return {
        "v_template": mesh.verts, "shapedirs": _shape_dirs(mesh, J), "posedirs": _pose_dirs(mesh, J, rng),
        "J_regressor": Jreg, "weights": mesh.weights, "kintree_table": kintree, "f": mesh.faces.astype(np.int32),
        **hands, "J": Jreg @ mesh.verts, "eigvec": _dmpl_dirs(mesh, rng),
    }


# H36M joints as points relative to SMPL-H joints: (smplh joint(s) averaged, offset in metres).
_H36M_ANCHORS = {
    "pelvis": (("pelvis",), (0.0, -0.04, 0.0), ("torso",)),
    "r_hip": (("right_hip",), (-0.02, -0.04, 0.0), ("right_leg",)),
    "r_knee": (("right_knee",), (0.0, 0.0, 0.0), ("right_leg",)),
    "r_ankle": (("right_ankle",), (0.0, 0.0, 0.0), ("right_leg", "right_foot")),
    "l_hip": (("left_hip",), (0.02, -0.04, 0.0), ("left_leg",)),
    "l_knee": (("left_knee",), (0.0, 0.0, 0.0), ("left_leg",)),
    "l_ankle": (("left_ankle",), (0.0, 0.0, 0.0), ("left_leg", "left_foot")),
    "spine": (("spine1", "spine2"), (0.0, 0.0, 0.0), ("torso",)),
    "thorax": (("spine3", "neck", "neck"), (0.0, 0.0, 0.0), ("torso",)),
    "neck_nose": (("head",), (0.0, 0.02, 0.035), ("head",)),
    "head": (("head",), (0.0, 0.12, 0.0), ("head",)),
    "l_shoulder": (("left_shoulder",), (0.0, 0.0, 0.0), ("left_arm",)),
    "l_elbow": (("left_elbow",), (0.0, 0.0, 0.0), ("left_arm",)),
    "l_wrist": (("left_wrist",), (0.0, 0.0, 0.0), ("left_arm", "left_palm")),
    "r_shoulder": (("right_shoulder",), (0.0, 0.0, 0.0), ("right_arm",)),
    "r_elbow": (("right_elbow",), (0.0, 0.0, 0.0), ("right_arm",)),
    "r_wrist": (("right_wrist",), (0.0, 0.0, 0.0), ("right_arm", "right_palm")),
}


def _vertex_parts(model: dict[str, np.ndarray]) -> np.ndarray:
    """(V,) tube name of every vertex, recovered from the layout (same for every gender and seed)."""
    J, extra = rest_joints("neutral", 0)
    s, rings, head_extra = _fit_torso(J, extra)
    names = [np.full(t.segments * (sum(t.rings) + 1) + 2, t.name, dtype=object)
             for t in _tube_specs(J, extra, s, rings, head_extra)]
    out = np.concatenate(names)
    if len(out) != len(model["v_template"]):
        raise ValueError("h36m_regressor needs a model made by make_body_model")
    return out


def _convex_weights(V: np.ndarray, dist: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1, close to Gaussian distance weights, with ``w @ V ~ anchor``."""
    w0 = np.exp(-0.5 * (dist / dist.mean()) ** 2)
    w0 /= w0.sum()
    k, big = len(V), 1e3
    A = np.vstack([V.T * big, np.full((1, k), big), np.eye(k)])
    b = np.concatenate([anchor * big, [big], w0])
    w, _ = scipy.optimize.nnls(A, b)
    return w / w.sum()


def _octant_vertices(points: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Indices of the point nearest to ``anchor`` in each of the 8 octants around it (<= 8 points),
    so that the anchor lies inside their convex hull."""
    rel = points - anchor
    dist = np.linalg.norm(rel, axis=1)
    octant = (rel[:, 0] > 0) * 4 + (rel[:, 1] > 0) * 2 + (rel[:, 2] > 0)
    return np.array([np.flatnonzero(octant == o)[np.argmin(dist[octant == o])]
                     for o in range(8) if np.any(octant == o)])


# SPIN's J_regressor_h36m.npy row order as H36M_17 rows: its rows 1-3 are the LEFT leg, 4-6 the right
# leg; the arms already follow H36M_17. ``spin = h36m[SPIN_ROWS]`` (the swap is its own inverse).
SPIN_ROWS = (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)


def h36m_regressor(model: dict[str, np.ndarray], vertices_per_joint: int = 40) -> np.ndarray:
    """(17, 6890) regressor in H36M_17 row order, as sparse as SPIN's: 4-9 vertices a joint.

    For each joint, the vertices of the body part it sits in that are nearest to its anchor point in
    each of the 8 octants around it (the anchor lies inside their hull) get non-negative weights
    summing to 1, as close as possible to Gaussian distance weights while their weighted mean hits
    the anchor (least squares with heavily weighted mean and sum-to-one rows, under w >= 0).
    ``vertices_per_joint`` is the size of the neighbourhood the octants are searched in.
    """
    mesh = trimesh.Trimesh(model["v_template"], model["f"], process=False)
    J = np.asarray(model["J"])
    parts = _vertex_parts(model)
    R = np.zeros((H36M_17.num_joints, len(mesh.vertices)))
    for n, name in enumerate(H36M_17.joints):
        names, off, pool = _H36M_ANCHORS[name]
        anchor = np.mean([J[_J[s]] for s in names], axis=0) + off
        # Candidates: the body part the joint sits in (so that the anchor lies inside their hull).
        cand = np.flatnonzero(np.isin(parts, pool))
        sub = trimesh.PointCloud(mesh.vertices[cand])
        for k in (vertices_per_joint, 2 * vertices_per_joint, 4 * vertices_per_joint):
            # Widen the neighbourhood until the anchor lies inside its hull (fit within 0.5 mm).
            _, loc = sub.kdtree.query(anchor, k=min(k, len(cand)))
            idx = cand[loc][_octant_vertices(mesh.vertices[cand[loc]], anchor)]
            dist = np.linalg.norm(mesh.vertices[idx] - anchor, axis=1)
            w = _convex_weights(mesh.vertices[idx], dist, anchor)
            if np.linalg.norm(w @ mesh.vertices[idx] - anchor) < 5e-4 and (w > 1e-6).sum() >= 4:
                break
        w[w <= 1e-6] = 0.0
        R[n, idx] = w / w.sum()
    return R


def write_body_model_tree(directory, seed: int = 0) -> dict[str, Path]:
    """Write ``smplh/{g}/model.npz``, ``dmpls/{g}/model.npz`` for g in male/female/neutral and
    ``J_regressor_h36m.npy`` (dense (17, 6890), rows in SPIN's order: left leg in rows 1-3, like the
    real file, so everything that reads it goes through the side resolution). Returns name -> path
    (``smplh_male``, ``dmpl_male``, ..., ``J_regressor_h36m``)."""
    root = Path(directory)
    out: dict[str, Path] = {}
    for gender in GENDERS:
        arrays = make_body_model(gender, seed)
        eig = arrays.pop("eigvec")
        for kind, payload in (("smplh", arrays), ("dmpls", {"eigvec": eig})):
            path = root / kind / gender / "model.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **payload)
            out[f"{'smplh' if kind == 'smplh' else 'dmpl'}_{gender}"] = path
        if gender == "neutral":
            reg = h36m_regressor(arrays)
    out["J_regressor_h36m"] = root / "J_regressor_h36m.npy"
    np.save(out["J_regressor_h36m"], reg[list(SPIN_ROWS)])
    return out
