"""A procedural SMPL-X body model in the released ``model.npz`` format, and an SMPL-X -> SMPL deformation
transfer pickle in the format of SMPL-X's model-transfer data.

No licensed data. The body is the SMPL+H stand-in's (:mod:`pipelines.synthetic.tube_mesh`, same gender,
same seed), with what makes SMPL-X different: a finer head and hands, a jaw and two eyeballs skinned to
SMPL-X's jaw and eye joints, 55 joints in smplx's order, and exactly 10475 vertices. As in the real
models, SMPL-X shares SMPL's surface below the neck: those vertices are the SMPL+H stand-in's own,
while head and hand vertices are new (denser rings). What each array holds:

- ``v_template`` (10475, 3), ``f`` (F, 3), ``J_regressor`` (55, 10475): each joint the mean of a vertex
  ring centred on it, so regressing the template gives the rest joints exactly.
- ``weights`` (10475, 55): the SMPL+H stand-in's skinning (up to 4 bones a vertex) in SMPL-X's joint
  order; the jaw blends with the head, the eyeballs follow their eye joints.
- ``shapedirs`` (10475, 3, 400): 300 shape then 100 expression directions, as the released files. Shape
  0-15 are the SMPL+H stand-in's (stature, girths, lengths...), 16-299 smooth millimetre fields; the
  expressions move the face and jaw by millimetres. Every entry non-zero, as in SMPL-X.
- ``posedirs`` (10475, 3, 486): correctives linear in (R_j - I) for the 54 non-root joints, dense
  (every entry non-zero), the body joints' as in the SMPL+H stand-in, jaw and eyes local.
- ``kintree_table`` (2, 55), ``hands_components{l,r}`` (45, 45), ``hands_mean{l,r}`` (45,) (non-zero, so
  that adding them by mistake shows: AMASS hand poses carry no mean), ``lmk_faces_idx`` (51,),
  ``lmk_bary_coords`` (51, 3), ``dynamic_lmk_faces_idx`` (79, 17), ``dynamic_lmk_bary_coords`` (79, 17, 3),
  ``vt`` (10475, 2), ``ft`` (F, 3). The two big arrays are stored as float32.

The deformation transfer (``smplx2smpl_deftrafo_setup.pkl``) is a pickled ``{"mtx": csc_matrix}`` of shape
(6890, 2 x 10475) like the real one: in its first 10475 columns each SMPL+H stand-in vertex is one
SMPL-X vertex (below the neck: the same point) or the barycentric coordinates of its nearest point on
the SMPL-X head / hand surface; the last 10475 columns hold the offsets along the triangle normals.
It is computed once on the neutral bodies and holds for every gender (the meshes share their layout).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.spatial
import trimesh

from pipelines.synthetic.body_model import _pose_dirs, _shape_dirs, hand_pca
from pipelines.synthetic.tube_mesh import Mesh, _build_tube, _fit_torso, _Tube, _tube_specs, build_mesh, rest_joints
from schemas.skeletons import GENDERS, SMPLH_52, SMPLX_55, SMPLX_NUM_EXPRESSION, SMPLX_NUM_SHAPE

NUM_VERTICES_X = 10475
NUM_VERTICES_H = 6890
DEFTRAFO_NAME = "smplx2smpl_deftrafo_setup.pkl"
_H = {name: i for i, name in enumerate(SMPLH_52.joints)}
_X = {name: i for i, name in enumerate(SMPLX_55.joints)}
H_TO_X = np.array([_X[n] for n in SMPLH_52.joints])  # (52,) SMPL-H joint index -> SMPL-X joint index
_REFINED = {"head": (44, None), "palm": (28, (8,)), "finger": (16, (5, 5, 5))}  # group -> (segments, rings)
_JAW_SEGMENTS, _JAW_RINGS = 25, (6,)  # an odd vertex count: every other part has an even one
EYE_RADIUS = 0.012


@dataclass
class SmplxMesh:
    """The stand-in SMPL-X surface; ``mesh`` keeps the SMPL-H (52-joint) skinning used to derive directions."""

    mesh: Mesh  # verts (V, 3), faces, weights (V, 52), groups, tubes ...
    weights: np.ndarray  # (V, 55) in SMPL-X's joint order
    J_regressor: np.ndarray  # (55, V)
    tube_names: np.ndarray  # (V,) object: the tube each vertex belongs to
    joints_h: np.ndarray  # (52, 3) the SMPL+H stand-in's rest joints (same gender and seed)


def _tube_count(t: _Tube) -> int:
    return t.segments * (sum(t.rings) + 1) + 2


def _face_joints(J: np.ndarray) -> dict[str, np.ndarray]:
    """Jaw hinge, chin tip and eye centres from the head joint (the SMPL canonical frame, facing +z)."""
    head = J[_H["head"]]
    return {"jaw": head + (0.0, -0.005, 0.015), "chin": head + (0.0, -0.045, 0.085),
            "left_eye_smplhf": head + (0.032, 0.065, 0.080), "right_eye_smplhf": head + (-0.032, 0.065, 0.080)}


def _face_tubes(J: np.ndarray, eye_segments: int, eye_rings: int) -> list[_Tube]:
    X, _, Z = np.eye(3)
    face = _face_joints(J)
    head = _H["head"]  # in the 52-joint layout the face parts are skinned to the head; the 55-joint weights differ
    tubes = [_Tube("jaw", "head", np.stack([face["jaw"], face["chin"]]), (-1, -1), (head,),
                   np.array([(0.035, 0.022), (0.024, 0.016)]), X, _JAW_SEGMENTS, _JAW_RINGS)]
    r = EYE_RADIUS
    for side in ("left", "right"):
        c = face[f"{side}_eye_smplhf"]
        tubes.append(_Tube(f"{side}_eye", "head", np.stack([c - r * Z, c, c + r * Z]), (-1, -1, -1), (head, head),
                           np.array([(0.55 * r, 0.55 * r), (r, r), (0.55 * r, 0.55 * r)]), X, eye_segments,
                           (eye_rings, eye_rings)))
    return tubes


def _smplx_tubes(J: np.ndarray, extra: dict) -> list[_Tube]:
    """The SMPL+H stand-in's tubes with head, palms and fingers refined, then jaw and eyes: 10475 vertices."""
    s, rings, head_extra = _fit_torso(J, extra)
    base = _tube_specs(J, extra, s, rings, head_extra)
    for extra_rings in range(0, 12):
        for eye_rings in range(3, 9):
            for eye_segments in range(12, 41):
                tubes = []
                for t in base:
                    if t.group in _REFINED:
                        seg, rr = _REFINED[t.group]
                        t = replace(t, segments=seg, rings=rr or (8, 8 + extra_rings, 6))
                    tubes.append(t)
                tubes += _face_tubes(J, eye_segments, eye_rings)
                if sum(_tube_count(t) for t in tubes) == NUM_VERTICES_X:  # e.g. 1 extra head ring, eyes 32 x 8
                    return tubes
    raise RuntimeError("cannot fit the SMPL-X tube layout to 10475 vertices")


def build_smplx_mesh(gender: str, seed: int = 0) -> SmplxMesh:
    """The stand-in SMPL-X surface of one gender, with its 55-joint skinning and joint regressor."""
    J, extra = rest_joints(gender, seed)
    tubes = _smplx_tubes(J, extra)
    parts, v0, rings52, names = [], 0, {}, []
    for t in tubes:
        out = _build_tube(t, v0)
        parts.append(out)
        for k, ring in out[6].items():
            if t.knot_joints[k] >= 0:
                rings52[t.knot_joints[k]] = ring
        names.append(np.full(len(out[0]), t.name, dtype=object))
        v0 += len(out[0])
    verts = np.concatenate([p[0] for p in parts])
    faces = np.concatenate([p[1] for p in parts])
    w52 = np.concatenate([p[5] for p in parts])
    u = np.concatenate([p[4] for p in parts])
    tube_names = np.concatenate(names)
    assert len(verts) == NUM_VERTICES_X, len(verts)
    mesh = Mesh(verts=verts, faces=faces, weights=w52, centres=np.concatenate([p[2] for p in parts]),
                radial=np.concatenate([p[3] for p in parts]), u=u,
                group=np.concatenate([[t.group] * len(p[0]) for t, p in zip(tubes, parts)]),
                tube=np.concatenate([[i] * len(p[0]) for i, p in enumerate(parts)]), tubes=tubes, knot_rings=rings52)
    # 55-joint skinning: SMPL-H joints moved to SMPL-X indices; the jaw blends into the head, eyes are rigid.
    W = np.zeros((NUM_VERTICES_X, 55))
    W[:, H_TO_X] = w52
    jaw = tube_names == "jaw"
    a = 0.3 + 0.7 * np.clip(u[jaw], 0.0, 1.0)
    W[jaw] = 0.0
    W[jaw, _X["jaw"]], W[jaw, _X["head"]] = a, 1.0 - a
    Jreg = np.zeros((55, NUM_VERTICES_X))
    for j, ring in rings52.items():
        Jreg[H_TO_X[j], ring] = 1.0 / len(ring)
    starts = np.cumsum([0] + [len(p[0]) for p in parts])
    for t, p, v in zip(tubes, parts, starts):
        if t.name == "jaw":
            Jreg[_X["jaw"], p[6][0]] = 1.0 / len(p[6][0])
        elif t.name.endswith("_eye"):
            eye = _X[f"{t.name[:-4]}_eye_smplhf"]
            W[v:v + len(p[0])] = 0.0
            W[v:v + len(p[0]), eye] = 1.0
            Jreg[eye, p[6][1]] = 1.0 / len(p[6][1])  # the centre ring: its mean is the eye centre
    assert np.all(Jreg.sum(axis=1) > 0)
    return SmplxMesh(mesh=mesh, weights=W, J_regressor=Jreg, tube_names=tube_names, joints_h=J)


def _smooth_fields(verts: np.ndarray, n: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """(V, 3, n) smooth sinusoidal displacement fields of amplitude ~``scale`` (never exactly 0)."""
    freq, phase = rng.normal(0.0, 4.0, (n, 3, 3)), rng.uniform(0, 2 * np.pi, (n, 3))
    out = np.empty((len(verts), 3, n))
    for k in range(n):
        out[:, :, k] = scale * np.sin(verts @ freq[k] + phase[k]) + 1e-7
    return out


def _face_mask(xm: SmplxMesh) -> np.ndarray:
    """(V,) smooth weight of the face: the front of the head around the eyes and mouth, and the jaw."""
    v = xm.mesh.verts
    face = _face_joints(xm.joints_h)
    centre = (face["left_eye_smplhf"] + face["right_eye_smplhf"] + face["chin"]) / 3.0
    near = np.exp(-((np.linalg.norm(v - centre, axis=1) / 0.06) ** 2))
    head = np.isin(xm.tube_names, ("head", "jaw", "left_eye", "right_eye"))
    return near * head


def make_smplx_model(gender: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of one SMPL-X ``model.npz`` (keys and shapes as the released files; see the module docstring)."""
    xm = build_smplx_mesh(gender, seed)
    mesh, V = xm.mesh, NUM_VERTICES_X
    rng = np.random.default_rng([seed, 2000 + GENDERS.index(gender)])
    J52 = xm.joints_h
    J55 = xm.J_regressor @ mesh.verts
    # shape: the SMPL+H stand-in's 16 directions on this surface, then smaller smooth fields up to 300
    shape = np.concatenate([_shape_dirs(mesh, J52), _smooth_fields(mesh.verts, SMPLX_NUM_SHAPE - 16, rng, 1e-3)], axis=2)
    # expressions: millimetre fields on the face and jaw (and a tiny dense floor everywhere)
    expr = _smooth_fields(mesh.verts, SMPLX_NUM_EXPRESSION, rng, 3e-3) * _face_mask(xm)[:, None, None]
    expr[np.abs(expr) < 1e-7] = 1e-7
    # pose correctives: the SMPL+H stand-in's per joint (52-joint layout) in SMPL-X's columns, jaw/eyes local
    p52 = _pose_dirs(mesh, J52, rng)  # (V, 3, 9 * 51)
    P = np.empty((V, 3, 9 * 54))
    for j in range(1, 52):
        jx = H_TO_X[j]
        P[:, :, 9 * (jx - 1):9 * jx] = p52[:, :, 9 * (j - 1):9 * j]
    for name in ("jaw", "left_eye_smplhf", "right_eye_smplhf"):
        jx = _X[name]
        amp = 1.5e-3 * np.exp(-((np.linalg.norm(mesh.verts - J55[jx], axis=1) / 0.06) ** 2)) + 2e-5
        P[:, :, 9 * (jx - 1):9 * jx] = rng.standard_normal((V, 3, 9)) * amp[:, None, None]
    P[P == 0.0] = 1e-7
    kintree = np.stack([np.asarray(SMPLX_55.parents), np.arange(55)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # how the released files spell "no parent"
    hands = hand_pca(rng)
    head_faces = np.flatnonzero(np.isin(xm.tube_names[mesh.faces[:, 0]], ("head", "jaw")))

    def bary(*shape):
        b = rng.uniform(0.05, 1.0, shape + (3,))
        return b / b.sum(-1, keepdims=True)

    u_norm = mesh.u / np.maximum(1.0, np.array([len(t.knots) - 1 for t in mesh.tubes])[mesh.tube])
    theta = np.arctan2(mesh.radial[:, 2], mesh.radial[:, 0]) / (2 * np.pi) + 0.5
    return {
        "v_template": mesh.verts, "f": mesh.faces.astype(np.int32), "J_regressor": xm.J_regressor,
        "weights": xm.weights, "kintree_table": kintree,
        "shapedirs": np.concatenate([shape, expr], axis=2).astype(np.float32), "posedirs": P.astype(np.float32),
        **hands,
        "lmk_faces_idx": rng.choice(head_faces, 51, replace=False).astype(np.int64), "lmk_bary_coords": bary(51),
        "dynamic_lmk_faces_idx": rng.choice(head_faces, (79, 17)).astype(np.int64),
        "dynamic_lmk_bary_coords": bary(79, 17),
        "vt": np.stack([u_norm, theta], axis=1), "ft": mesh.faces.astype(np.int32),
    }


# ---------------------------------------------------------------------------------------------
# The SMPL-X -> SMPL deformation transfer


def _tube_ranges(tubes: list[_Tube]) -> dict[str, tuple[int, int]]:
    out, v0 = {}, 0
    for t in tubes:
        out[t.name] = (v0, v0 + _tube_count(t))
        v0 += _tube_count(t)
    return out


def deformation_transfer(seed: int = 0) -> scipy.sparse.csc_matrix:
    """(6890, 2 x 10475) SMPL-X -> SMPL transfer between the neutral stand-ins (``mtx`` of the pickle).

    Rows: SMPL+H stand-in vertices. Below the neck a vertex is the same SMPL-X vertex (weight 1); on
    the head and hands it is the nearest point of the SMPL-X surface of the same body part, as
    barycentric weights of that triangle; columns 10475.. hold the offsets along the triangle normals.
    """
    J, extra = rest_joints("neutral", seed)
    smplh = build_mesh(J, extra)
    xm = build_smplx_mesh("neutral", seed)
    h_ranges = _tube_ranges(smplh.tubes)
    x_ranges = _tube_ranges(xm.mesh.tubes)
    rows, cols, vals = [], [], []
    xv, xf = xm.mesh.verts, xm.mesh.faces
    for t in smplh.tubes:
        h0, h1 = h_ranges[t.name]
        x0, x1 = x_ranges[t.name]
        if t.group not in _REFINED:  # the shared surface: one-to-one
            assert h1 - h0 == x1 - x0
            rows.append(np.arange(h0, h1))
            cols.append(np.arange(x0, x1))
            vals.append(np.ones(h1 - h0))
            continue
        pts = smplh.verts[h0:h1]
        tris = np.flatnonzero((xf[:, 0] >= x0) & (xf[:, 0] < x1))
        corners = xv[xf[tris]]  # (F', 3, 3)
        tree = scipy.spatial.cKDTree(corners.mean(axis=1))
        _, cand = tree.query(pts, k=min(16, len(tris)))  # (n, k) candidate triangles
        n, k = cand.shape
        flat = corners[cand.ravel()]
        closest = trimesh.triangles.closest_point(flat, np.repeat(pts, k, axis=0))
        dist = np.linalg.norm(closest - np.repeat(pts, k, axis=0), axis=1).reshape(n, k)
        best = cand[np.arange(n), np.argmin(dist, axis=1)]
        tri = corners[best]
        near = closest.reshape(n, k, 3)[np.arange(n), np.argmin(dist, axis=1)]
        b = np.clip(trimesh.triangles.points_to_barycentric(tri, near), 0.0, None)
        b /= b.sum(axis=1, keepdims=True)
        normal = trimesh.triangles.normals(tri)[0]
        offset = np.einsum("ij,ij->i", pts - near, normal)
        idx = xf[tris[best]].ravel()  # (n * 3,) SMPL-X vertex ids
        rows += [np.repeat(np.arange(h0, h1), 3)] * 2
        cols += [idx, idx + NUM_VERTICES_X]
        vals += [b.ravel(), (b * offset[:, None]).ravel()]
    m = scipy.sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                shape=(NUM_VERTICES_H, 2 * NUM_VERTICES_X))
    return m.tocsc()


# ---------------------------------------------------------------------------------------------
# Files


def write_smplx_models(directory, seed: int = 0, genders=GENDERS) -> dict[str, Path]:
    """``smplx/{g}/model.npz`` for each gender; returns ``smplx_<gender>`` -> path."""
    out = {}
    for gender in genders:
        path = Path(directory) / "smplx" / gender / "model.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **make_smplx_model(gender, seed))
        out[f"smplx_{gender}"] = path
    return out


def write_deformation_transfer(directory, seed: int = 0) -> Path:
    """``transfer/smplx2smpl_deftrafo_setup.pkl``: a pickled ``{"mtx": csc_matrix (6890, 20950)}`` (plain
    numeric data in the real file's layout; read back only through the restricted unpickler)."""
    path = Path(directory) / "transfer" / DEFTRAFO_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"mtx": deformation_transfer(seed)}, protocol=2))
    return path
