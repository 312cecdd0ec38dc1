"""The reference path the mesh-free regression (``pipelines.regress``) is checked and timed against:
smplx's full SMPL+H forward pass over every vertex, then the joint regressor; for SMPL-X, smplx's SMPLX
forward pass, the SMPL-X -> SMPL deformation transfer applied to the whole mesh, then the regressor.

Used by ``tests/pipelines/test_regress.py`` (float64, exact agreement) and ``benchmarks/bench_regress.py``
/ ``benchmarks/bench_build.py`` (float32, as the AMASS conversion runs it, timed).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse

from pipelines.body_model import BodyModel, load_body_model
from pipelines.regress import betas_vector


def smplx_reference_model(model: BodyModel, num_coeffs: int, dtype=None):
    """An ``smplx.SMPLH`` module with the exact float64 arrays of ``model`` and an extended shape basis
    ``[shapedirs | dmpldirs | zeros]`` of ``max(num_coeffs, 300)`` columns, so smplx keeps them all."""
    import smplx
    import torch
    from smplx.utils import Struct

    dtype = dtype or torch.float64
    parts = [model.shapedirs] + ([model.dmpldirs] if model.dmpldirs is not None else [])
    ext = np.concatenate(parts, axis=2)
    width = max(300, ext.shape[2], num_coeffs)
    ext = np.concatenate([ext, np.zeros(ext.shape[:2] + (width - ext.shape[2],))], axis=2)
    kintree = np.stack([model.parents, np.arange(model.num_joints)])
    struct = Struct(v_template=model.v_template, shapedirs=ext, posedirs=model.posedirs,
                    J_regressor=model.J_regressor, weights=model.weights, kintree_table=kintree,
                    f=model.faces, hands_componentsl=np.eye(45), hands_componentsr=np.eye(45),
                    hands_meanl=np.zeros(45), hands_meanr=np.zeros(45))
    body = smplx.SMPLH(model_path="", data_struct=struct, use_pca=False, flat_hand_mean=True,
                       num_betas=width, dtype=dtype, gender=model.gender)
    # smplx casts every array through float32 on load; put the exact values back. The zero padding
    # was only there to get past smplx's 10-beta truncation: drop it (same result, less work).
    width = max(sum(p.shape[2] for p in parts), num_coeffs)
    with torch.no_grad():
        body.v_template = torch.tensor(model.v_template, dtype=dtype)
        body.shapedirs = torch.tensor(ext[:, :, :width], dtype=dtype)
        body.posedirs = torch.tensor(model.posedirs.reshape(-1, model.posedirs.shape[2]).T, dtype=dtype)
        body.J_regressor = torch.tensor(model.J_regressor.toarray(), dtype=dtype)
        body.lbs_weights = torch.tensor(model.weights, dtype=dtype)
    return body, width


def smplx_forward_joints(body, width: int, model: BodyModel, regressor, poses, trans, betas, dmpls,
                         batch: int = 1024, dtype=None) -> np.ndarray:
    """Full-mesh forward pass in batches, then the regressor: (T, N, 3) in ``dtype``'s precision."""
    import torch

    dtype = dtype or torch.float64
    b = betas_vector(model, betas)
    T = len(poses)
    coeffs = np.zeros((T, width))
    coeffs[:, : len(b)] = b
    if dmpls is not None:
        coeffs[:, len(b): len(b) + dmpls.shape[1]] = dmpls
    Rt = torch.tensor(scipy.sparse.csr_matrix(regressor).toarray(), dtype=dtype)
    out = []
    with torch.no_grad():
        for s in range(0, T, batch):
            sl = slice(s, min(T, s + batch))
            p = torch.tensor(np.asarray(poses[sl]), dtype=dtype)
            verts = body(betas=torch.tensor(coeffs[sl], dtype=dtype), global_orient=p[:, :3],
                         body_pose=p[:, 3:66], left_hand_pose=p[:, 66:111], right_hand_pose=p[:, 111:156],
                         transl=torch.tensor(np.asarray(trans[sl]), dtype=dtype)).vertices
            out.append(torch.einsum("nv,tvc->tnc", Rt, verts).numpy())
    return np.concatenate(out).astype(np.float64)


def reference_joints(model_file_or_model, regressor, poses, trans, betas, dmpls=None, dmpl_path=None,
                     batch: int = 1024) -> np.ndarray:
    """The slow reference: smplx.SMPLH full forward (float64) + regressor -> (T, N, 3) float64.

    All betas and the DMPLs are used through an extended, zero-padded shape basis (smplx keeps only
    10 betas of a model with fewer than 300 shape directions otherwise). AMASS poses carry the full
    hand pose, so the hand mean is not added (``flat_hand_mean=True``).
    """
    model = model_file_or_model
    if isinstance(model, (str, os.PathLike)):
        model = load_body_model(model, dmpl_path)
    if dmpls is not None and model.dmpldirs is None:
        raise ValueError("dmpls given but the body model has no DMPL basis")
    body, width = smplx_reference_model(model, model.num_betas + (0 if dmpls is None else dmpls.shape[1]))
    return smplx_forward_joints(body, width, model, regressor, np.asarray(poses, dtype=np.float64),
                                np.asarray(trans, dtype=np.float64), betas,
                                None if dmpls is None else np.asarray(dmpls, dtype=np.float64), batch)


# ---------------------------------------------------------------------------------------------
# SMPL-X: smplx's own SMPLX forward pass, the deformation transfer on every vertex, then the regressor


def smplx_x_reference_model(model: BodyModel, model_file, num_expression: int = 0, dtype=None):
    """An ``smplx.SMPLX`` module loaded from ``model_file`` by smplx itself (so the file must be in the
    released format), every shape direction and ``num_expression`` expression directions kept, hand
    poses taken as given (``use_pca=False, flat_hand_mean=True``: AMASS stores the full 45 values a hand,
    no mean added); its arrays then set to ``model``'s exact float64 values (smplx loads via float32)."""
    import smplx
    import torch

    dtype = dtype or torch.float64
    E = max(1, num_expression)
    body = smplx.SMPLX(model_path=str(model_file), ext="npz", use_pca=False, flat_hand_mean=True,
                       num_betas=model.num_betas, num_expression_coeffs=E, dtype=dtype, gender=model.gender)
    assert body.num_betas == model.num_betas and body.num_expression_coeffs == E
    with torch.no_grad():
        body.v_template = torch.tensor(model.v_template, dtype=dtype)
        body.shapedirs = torch.tensor(model.shapedirs, dtype=dtype)
        body.expr_dirs = torch.tensor(model.exprdirs[:, :, :E], dtype=dtype)
        body.posedirs = torch.tensor(model.posedirs.reshape(-1, model.posedirs.shape[2]).T, dtype=dtype)
        body.J_regressor = torch.tensor(model.J_regressor.toarray(), dtype=dtype)
        body.lbs_weights = torch.tensor(model.weights, dtype=dtype)
    return body


def smplx_x_forward_joints(body, model: BodyModel, regressor, transfer, poses, trans, betas, expression=None,
                           batch: int = 64, dtype=None) -> np.ndarray:
    """Full SMPL-X mesh (T, 10475, 3) in batches, mapped to the SMPL topology by the deformation transfer
    (6890, 10475) on every vertex, then the (N, 6890) regressor: (T, N, 3) in ``dtype``'s precision."""
    import torch

    dtype = dtype or torch.float64
    b = betas_vector(model, betas)
    T = len(poses)
    E = body.num_expression_coeffs
    expr = np.zeros((T, E))
    if expression is not None:
        expr[:, :expression.shape[1]] = expression
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    D = scipy.sparse.csr_matrix(transfer).astype(np_dtype)  # sparse: the same product as the dense matrix
    Rt = torch.tensor(scipy.sparse.csr_matrix(regressor).toarray(), dtype=dtype)
    betas_t = torch.tensor(np.broadcast_to(b, (min(batch, T), len(b))).copy(), dtype=dtype)
    out = []
    with torch.no_grad():
        for s in range(0, T, batch):
            sl = slice(s, min(T, s + batch))
            n = sl.stop - sl.start
            p = torch.tensor(np.asarray(poses[sl]), dtype=dtype)
            verts = body(betas=betas_t[:n], expression=torch.tensor(expr[sl], dtype=dtype), global_orient=p[:, :3],
                         body_pose=p[:, 3:66], jaw_pose=p[:, 66:69], leye_pose=p[:, 69:72], reye_pose=p[:, 72:75],
                         left_hand_pose=p[:, 75:120], right_hand_pose=p[:, 120:165],
                         transl=torch.tensor(np.asarray(trans[sl]), dtype=dtype)).vertices  # (n, 10475, 3)
            smpl = D @ verts.permute(1, 0, 2).reshape(D.shape[1], -1).numpy()  # (6890, 3n): every SMPL vertex
            out.append(torch.einsum("nv,vtc->tnc", Rt, torch.from_numpy(smpl.reshape(D.shape[0], n, 3))).numpy())
    return np.concatenate(out).astype(np.float64)


def reference_joints_smplx(model: BodyModel, model_file, regressor, transfer, poses, trans, betas, expression=None,
                           batch: int = 64) -> np.ndarray:
    """The slow SMPL-X reference in float64: smplx.SMPLX on every frame (all betas, jaw, eyes, hands,
    expressions) -> deformation transfer -> regressor (N, 6890): (T, N, 3)."""
    E = 0 if expression is None else expression.shape[1]
    body = smplx_x_reference_model(model, model_file, E)
    return smplx_x_forward_joints(body, model, regressor, transfer, np.asarray(poses, np.float64),
                                  np.asarray(trans, np.float64), betas,
                                  None if expression is None else np.asarray(expression, np.float64), batch)
