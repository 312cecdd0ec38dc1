"""Exact joint regression from SMPL+H parameters without building the mesh.

The reference path (AMASS conversion; ``tests/support/smplx_reference.py``) poses all V vertices by linear blend skinning and applies a
regressor R (N, V). For fixed bone transforms LBS is linear in the rest vertices, so

    y_n = sum_b [ c_nb (t_b - Q_b j_b) + Q_b m_nb(t) ] + trans,
    c_nb = sum_i R_ni W_ib,   m_nb(t) = sum_i R_ni W_ib (v_template_i + S_i [betas; dmpls_t] + P_i f_t)

with Q_b, t_b the world rotation and posed position of joint b, j_b its rest position and f_t the
pose feature (R_k - I, k >= 1). ``c`` and the three parts of ``m`` (constant, DMPL, pose-corrective)
are contracted once per (model, regressor, betas) over only the regressor's non-zero vertices and
kept only for (joint, bone) pairs with c_nb != 0. Per frame we compute rotations, the kinematic
chain of the bones involved, and a (T, P') @ (P', 3K) product: the mesh is never built.

DMPLs follow AMASS / human_body_prior: their eigvecs extend the shape basis, so they also move the
rest joints frame by frame. SMPL-X expression coefficients do exactly the same (smplx and
human_body_prior append the expression directions to the shape basis), so they take the same path:
one per-frame shape basis, DMPLs for SMPL+H, expressions for SMPL-X. An SMPL-X model takes the
(T, 165) pose in smplx's order (root, body, jaw, eyes, hands) and any regressor on its 10475 vertices,
e.g. an SMPL-topology regressor composed with the deformation transfer (:mod:`pipelines.deftrafo`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from pipelines.body_model import BodyModel
from schemas.errors import InputError

DEFAULT_BATCH = 4096


def rodrigues_soa(r: np.ndarray) -> np.ndarray:
    """Axis-angle (3, ...) -> rotation matrices (3, 3, ...), float64, components first (frames last).

    Through the unit quaternion (cos(t/2), sin(t/2)/t * r): no cancellation near zero angle (at t = 0,
    r = 0 makes the vector part 0 whatever the factor), and each entry is written in place once.
    """
    theta = np.sqrt((r * r).sum(axis=0))
    half = 0.5 * theta
    w = np.cos(half)
    k = np.sin(half)
    k /= np.maximum(theta, 1e-300)
    x, y, z = r * k  # vector part of the quaternion
    x2, y2, z2 = 2.0 * x, 2.0 * y, 2.0 * z
    xx, yy, zz = x * x2, y * y2, z * z2
    xy, xz, yz = x * y2, x * z2, y * z2
    wx, wy, wz = w * x2, w * y2, w * z2
    out = np.empty((3, 3) + r.shape[1:])
    np.subtract(1.0, yy + zz, out=out[0, 0])
    np.subtract(1.0, xx + zz, out=out[1, 1])
    np.subtract(1.0, xx + yy, out=out[2, 2])
    np.subtract(xy, wz, out=out[0, 1])
    np.add(xy, wz, out=out[1, 0])
    np.add(xz, wy, out=out[0, 2])
    np.subtract(xz, wy, out=out[2, 0])
    np.subtract(yz, wx, out=out[1, 2])
    np.add(yz, wx, out=out[2, 1])
    return out


def betas_vector(model: BodyModel, betas) -> np.ndarray:
    """``betas`` (S',), S' <= S, zero-padded to the model's S shape directions -> (S,) float64."""
    b = np.asarray(betas if betas is not None else np.zeros(0), dtype=np.float64).ravel()
    if len(b) > model.num_betas:
        raise ValueError(f"{len(b)} betas given but the model has only {model.num_betas} shape directions")
    return np.concatenate([b, np.zeros(model.num_betas - len(b))])


class JointRegressor:
    """Per-(model, regressor, betas) contraction; ``__call__`` maps poses to (T, N, 3) joints."""

    def __init__(self, parents, chain, pair_joint, pair_bone, c, m0, md, mp, pose_cols,
                 j0, jd, num_out, num_dmpls, batch=DEFAULT_BATCH):
        self.parents = parents  # (Jb,) int64
        self.chain = chain  # (B',) bones whose transforms are needed, parents first
        self.pair_joint = pair_joint  # (K,) output row of each (joint, bone) pair
        self.pair_bone = pair_bone  # (K,) position of the pair's bone in ``chain``
        self.c = c  # (K,) sum_i R_ni W_ib
        self.m0 = m0  # (K, 3) template + betas part of m
        self.md = md  # (K, 3, D) DMPL part of m, or None
        self.mp = mp  # (P', 3K) pose-corrective part of m, only used pose-feature columns
        self.pose_cols = pose_cols  # (P',) indices into the 9*(Jb-1) pose feature
        self.j0 = j0  # (B', 3) rest joints of ``chain`` for the betas
        self.jd = jd  # (B', 3, D) their DMPL derivative, or None
        self.num_out = num_out
        self.num_dmpls = num_dmpls
        self.batch = batch
        # Rotations needed: the chain's bones and every joint appearing in a used pose-feature column.
        self.rot_joints = np.union1d(chain, pose_cols // 9 + 1).astype(np.int64)
        self._chain_pos_in_rot = np.searchsorted(self.rot_joints, chain)
        feat_joint = pose_cols // 9 + 1
        self._feat_pos = np.searchsorted(self.rot_joints, feat_joint)
        self._feat_entry = pose_cols % 9
        local = {int(b): k for k, b in enumerate(chain)}
        self._chain_parent = np.array([local.get(int(parents[b]), -1) for b in chain], dtype=np.int64)
        self._scatter = np.zeros((num_out, len(pair_joint)))
        self._scatter[pair_joint, np.arange(len(pair_joint))] = 1.0
        # Pairs grouped by bone: each bone's world rotation is applied to its pairs at once, without
        # gathering a (3, 3, K, T) copy of the rotations.
        self._bone_groups = [(k, np.flatnonzero(pair_bone == k)) for k in np.unique(pair_bone)]
        # DMPLs enter m linearly, like the pose features: one product for both.
        self._mpd = mp if md is None else np.concatenate([mp, md.reshape(len(pair_joint) * 3, num_dmpls).T])

    @classmethod
    def from_model(cls, model: BodyModel, regressor, betas=None, batch: int = DEFAULT_BATCH,
                   num_expression: int = 0) -> "JointRegressor":
        """Contract ``regressor`` (N, V) with the model for ``betas`` (S',), S' <= S (zero-padded).

        ``num_expression``: how many of an SMPL-X model's expression directions the frames will carry
        (``__call__(..., expression=(T, E))``); 0 leaves them at zero without costing anything.
        """
        if num_expression:
            if model.exprdirs is None or not 0 < num_expression <= model.num_expression:
                raise ValueError(f"{num_expression} expression coefficients, but the {model.model_type} model has "
                                 f"{model.num_expression} expression directions")
            frame_dirs = model.exprdirs[:, :, :num_expression]
        else:
            frame_dirs = model.dmpldirs
        R = scipy.sparse.csr_matrix(regressor, dtype=np.float64)
        if R.shape[1] != model.num_vertices:
            raise InputError(None, f"regressor has {R.shape[1]} columns but the model has {model.num_vertices} vertices")
        b = betas_vector(model, betas)
        verts = np.unique(R.indices)  # only these vertices' skinning / correctives matter
        Rs = R[:, verts].toarray()  # (N, m)
        Ws = model.weights[verts]  # (m, Jb)
        coef = Rs[:, None, :] * Ws.T[None, :, :]  # (N, Jb, m): R_ni W_ib
        c_full = coef.sum(axis=2)
        pj, pb = np.nonzero(coef.any(axis=2))  # (joint, bone) pairs that matter
        coef = coef[pj, pb]  # (K, m)
        vs = model.v_template[verts] + model.shapedirs[verts] @ b  # (m, 3)
        m0 = coef @ vs  # (K, 3)
        P = model.posedirs[verts]  # (m, 3, P)
        K, m = coef.shape
        mp = (coef @ P.reshape(m, -1)).reshape(K, 3, -1).transpose(2, 0, 1).reshape(P.shape[2], -1)  # (P, 3K)
        pose_cols = np.flatnonzero(np.any(mp != 0.0, axis=1))
        mp = mp[pose_cols]
        # Bones needed: the pairs' bones and their ancestors (for the kinematic chain).
        need = np.zeros(model.num_joints, dtype=bool)
        for bone in np.unique(pb):
            while bone >= 0 and not need[bone]:
                need[bone] = True
                bone = model.parents[bone]
        chain = np.flatnonzero(need)  # parents precede children in SMPL-family trees
        j_all = model.rest_joints(b)  # (Jb, 3)
        md = jd = None
        D = 0
        if frame_dirs is not None:  # the per-frame shape basis: DMPLs (SMPL+H) or expressions (SMPL-X)
            D = frame_dirs.shape[2]
            md = (coef @ frame_dirs[verts].reshape(m, -1)).reshape(K, 3, D)
            # sparse @ dense: the model's joint regressor touches few vertices per joint
            jd = np.asarray(model.J_regressor[chain] @ frame_dirs.reshape(model.num_vertices, -1))
            jd = jd.reshape(len(chain), 3, D)
        out = cls(model.parents, chain, pj, np.searchsorted(chain, pb), c_full[pj, pb], m0, md, mp,
                  pose_cols, j_all[chain], jd, R.shape[0], D, batch)
        out.frame_basis = "expression" if num_expression else ("dmpls" if D else None)
        return out

    frame_basis: str | None = None  # what the per-frame shape coefficients are: "dmpls" | "expression" | None

    def __call__(self, poses: np.ndarray, trans: np.ndarray, dmpls: np.ndarray | None = None,
                 expression: np.ndarray | None = None) -> np.ndarray:
        """poses (T, 3 Jb) axis-angle (156 SMPL+H, 165 SMPL-X), trans (T, 3), dmpls (T, D) or expression
        (T, E) as contracted for, or None -> joints (T, N, 3) float32, metres."""
        poses = np.asarray(poses, dtype=np.float64)
        trans = np.asarray(trans, dtype=np.float64)
        T = len(poses)
        if poses.ndim != 2 or poses.shape[1] != 3 * len(self.parents):
            raise ValueError(f"poses must be (T, {3 * len(self.parents)}), got {poses.shape}")
        if trans.shape != (T, 3):
            raise ValueError(f"trans must be ({T}, 3), got {trans.shape}")
        if expression is not None:
            if dmpls is not None or self.frame_basis != "expression":
                raise ValueError("expression given but the regressor was not contracted for expressions "
                                 "(from_model(..., num_expression=E))")
            dmpls = expression  # the same per-frame shape path
        elif self.frame_basis == "expression":
            dmpls = None  # contracted for expressions, none given: all zero
        if dmpls is not None:
            dmpls = np.asarray(dmpls, dtype=np.float64)
            if self.num_dmpls == 0:
                raise ValueError("dmpls given but the body model has no DMPL basis")
            if dmpls.shape != (T, self.num_dmpls):
                raise ValueError(f"{self.frame_basis or 'dmpls'} must be ({T}, {self.num_dmpls}), got {dmpls.shape}")
        out = np.empty((T, self.num_out, 3), dtype=np.float32)
        for s in range(0, T, self.batch):
            e = min(T, s + self.batch)
            out[s:e] = self._batch(poses[s:e], trans[s:e], None if dmpls is None else dmpls[s:e])
        return out

    def _batch(self, poses, trans, dmpls) -> np.ndarray:
        # Frames run along the LAST axis ("structure of arrays"): every 3x3 product becomes 27
        # vectorised multiply-adds over T values, much faster than numpy's stacked small matmuls.
        T = len(poses)
        aa = poses.reshape(T, -1, 3)[:, self.rot_joints].transpose(2, 1, 0)  # (3, B'', T)
        rot = rodrigues_soa(aa)  # (3, 3, B'', T)
        # Pose feature columns actually used: (R_k - I)[r, c] flattened as smplx does.
        feat = rot.reshape(9, -1, T)[self._feat_entry, self._feat_pos] - \
            (self._feat_entry % 4 == 0)[:, None]  # (P', T); identity entries are 0, 4, 8
        j = np.broadcast_to(self.j0[:, :, None], self.j0.shape + (T,))  # (B', 3, T)
        if dmpls is not None and self.md is not None:
            m = (self._mpd.T @ np.concatenate([feat, dmpls.T])).reshape(-1, 3, T) + self.m0[:, :, None]
            j = j + (self.jd.reshape(-1, self.num_dmpls) @ dmpls.T).reshape(j.shape)
        else:
            m = (self.mp.T @ feat).reshape(-1, 3, T) + self.m0[:, :, None]  # (K, 3, T)
        # Kinematic chain over the needed bones only: world rotation Q_b and posed joint t_b.
        nb = len(self.chain)
        Q = np.empty((3, 3, nb, T))
        t = np.empty((nb, 3, T))
        rloc = rot[:, :, self._chain_pos_in_rot]
        for k in range(nb):
            p = self._chain_parent[k]
            if p < 0:
                Q[:, :, k] = rloc[:, :, k]
                t[k] = j[k]
            else:
                Qp = Q[:, :, p]
                Q[:, :, k] = (Qp[:, :, None, :] * rloc[None, :, :, k]).sum(axis=1)
                t[k] = t[p] + (Qp * (j[k] - j[p])[None]).sum(axis=1)
        pb = self.pair_bone
        u = m - self.c[:, None, None] * j[pb]  # (K, 3, T): sum_i R W (v_posed_i - j_b)
        contrib = np.empty_like(u)  # (K, 3, T): Q_b u + c t_b
        for k, idx in self._bone_groups:
            q, uk, ck = Q[:, :, k], u[idx], self.c[idx, None]
            for r in range(3):
                contrib[idx, r] = q[r, 0] * uk[:, 0] + q[r, 1] * uk[:, 1] + q[r, 2] * uk[:, 2] + ck * t[k, r]
        y = (self._scatter @ contrib.reshape(len(pb), -1)).reshape(self.num_out, 3, T)
        return y.transpose(2, 0, 1) + trans[:, None, :]
