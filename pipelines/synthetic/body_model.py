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

Everything is deterministic given ``seed``. The mesh and skinning weights are built in
:mod:`pipelines.synthetic.tube_mesh`, the H36M regressor in :mod:`pipelines.synthetic.h36m_regressor`;
here the shape, pose-corrective and DMPL directions, and the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.synthetic.h36m_regressor import SPIN_ROWS, h36m_regressor
from pipelines.synthetic.tube_mesh import NUM_VERTICES, Mesh, build_mesh, mirror_names, rest_joints
from schemas.skeletons import GENDERS, NUM_DMPLS, SMPLH_52

_J = {name: i for i, name in enumerate(SMPLH_52.joints)}
_PARENTS = np.asarray(SMPLH_52.parents, dtype=np.int64)


def _subtree(root: int) -> np.ndarray:
    inside = np.zeros(52, dtype=bool)
    inside[root] = True
    for j in range(1, 52):
        if inside[_PARENTS[j]]:
            inside[j] = True
    return inside


def _move_subtree(mesh: Mesh, J: np.ndarray, parent: str, child: str, delta) -> np.ndarray:
    """(V, 3) field moving the subtree of ``child`` by ``delta``, ramping along the parent bone."""
    p, c = _J[parent], _J[child]
    axis = J[c] - J[p]
    t = np.clip((mesh.verts - J[p]) @ axis / (axis @ axis), 0.0, 1.0)
    s = mesh.weights[:, _subtree(c)].sum(1) + mesh.weights[:, p] * t
    return s[:, None] * np.asarray(delta, dtype=np.float64)


def _lengthen(mesh, J, parent, child, amount, sides=True) -> np.ndarray:
    out = 0.0
    for pa, ch in zip(mirror_names(parent), mirror_names(child)) if sides else [(parent, child)]:
        d = J[_J[ch]] - J[_J[pa]]
        out = out + _move_subtree(mesh, J, pa, ch, amount * d / np.linalg.norm(d))
    return out


def _shape_dirs(mesh: Mesh, J: np.ndarray) -> np.ndarray:
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


def _pose_dirs(mesh: Mesh, J: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 459) correctives linear in (R_j - I), j >= 1, dense like SMPL+H's: local bulges and
    displacements of up to ~1 cm near each joint, decaying to ~1e-5 m far from it, never exactly 0."""
    d = np.linalg.norm(mesh.verts[:, None, :] - J[None, 1:, :], axis=2)  # (V, 51)
    amp = 1.5e-3 * np.exp(-((d / 0.15) ** 2)) + 2e-5
    P = rng.standard_normal((len(mesh.verts), 3, 9 * 51)) * np.repeat(amp, 9, axis=1)[:, None, :]
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


def _dmpl_dirs(mesh: Mesh, rng: np.random.Generator) -> np.ndarray:
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
    mesh = build_mesh(J, extra)
    rng = np.random.default_rng([seed, 1000 + GENDERS.index(gender)])
    Jreg = np.zeros((52, NUM_VERTICES))
    for j, ring in mesh.knot_rings.items():
        Jreg[j, ring] = 1.0 / len(ring)
    kintree = np.stack([_PARENTS, np.arange(52)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # how the released files spell "no parent"
    hands = hand_pca(rng)
    return {
        "v_template": mesh.verts, "shapedirs": _shape_dirs(mesh, J), "posedirs": _pose_dirs(mesh, J, rng),
        "J_regressor": Jreg, "weights": mesh.weights, "kintree_table": kintree, "f": mesh.faces.astype(np.int32),
        **hands, "J": Jreg @ mesh.verts, "eigvec": _dmpl_dirs(mesh, rng),
    }


def write_body_model_tree(directory, seed: int = 0, smplx: bool = False) -> dict[str, Path]:
    """Write ``smplh/{g}/model.npz``, ``dmpls/{g}/model.npz`` for g in male/female/neutral and
    ``J_regressor_h36m.npy`` (dense (17, 6890), rows in SPIN's order: left leg in rows 1-3, like the
    real file, so everything that reads it goes through the side resolution). Returns name -> path
    (``smplh_male``, ``dmpl_male``, ..., ``J_regressor_h36m``).

    ``smplx``: also the SMPL-X stand-ins ``smplx/{g}/model.npz`` and the deformation transfer
    ``transfer/smplx2smpl_deftrafo_setup.pkl`` (:mod:`pipelines.synthetic.smplx_model`; names
    ``smplx_male``, ..., ``deftrafo``): about 110 MB a gender, like the real files."""
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
    if smplx:
        from pipelines.synthetic.smplx_model import write_deformation_transfer, write_smplx_models

        out.update(write_smplx_models(root, seed))
        out["deftrafo"] = write_deformation_transfer(root, seed)
    return out


def hand_pca(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``hands_components{l,r}`` (45, 45) orthonormal and ``hands_mean{l,r}`` (45,), as the released
    SMPL+H and SMPL-X files hold them (AMASS poses hands with 45 values a hand, so neither is used)."""
    hands = {}
    for side in ("l", "r"):
        q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
        hands[f"hands_components{side}"] = q.T
        hands[f"hands_mean{side}"] = rng.normal(0.0, 0.15, 45)
    return hands
