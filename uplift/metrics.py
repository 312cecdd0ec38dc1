"""3D pose metrics (numpy, float64 inside, metres in and out).

Per-pose errors of ``(..., J, 3)`` arrays return ``(...)``:
- ``mpjpe``: mean per-joint position error after moving both roots to the origin (protocol #1).
- ``n_mpjpe``: root-relative, prediction scaled by the least-squares optimal factor (Rhodin et al. 2018).
- ``p_mpjpe``: after the optimal similarity transform (rotation, scale, translation; Procrustes,
  protocol #2). Reflections are not allowed.
- ``pck`` / ``auc``: MPI-INF-3DHP; fraction of root-relative joints within 150 mm, and its mean over
  thresholds 5, 10, ..., 150 mm.
Aggregation: ``per_action`` / ``action_average`` average the frames of each action, then the actions
(Human3.6M protocol: every action weighs the same however many frames it has); ``keyframe_split``
separates frames with 2D input (``uplift.keyframes.is_keyframe``: t mod s_in == 0) from upsampled ones.

Public API on purpose: ``uplift.evaluate`` builds its tables from ``mpjpe``, ``p_mpjpe`` and
``per_action``; ``n_mpjpe``, ``pck`` / ``auc`` (MPI-INF-3DHP), ``keyframe_split`` and ``evaluate``
are for comparing predictions from elsewhere with the same definitions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from schemas.h36m import canonical_action
from uplift.keyframes import is_keyframe

PCK_THRESHOLD = 0.150  # metres
AUC_THRESHOLDS = np.linspace(0.005, 0.150, 30)  # 5 mm .. 150 mm in 5 mm steps


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (..., J, 3)")
    return pred, gt


def _root_relative(x: np.ndarray, root: int | None) -> np.ndarray:
    return x if root is None else x - x[..., root : root + 1, :]


def joint_errors(pred, gt, root: int | None = 0) -> np.ndarray:
    """Per-joint Euclidean distance ``(..., J)`` after root alignment (``root=None``: none)."""
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(_root_relative(pred, root) - _root_relative(gt, root), axis=-1)


def mpjpe(pred, gt, root: int | None = 0) -> np.ndarray:
    """Mean per-joint position error per pose ``(...)``."""
    return joint_errors(pred, gt, root).mean(-1)


def n_mpjpe(pred, gt, root: int = 0) -> np.ndarray:
    """MPJPE after scaling the root-relative prediction by ``s = <p, g> / <p, p>`` (per pose)."""
    pred, gt = _pair(pred, gt)
    p, g = _root_relative(pred, root), _root_relative(gt, root)
    s = (p * g).sum((-2, -1)) / np.maximum((p * p).sum((-2, -1)), 1e-12)
    return np.linalg.norm(s[..., None, None] * p - g, axis=-1).mean(-1)


def procrustes_align(pred, gt) -> np.ndarray:
    """``pred`` moved by the similarity transform (rotation, scale, translation) closest to ``gt``.

    Least squares over joints (Umeyama 1991), per pose; proper rotations only (det R = +1).
    """
    pred, gt = _pair(pred, gt)
    mu_p, mu_g = pred.mean(-2, keepdims=True), gt.mean(-2, keepdims=True)
    x, y = pred - mu_p, gt - mu_g
    h = np.swapaxes(x, -1, -2) @ y  # (..., 3, 3)
    u, sig, vt = np.linalg.svd(h)
    # Sign fix: if U V^T is a reflection, flip the weakest singular direction.
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[..., :, -1] *= d[..., None]
    sig = sig.copy()
    sig[..., -1] *= d
    r = u @ vt  # row vectors: aligned = s * x @ r
    scale = sig.sum(-1) / np.maximum((x * x).sum((-2, -1)), 1e-12)
    return scale[..., None, None] * (x @ r) + mu_g


def p_mpjpe(pred, gt) -> np.ndarray:
    """MPJPE after Procrustes alignment of each pose (protocol #2)."""
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(procrustes_align(pred, gt) - gt, axis=-1).mean(-1)


def pck(pred, gt, threshold: float = PCK_THRESHOLD, root: int | None = 0,
        joints: Sequence[int] | None = None) -> np.ndarray:
    """Fraction of joints within ``threshold`` metres per pose ``(...)``; ``joints`` selects a subset."""
    err = joint_errors(pred, gt, root)
    if joints is not None:
        err = err[..., list(joints)]
    return (err <= threshold).mean(-1)


def auc(pred, gt, thresholds=AUC_THRESHOLDS, root: int | None = 0,
        joints: Sequence[int] | None = None) -> np.ndarray:
    """Mean of ``pck`` over ``thresholds`` (default 5..150 mm, 30 steps) per pose ``(...)``."""
    err = joint_errors(pred, gt, root)
    if joints is not None:
        err = err[..., list(joints)]
    t = np.asarray(thresholds, dtype=np.float64)
    return (err[..., None] <= t).mean(-2).mean(-1)


def per_action(values, actions: Sequence[str], normalise=canonical_action) -> dict[str, float]:
    """Mean of per-frame ``values (F,)`` for each action (after ``normalise``; None keeps names)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    names = np.asarray([normalise(a) if normalise else a for a in actions])
    if names.shape != values.shape:
        raise ValueError(f"{values.shape[0]} values but {names.shape[0]} action labels")
    return {a: float(values[names == a].mean()) for a in sorted(set(names.tolist()))}


def action_average(values, actions: Sequence[str], normalise=canonical_action) -> float:
    """Human3.6M protocol: mean over actions of the per-action frame means."""
    return float(np.mean(list(per_action(values, actions, normalise).values())))


def keyframe_split(values, frame_indices, s_in: int) -> dict[str, float]:
    """Mean of per-frame ``values`` over key frames (``is_keyframe``: ``t % s_in == 0``), the other
    frames, and all."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    key = is_keyframe(np.asarray(frame_indices).reshape(-1), s_in)
    nan = float("nan")
    return {
        "key": float(values[key].mean()) if key.any() else nan,
        "non_key": float(values[~key].mean()) if (~key).any() else nan,
        "all": float(values.mean()),
    }


def evaluate(pred, gt, actions: Sequence[str] | None = None, root: int = 0) -> dict[str, float]:
    """Frame-averaged ``mpjpe``, ``n_mpjpe``, ``p_mpjpe`` of ``(F, J, 3)`` poses (metres), plus
    ``<metric>_action`` averages (Human3.6M protocol) when ``actions (F,)`` is given."""
    per_frame = {"mpjpe": mpjpe(pred, gt, root), "n_mpjpe": n_mpjpe(pred, gt, root), "p_mpjpe": p_mpjpe(pred, gt)}
    out = {k: float(v.mean()) for k, v in per_frame.items()}
    if actions is not None:
        out.update({f"{k}_action": action_average(v, actions) for k, v in per_frame.items()})
    return out
