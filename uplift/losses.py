"""Training objective: ``L = w_seq * L_seq + w_center * L_center``, both MPJPE.

Two forms (``TrainConfig.loss``, a recipe item of ``uplift.config``):

* ``"root-aligned-valid"`` (the paper's equations): ``L_seq`` averages the per-joint Euclidean error
  over all joints of every *valid* window frame (frames copy-padded past the sequence ends are masked
  out); ``L_center`` over the centre frame's joints. Prediction and target are both made
  root-relative, so the absolute position of the prediction never matters.
* ``"raw-all-frames"`` (the authors' released training code): the raw prediction is compared with
  the root-relative target (so the predicted root is trained towards 0), padded frames count like any
  other, and ``L_seq`` is the error sum divided by ``B * N * J``, ``L_center`` by ``B * J``.

Units: metres in, metres out.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from uplift.config import LOSSES, check_choice


class LossTerms(NamedTuple):
    total: torch.Tensor  # () weighted sum, the thing to backpropagate
    seq: torch.Tensor  # () masked mean root-relative MPJPE over the window
    center: torch.Tensor  # () root-relative MPJPE of the centre frame


def root_relative(poses: torch.Tensor, root: int = 0) -> torch.Tensor:
    """``(..., J, 3)`` -> same shape with joint ``root`` moved to the origin."""
    return poses - poses[..., root : root + 1, :]


def joint_errors(pred: torch.Tensor, target: torch.Tensor, root: int | None = 0) -> torch.Tensor:
    """Per-joint Euclidean error ``(..., J)`` of ``(..., J, 3)`` poses, root-relative unless ``root`` is None."""
    if root is not None:
        pred, target = root_relative(pred, root), root_relative(target, root)
    return torch.linalg.vector_norm(pred - target, dim=-1)


def uplift_loss(pred_seq: torch.Tensor, pred_center: torch.Tensor, target: torch.Tensor,
                valid: torch.Tensor | None = None, *, root: int = 0, w_seq: float = 0.5,
                w_center: float = 0.5, center_target: torch.Tensor | None = None,
                seq_count: torch.Tensor | None = None, center_count: torch.Tensor | None = None,
                mode: str = "root-aligned-valid") -> LossTerms:
    """The Uplift-Upsample objective in the form ``mode`` (see the module doc).

    pred_seq: (B, N, J, 3) model sequence output; pred_center: (B, J, 3) centre output;
    target: (B, N, J, 3) ground truth for the window; valid: (B, N) bool/float, False for padded frames
    (None: all valid; ignored by ``"raw-all-frames"``); center_target: (B, J, 3), defaults to
    ``target[:, N // 2]``.
    seq_count / center_count: () normalisers replacing this batch's valid-frame / window counts, so a
    data-parallel rank can normalise by its share of the global batch (``uplift.distributed``);
    ``"raw-all-frames"`` divides by ``center_count * N`` frames.
    """
    check_choice("loss", mode, LOSSES)
    if mode == "raw-all-frames":
        return _raw_all_frames(pred_seq, pred_center, target, root, w_seq, w_center, center_target, center_count)
    # fp32 whatever the autocast around: errors of a few mm on metre-scale poses
    pred_seq, pred_center, target = pred_seq.float(), pred_center.float(), target.float()
    if center_target is not None:
        center_target = center_target.float()
    if pred_seq.shape != target.shape:
        raise ValueError(f"pred_seq {tuple(pred_seq.shape)} and target {tuple(target.shape)} differ")
    b, n = target.shape[:2]
    if center_target is None:
        center_target = target[:, n // 2]
    per_frame = joint_errors(pred_seq, target, root).mean(-1)  # (B, N)
    if valid is None:
        l_seq = per_frame.mean()
    else:
        w = valid.to(per_frame.dtype)
        # clamp: a batch of only padded frames contributes 0 instead of NaN
        norm = w.sum() if seq_count is None else seq_count.to(w.dtype)
        l_seq = (per_frame * w).sum() / norm.clamp_min(1.0)
    if seq_count is not None and valid is None:
        l_seq = per_frame.sum() / seq_count.to(per_frame.dtype).clamp_min(1.0)
    err_center = joint_errors(pred_center, center_target, root).mean(-1)  # (B,)
    l_center = err_center.mean() if center_count is None else err_center.sum() / center_count.to(err_center.dtype)
    return LossTerms(w_seq * l_seq + w_center * l_center, l_seq, l_center)


def _raw_all_frames(pred_seq, pred_center, target, root, w_seq, w_center, center_target, center_count) -> LossTerms:
    """The released code's objective: raw prediction vs root-relative target, every frame counted."""
    pred_seq, pred_center, target = pred_seq.float(), pred_center.float(), target.float()
    if pred_seq.shape != target.shape:
        raise ValueError(f"pred_seq {tuple(pred_seq.shape)} and target {tuple(target.shape)} differ")
    b, n = target.shape[:2]
    target = root_relative(target, root)
    center_target = target[:, n // 2] if center_target is None else root_relative(center_target.float(), root)
    windows = torch.tensor(float(b)) if center_count is None else center_count.to(torch.float32)
    windows = windows.to(pred_seq.device).clamp_min(1.0)
    # mean over joints, then sum over frames and windows / (B * N): the sum over B*N*J / (B*N*J)
    l_seq = joint_errors(pred_seq, target, None).mean(-1).sum() / (windows * n)
    l_center = joint_errors(pred_center, center_target, None).mean(-1).sum() / windows
    return LossTerms(w_seq * l_seq + w_center * l_center, l_seq, l_center)
