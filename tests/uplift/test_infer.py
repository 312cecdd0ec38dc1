"""Sliding-window inference: window cutting, global key-frame alignment, edge padding, interpolation,
test-time flip averaging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uplift.config import TINY
from uplift.infer import infer_video, predict_centers, upsample_centers, video_windows, window_centers
from uplift.model import UpliftOutput, build_model


def _reference_window(video, centre, s_in, s_out, n_out):
    """Straightforward per-token construction, independent of the vectorised code."""
    t = len(video)
    keys = [f for f in range(t) if f % s_in == 0]
    win = np.zeros((n_out,) + video.shape[1:], dtype=np.float32)
    kf = np.zeros(n_out, dtype=bool)
    for i in range(n_out):
        f = centre + (i - n_out // 2) * s_out
        if f % s_in == 0:
            kf[i] = True
            nearest = min(max(f, keys[0]), keys[-1])  # edge padding with real key frames only
            win[i] = video[nearest]
    return win, kf


def test_window_centers_cover_video():
    assert window_centers(11, 5).tolist() == [0, 5, 10]
    assert window_centers(12, 5).tolist() == [0, 5, 10, 15]
    assert window_centers(1, 2).tolist() == [0]


@pytest.mark.parametrize("t, s_in", [(23, 4), (40, 8), (5, 2)])
def test_video_windows_match_reference(t, s_in):
    rng = np.random.default_rng(t)
    video = rng.normal(size=(t, 17, 2)).astype(np.float32)
    s_out, n_out = 2, 9
    windows, kf, frames = video_windows(video, s_in, s_out, n_out)
    for k, c in enumerate(window_centers(t, s_out)):
        ref_w, ref_kf = _reference_window(video, c, s_in, s_out, n_out)
        np.testing.assert_array_equal(kf[k], ref_kf)
        np.testing.assert_array_equal(windows[k], ref_w)
        assert frames[k, n_out // 2] == c
    # key frames are aligned to the video, not to the window
    np.testing.assert_array_equal(kf, frames % s_in == 0)


def test_upsample_centers_is_exact_for_linear_motion():
    s_out, t = 5, 23
    centers = window_centers(t, s_out)
    slope, offset = np.full((17, 3), 0.01), np.linspace(0, 1, 51).reshape(17, 3)
    poses = centers[:, None, None] * slope + offset
    up = upsample_centers(poses, s_out, t)
    expected = np.arange(t)[:, None, None] * slope + offset
    np.testing.assert_allclose(up, expected, atol=1e-6)
    assert up.shape == (t, 17, 3) and up.dtype == np.float32
    with pytest.raises(ValueError):
        upsample_centers(poses[:2], s_out, t)


def test_infer_video_matches_per_window_model_calls_and_ignores_missing_2d():
    model = build_model(TINY, seed=0).eval()
    s_in, s_out, n_out, t = 4, TINY.model.s_out, TINY.model.n_out, 19
    rng = np.random.default_rng(0)
    video = rng.normal(size=(t, 17, 2)).astype(np.float32)
    video[np.arange(t) % s_in != 0] = np.nan  # no 2D between key frames
    out = infer_video(model, video, s_in, test_flip=False)
    assert out.shape == (t, 17, 3) and np.isfinite(out).all()
    with torch.no_grad():
        for c in window_centers(t, s_out):
            w, kf = _reference_window(np.nan_to_num(video), c, s_in, s_out, n_out)
            ref = model(torch.from_numpy(w)[None], torch.from_numpy(kf)[None]).center[0].numpy()
            if c < t:
                np.testing.assert_allclose(out[c], ref, atol=1e-5)
    # in between two centres: the average of their predictions
    np.testing.assert_allclose(out[1], 0.5 * (out[0] + out[2]), atol=1e-6)


class _BiasedLifter(torch.nn.Module):
    """Lifts each joint to (x, y, 1) and adds a bias to X: flip averaging must cancel the bias."""

    def __init__(self, n_out):
        super().__init__()
        self.cfg = TINY.model
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.n_out = n_out

    def forward(self, x2d, keyframes):
        centre = x2d[:, self.n_out // 2]
        lifted = torch.cat([centre, torch.ones_like(centre[..., :1])], dim=-1)
        lifted[..., 0] += 0.25
        return UpliftOutput(lifted[:, None].expand(-1, self.n_out, -1, -1), lifted)


def test_test_time_flip_averaging_cancels_asymmetric_bias():
    n_out = TINY.model.n_out
    model = _BiasedLifter(n_out)
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(3, n_out, 17, 2)).astype(np.float32)
    kf = np.ones((3, n_out), dtype=bool)
    centre = windows[:, n_out // 2]
    plain = predict_centers(model, windows, kf, test_flip=False)
    np.testing.assert_allclose(plain[..., 0], centre[..., 0] + 0.25, atol=1e-6)
    avg = predict_centers(model, windows, kf, test_flip=True)
    np.testing.assert_allclose(avg[..., :2], centre, atol=1e-6)  # bias gone, joints back in place
    # with a principal point: x -> 2 c_x - x on the way in, X -> -X on the way out
    c_x = 0.1
    avg_pp = predict_centers(model, windows, kf, test_flip=True, principal_point=np.array([c_x, 0.0]))
    # flipped branch gives X = -(2 c_x - x + 0.25) after unflipping, so the mean is x - c_x
    np.testing.assert_allclose(avg_pp[..., 0], centre[..., 0] - c_x, atol=1e-6)


def test_model_side_imports_no_pipelines():
    """Arrows one way: reading 2D files, pixels and drawing live in ``flows``; ``uplift`` never needs ``pipelines``."""
    import os
    import subprocess
    import sys

    code = "import sys, uplift.infer, uplift.showcase; sys.exit(any(m.split('.')[0] == 'pipelines' for m in sys.modules))"
    env = dict(os.environ)  # the installed package, as a user runs it
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


def test_input_stride_rule_is_checked_in_one_place():
    """``infer_video`` and the checkpoint path (``resolve_s_in``) refuse the same strides the same way.
    (They were two copies: a ValueError here that let ``s_in = 0`` through to a modulo by zero, and a
    ConfigError in the file path.)"""
    from schemas.errors import ConfigError
    from uplift.config import check_s_in

    model = build_model(TINY, seed=0).eval()
    video = np.zeros((9, 17, 2), np.float32)
    for bad in (0, -2, TINY.model.s_out + 1):
        with pytest.raises(ConfigError, match="positive multiple"):
            infer_video(model, video, bad)
    assert check_s_in(2 * TINY.model.s_out, TINY.model.s_out) == 2 * TINY.model.s_out
