"""Pictures of a checkpoint at work: the prediction drawn over the ground truth for the median and the
worst window of an evaluation split (what ``evaluate`` publishes next to its metrics table).

Every selected view is uplifted whole with ``uplift.infer.infer_video`` (the same sliding window as
``mocap-corpus infer``) at one input stride; its frames are cut into consecutive windows of
``seq_len`` frames, each scored by its mean MPJPE (root-relative, mm). The window with the median
score and the one with the highest are drawn with ``pipelines.render`` (ground truth solid, prediction
dashed green), so a reader sees both the typical case and the failure mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.cameras import denormalize_pixels
from pipelines.render import Clip, camera_to_display, write
from uplift.windows import select_views
from uplift.infer import infer_video
from uplift.metrics import mpjpe


@dataclass
class Window:
    """One scored window: view ``view_id`` of sequence ``key``, frames ``[start, stop)``, MPJPE in mm."""

    key: str
    view_id: int
    start: int
    stop: int
    mpjpe_mm: float


def score_windows(model, reader, *, s_in: int, seq_len: int, root: int = 0, split: str | None = "test",
                  max_views: int = 32, test_flip: bool = True) -> tuple[list[Window], dict]:
    """Score every ``seq_len``-frame window of up to ``max_views`` views (in manifest order).

    Returns the windows and ``{view_id: (pred (T, J, 3), gt (T, J, 3))}`` root-relative camera-frame metres.
    """
    views = select_views(reader.sequences, reader.views, split=split)
    windows: list[Window] = []
    cache = {}
    for row in views.slice(0, max_views).to_pylist():
        vid = int(row["view_id"])
        v = reader.read_view(vid)
        gt = np.asarray(v["joints_cam"], np.float32)
        gt = gt - gt[:, root:root + 1]
        pred = infer_video(model, np.asarray(v["keypoints_2d"], np.float32), s_in, test_flip=test_flip)
        pred = pred - pred[:, root:root + 1]
        err = mpjpe(pred, gt, root) * 1000.0  # (T,)
        cache[vid] = (pred, gt)
        n = len(gt)
        for a in range(0, max(n - seq_len, 0) + 1, seq_len):
            b = min(a + seq_len, n)
            windows.append(Window(row["key"], vid, a, b, float(err[a:b].mean())))
    return windows, cache


def median_and_worst(windows: list[Window]) -> dict[str, Window]:
    """``{"median": ..., "worst": ...}`` by MPJPE (the lower median for an even count)."""
    if not windows:
        return {}
    order = sorted(windows, key=lambda w: (w.mpjpe_mm, w.key, w.view_id, w.start))
    return {"median": order[(len(order) - 1) // 2], "worst": order[-1]}


def window_clip(reader, w: Window, pred: np.ndarray, gt: np.ndarray, label: str) -> Clip:
    """A render ``Clip`` of one window: 2D in pixels, ground truth and prediction in display axes."""
    v = reader.read_view(w.view_id, w.start, w.stop)
    intr, _ = reader.camera(w.view_id)
    res = (float(intr[9]), float(intr[10]))
    return Clip(keypoints_px=denormalize_pixels(np.asarray(v["keypoints_2d"]), *res),
                in_view=np.asarray(v["in_view"], bool), res=res,
                joints=camera_to_display(gt[w.start:w.stop]), pred=camera_to_display(pred[w.start:w.stop]),
                frames=np.arange(w.start, w.stop),
                title=f"{label} window: {w.key} view {w.view_id}, frames {w.start}-{w.stop - 1}, "
                      f"MPJPE {w.mpjpe_mm:.1f} mm (solid: ground truth, dashed: prediction)",
                label=f"{label} ")


def render_median_and_worst(checkpoint, corpus_spec: str, out_dir: str | os.PathLike, *, s_in: int | None = None,
                            split: str | None = "test", max_views: int = 32, device=None) -> dict[str, dict]:
    """Write ``median.png`` and ``worst.png`` under ``out_dir``; returns ``{name: {"path", "window"...}}``.

    ``s_in`` defaults to the checkpoint's largest training stride; an empty split writes nothing.
    """
    from schemas.reader import open_corpus
    from uplift.infer import default_s_in
    from uplift.train import load_checkpoint, pick_device

    ck = load_checkpoint(checkpoint, device=pick_device(device))
    model = ck.ema_model if ck.ema_model is not None else ck.model
    cfg = ck.config
    s = default_s_in(cfg) if s_in is None else int(s_in)
    reader = open_corpus(corpus_spec)
    windows, cache = score_windows(model, reader, s_in=s, seq_len=cfg.model.seq_len, root=cfg.train.root_joint,
                                   split=split, max_views=max_views, test_flip=cfg.train.test_flip)
    out = {}
    for name, w in median_and_worst(windows).items():
        pred, gt = cache[w.view_id]
        path = write(window_clip(reader, w, pred, gt, name), Path(out_dir) / f"{name}.png")
        out[name] = {"path": str(path), "key": w.key, "view_id": w.view_id, "frames": [w.start, w.stop],
                     "mpjpe_mm": w.mpjpe_mm, "s_in": s}
    return out
