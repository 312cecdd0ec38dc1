"""The stand-in body's mesh: elliptic tubes along the SMPL-H 52-joint skeleton, with skinning weights.

1. :func:`rest_joints`: rest joints for a gender (left side and midline from a table, right side
   mirrored, seeded millimetre jitter).
2. One :class:`_Tube` a body part (torso, head, arms, palms, fingers, legs, feet), rings of vertices
   along a polyline of knots; the torso's ring layout is fitted so the body has exactly
   :data:`NUM_VERTICES` (6890) vertices, like SMPL+H.
3. Skinning weights blend up to 4 bones a vertex with a Gaussian falloff along each tube.

SMPL canonical frame: y up, facing +z, the subject's left at +x, metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from schemas.skeletons import GENDERS, SMPLH_52

NUM_VERTICES = 6890
_J = {name: i for i, name in enumerate(SMPLH_52.joints)}

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


def mirror_names(name: str) -> tuple[str, ...]:
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
class Mesh:
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


def build_mesh(J: np.ndarray, extra: dict) -> Mesh:
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
    return Mesh(
        verts=np.asarray(mesh.vertices, dtype=np.float64), faces=np.asarray(mesh.faces, dtype=np.int64),
        weights=np.concatenate([p[5] for p in parts]), centres=np.concatenate([p[2] for p in parts]),
        radial=np.concatenate([p[3] for p in parts]), u=np.concatenate([p[4] for p in parts]),
        group=np.concatenate([[t.group] * len(p[0]) for t, p in zip(tubes, parts)]),
        tube=np.concatenate([[i] * len(p[0]) for i, p in enumerate(parts)]), tubes=tubes, knot_rings=joint_rings)


def vertex_tubes() -> np.ndarray:
    """(V,) name of the tube every vertex belongs to (the layout is the same for every gender and seed)."""
    J, extra = rest_joints("neutral", 0)
    s, rings, head_extra = _fit_torso(J, extra)
    return np.concatenate([np.full(t.segments * (sum(t.rings) + 1) + 2, t.name, dtype=object)
                           for t in _tube_specs(J, extra, s, rings, head_extra)])
