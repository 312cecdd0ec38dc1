"""Evaluation on a corpus version: MPJPE / P-MPJPE per action, all frames vs key frames, per s_in.

Follows the official protocol (goldbricklemon/uplift-upsample-3dhpe ``eval.py``): windows are centred
on every s_out-th frame with the key-frame mask aligned to global frame indices (frame f has 2D input
iff ``f % s_in == 0``: ``uplift.keyframes``); the centre predictions are linearly interpolated to every
frame for the "all frames" figures, and read directly at the key frames for the "key frames" figures.
Human3.6M averages per action first, then over actions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from schemas.h36m import canonical_action
from schemas.store import JOINTS_CAM
from uplift.augment import flip_2d, flip_3d
from uplift.checkpoint import load_checkpoint
from uplift.config import PRECISIONS, check_choice
from uplift.corpora import open_corpora
from uplift.stream import StreamConfig, WindowStream
from uplift.distributed import pick_device
from uplift.keyframes import is_keyframe
from uplift.metrics import action_average, mpjpe, p_mpjpe, per_action

ALL_ACTIONS = "*"  # the ``action`` value of the protocol-average rows


def interpolate_lattice(pred: np.ndarray, frames: np.ndarray, n_frames: int) -> np.ndarray:
    """Predictions at some frames ``pred (K, J, 3)`` at sorted ``frames (K,)`` -> ``(n_frames, J, 3)``,
    linear in between, held constant past the first/last predicted frame."""
    t = np.arange(n_frames)
    flat = pred.reshape(len(pred), -1)
    out = np.empty((n_frames, flat.shape[1]), np.float64)
    for c in range(flat.shape[1]):
        out[:, c] = np.interp(t, frames, flat[:, c])
    return out.reshape((n_frames,) + pred.shape[1:]).astype(np.float32)


@torch.no_grad()
def _centre_predictions(model: nn.Module, stream: WindowStream, device, test_flip: bool, amp: bool,
                        progress=None):
    preds, views, frames = [], [], []
    for b in stream:
        x = b["keypoints_2d"].to(device)
        kf = b["keyframe"].to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            c = model(x, kf).center.float()
            if test_flip:
                c = 0.5 * (c + flip_3d(model(flip_2d(x), kf).center.float()))
        preds.append(c.cpu().numpy())
        views.append(b["view"].numpy())
        frames.append(b["frame"].numpy())
        if progress is not None:
            progress(len(b["view"]))
    return np.concatenate(preds), np.concatenate(views), np.concatenate(frames)


def _rows(err_mm: np.ndarray, perr_mm: np.ndarray, actions: np.ndarray, s_in: int, frames: str) -> list[dict]:
    rows = []
    by_a = per_action(err_mm, actions, normalise=None)
    by_pa = per_action(perr_mm, actions, normalise=None)
    for a in by_a:
        rows.append(dict(s_in=s_in, frames=frames, action=a, n=int((actions == a).sum()),
                         mpjpe_mm=by_a[a], p_mpjpe_mm=by_pa[a]))
    rows.append(dict(s_in=s_in, frames=frames, action=ALL_ACTIONS, n=int(len(err_mm)),
                     mpjpe_mm=action_average(err_mm, actions, normalise=None),
                     p_mpjpe_mm=action_average(perr_mm, actions, normalise=None)))
    return rows


def evaluate_model(model: nn.Module, sources, *, seq_len: int, s_out: int, s_in: Sequence[int],
                   batch_size: int = 256, test_flip: bool = True, root: int = 0, device=None,
                   split: str | Sequence[str] | None = "test", precision: str = "fp32", progress=None,
                   frame_step: int | None = None, **filters) -> list[dict]:
    """Metrics table (list of dicts) of ``model`` on the selected views of ``sources`` (specs or readers).

    One row per (s_in, frames in {"all", "key"}, action) plus an ``action == "*"`` row holding the
    protocol average (mean over actions of per-action means). Errors in millimetres; the action label
    is the base H36M action (``"Walking 1"`` -> ``"Walking"``); sequences without one count as ``"-"``.
    ``precision``: "fp32" (default: the figures the paper's differences are measured in) or "bf16"
    (autocast on CUDA, faster, heads still fp32).
    ``progress``: optional ``callback(done_windows, total_windows, {"s_in"})`` as batches finish.
    ``frame_step``: window centres every ``frame_step`` frames (a multiple of ``s_out``; None: every
    ``s_out``-th, the protocol), interpolated in between as always: cheaper, for validation.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    check_choice("precision", precision, PRECISIONS)
    amp = device.type == "cuda" and precision == "bf16"
    was_training = model.training
    model.eval()
    readers = open_corpora(sources)
    table: list[dict] = []
    try:
        for s in s_in:
            cfg = StreamConfig(seq_len=seq_len, s_out=s_out, s_in=(s,), batch_size=batch_size,
                               frame_step=frame_step or s_out)
            stream = WindowStream(readers, cfg, train=False, eval_s_in=s, split=split, **filters)
            if stream.num_windows == 0:
                continue
            done = [0]

            def tick(n, s=s, total=stream.num_windows):
                done[0] += n
                progress(done[0], total, {"s_in": s})

            with stream:  # open: the next group may load in a thread while this one is evaluated
                pred, view, frame = _centre_predictions(model, stream, device, test_flip, amp,
                                                        tick if progress is not None else None)
            vt = stream.views
            order = np.lexsort((frame, view))
            pred, view, frame = pred[order], view[order], frame[order]
            bounds = np.searchsorted(view, np.arange(vt.num_rows + 1))
            errs, perrs, acts, kerrs, kperrs, kacts = [], [], [], [], [], []
            for v in range(vt.num_rows):
                a, b = bounds[v], bounds[v + 1]
                if a == b:
                    continue
                n, off = int(vt["n_frames"][v].as_py()), int(vt["offset"][v].as_py())
                reader = readers[int(vt["corpus"][v].as_py())]  # the stream's parts follow the sources
                gt = np.asarray(reader.array(JOINTS_CAM)[off:off + n], np.float32)
                gt = gt - gt[:, root:root + 1]
                full = interpolate_lattice(pred[a:b], frame[a:b], n)
                action = canonical_action(vt["action"][v].as_py() or "-") if "action" in vt.column_names else "-"
                e, pe = mpjpe(full, gt, root) * 1000.0, p_mpjpe(full, gt) * 1000.0
                errs.append(e), perrs.append(pe), acts.append(np.full(n, action, object))
                key = is_keyframe(frame[a:b], s)
                if key.any():
                    kp, kg = pred[a:b][key], gt[frame[a:b][key]]
                    kerrs.append(mpjpe(kp, kg, root) * 1000.0), kperrs.append(p_mpjpe(kp, kg) * 1000.0)
                    kacts.append(np.full(int(key.sum()), action, object))
            table += _rows(np.concatenate(errs), np.concatenate(perrs), np.concatenate(acts), s, "all")
            if kerrs:
                table += _rows(np.concatenate(kerrs), np.concatenate(kperrs), np.concatenate(kacts), s, "key")
    finally:
        model.train(was_training)
    return table


def summary(table: list[dict], frames: str = "all") -> dict[str, float]:
    """``{"mpjpe_mm_s20": ..., "p_mpjpe_mm_s20": ...}`` from the protocol-average rows of a table."""
    out = {}
    for r in table:
        if r["action"] == ALL_ACTIONS and r["frames"] == frames:
            out[f"mpjpe_mm_s{r['s_in']}"] = r["mpjpe_mm"]
            out[f"p_mpjpe_mm_s{r['s_in']}"] = r["p_mpjpe_mm"]
    return out


def evaluate(checkpoint, corpus_spec, *, s_in: Sequence[int] | None = None, split: str | None = "test",
             subjects: Sequence[str] | None = None, batch_size: int = 256, test_flip: bool | None = None,
             use_ema: bool = True, device=None, precision: str = "fp32", progress=None) -> list[dict]:
    """Evaluate a checkpoint (run dir or checkpoint dir) on ``"PATH@VERSION"`` (or a reader / a list).

    ``s_in`` defaults to the checkpoint's training strides; ``subjects`` e.g. ``["S9", "S11"]``
    selects by subject instead of split (pass ``split=None``). Returns the table of ``evaluate_model``.
    """
    device = pick_device(device)
    ck = load_checkpoint(checkpoint, device=device)
    model = ck.weights_for_eval(use_ema)
    ucfg = ck.config
    filters = {} if subjects is None else {"subjects": list(subjects)}
    return evaluate_model(model, corpus_spec,
                          seq_len=ucfg.model.seq_len, s_out=ucfg.model.s_out,
                          s_in=list(s_in or ucfg.train.s_in), batch_size=batch_size,
                          test_flip=ucfg.train.test_flip if test_flip is None else test_flip,
                          root=ucfg.train.root_joint, device=device, split=split, precision=precision,
                          progress=progress, **filters)
