"""A checkpoint at work: the median and the worst window of an evaluation split (what ``evaluate``
publishes next to its metrics table, drawn by ``flows.rendering``).

Every selected view is uplifted whole with ``uplift.infer.infer_video`` (the same sliding window as
``mocap-corpus infer``) at one input stride; its frames are cut into consecutive windows of
``seq_len`` frames, each scored by its mean MPJPE (root-relative, mm). The window with the median
score and the one with the highest are returned with their arrays, so a reader sees both the typical
case and the failure mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


@dataclass
class ShownWindow:
    """A window with what a picture of it needs. W = stop - start frames, J joints.

    pred, gt: (W, J, 3) root-relative camera-frame metres; keypoints_2d: (W, J, 2) normalised (the
    corpus convention); in_view: (W, J) bool; res: the camera's (width, height) in pixels.
    """

    window: Window
    s_in: int
    pred: np.ndarray
    gt: np.ndarray
    keypoints_2d: np.ndarray
    in_view: np.ndarray
    res: tuple[float, float]


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


def show_window(reader, w: Window, pred: np.ndarray, gt: np.ndarray, s_in: int) -> ShownWindow:
    """Cut one window's arrays from a whole view's ``pred``/``gt`` (T, J, 3) and its stored 2D."""
    v = reader.read_view(w.view_id, w.start, w.stop)
    intr, _ = reader.camera(w.view_id)
    return ShownWindow(window=w, s_in=s_in, pred=pred[w.start:w.stop], gt=gt[w.start:w.stop],
                       keypoints_2d=np.asarray(v["keypoints_2d"]), in_view=np.asarray(v["in_view"], bool),
                       res=(float(intr[9]), float(intr[10])))


def median_and_worst_windows(checkpoint, corpus_spec: str, *, s_in: int | None = None, split: str | None = "test",
                             max_views: int = 32, device=None) -> dict[str, ShownWindow]:
    """``{"median": ShownWindow, "worst": ShownWindow}`` of a checkpoint on a corpus version (empty for
    an empty split). ``s_in`` defaults to the checkpoint's largest training stride."""
    from schemas.reader import open_corpus
    from uplift.infer import default_s_in
    from uplift.checkpoint import load_checkpoint
    from uplift.distributed import pick_device

    ck = load_checkpoint(checkpoint, device=pick_device(device))
    model = ck.weights_for_eval()
    cfg = ck.config
    s = default_s_in(cfg) if s_in is None else int(s_in)
    reader = open_corpus(corpus_spec)
    windows, cache = score_windows(model, reader, s_in=s, seq_len=cfg.model.seq_len, root=cfg.train.root_joint,
                                   split=split, max_views=max_views, test_flip=cfg.train.test_flip)
    return {name: show_window(reader, w, *cache[w.view_id], s) for name, w in median_and_worst(windows).items()}
