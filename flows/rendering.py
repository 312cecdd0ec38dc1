"""Pictures of a checkpoint at work: the prediction drawn over the ground truth for the median and the
worst window of an evaluation split (``mocap-corpus evaluate --render`` and the ``evaluate`` flow).

Plain functions (no Prefect). ``uplift.showcase`` picks the windows and returns their arrays; this
module converts the 2D to pixels and draws with ``pipelines.render`` (ground truth solid, prediction
dashed green).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipelines.render import Clip, camera_to_display, write
from schemas.cameras import denormalize_pixels


def window_clip(shown, label: str) -> Clip:
    """A render ``Clip`` of one ``uplift.showcase.ShownWindow``: 2D in pixels, 3D in display axes."""
    w = shown.window
    return Clip(keypoints_px=denormalize_pixels(shown.keypoints_2d, *shown.res), in_view=shown.in_view,
                res=shown.res, joints=camera_to_display(shown.gt), pred=camera_to_display(shown.pred),
                frames=np.arange(w.start, w.stop),
                title=f"{label} window: {w.key} view {w.view_id}, frames {w.start}-{w.stop - 1}, "
                      f"MPJPE {w.mpjpe_mm:.1f} mm (solid: ground truth, dashed: prediction)",
                label=f"{label} ")


def render_median_and_worst(checkpoint, corpus_spec: str, out_dir: str | os.PathLike, *, s_in: int | None = None,
                            split: str | None = "test", max_views: int = 32, device=None) -> dict[str, dict]:
    """Write ``median.png`` and ``worst.png`` under ``out_dir``; returns ``{name: {"path", "key", "view_id",
    "frames", "mpjpe_mm", "s_in"}}``. An empty split writes nothing."""
    from uplift.showcase import median_and_worst_windows

    shown = median_and_worst_windows(checkpoint, corpus_spec, s_in=s_in, split=split, max_views=max_views,
                                     device=device)
    out = {}
    for name, sw in shown.items():
        w = sw.window
        path = write(window_clip(sw, name), Path(out_dir) / f"{name}.png")
        out[name] = {"path": str(path), "key": w.key, "view_id": w.view_id, "frames": [w.start, w.stop],
                     "mpjpe_mm": w.mpjpe_mm, "s_in": sw.s_in}
    return out
