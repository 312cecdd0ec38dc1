"""pipelines.render: left/right colours, out-of-view marks, facing direction, frame ranges, corpus clips."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from schemas.reader import CorpusReader  # noqa: E402
from pipelines.writer import CorpusWriter
from pipelines.render import (Clip, LEFT_COLOUR, RIGHT_COLOUR, _draw_2d, corpus_clip, facing_azimuth,  # noqa: E402
                              joint_colours, parse_frames, write)
from schemas.errors import InputError  # noqa: E402
from schemas.skeletons import H36M_17  # noqa: E402
from benchmarks.harness.corpus_fixtures import make_seq  # noqa: E402


def test_left_is_blue_right_is_orange():
    c = joint_colours(H36M_17)
    for name in ("l_hip", "l_knee", "l_ankle", "l_shoulder", "l_elbow", "l_wrist"):
        assert c[H36M_17.index(name)] == LEFT_COLOUR, name
    for name in ("r_hip", "r_knee", "r_ankle", "r_shoulder", "r_elbow", "r_wrist"):
        assert c[H36M_17.index(name)] == RIGHT_COLOUR, name
    assert c[H36M_17.index("pelvis")] not in (LEFT_COLOUR, RIGHT_COLOUR)


def test_facing_azimuth_follows_the_hips():
    j = np.zeros((17, 3))
    # facing +y with z up: the subject's left is -x
    j[H36M_17.index("l_hip")], j[H36M_17.index("r_hip")] = (-0.1, 0, 0), (0.1, 0, 0)
    assert facing_azimuth(j) == pytest.approx(90.0)
    j[H36M_17.index("l_hip")], j[H36M_17.index("r_hip")] = (0, -0.1, 0), (0, 0.1, 0)  # facing -x
    assert abs(facing_azimuth(j)) == pytest.approx(180.0)


def test_out_of_view_joints_are_marked_with_x():
    px = np.full((1, 17, 2), 500.0) + np.arange(17)[None, :, None]
    px[0, 13] = (1200.0, 300.0)  # left wrist beyond the right edge
    in_view = np.ones((1, 17), bool)
    in_view[0, 13] = False
    clip = Clip(keypoints_px=px, in_view=in_view, res=(1000.0, 1002.0), joints=np.zeros((1, 17, 3)),
                frames=np.arange(1))
    fig, ax = plt.subplots()
    _draw_2d(ax, clip, 0)
    marked = [c for c in ax.collections if c.get_label() == "out of view"]
    assert len(marked) == 1 and np.array_equal(marked[0].get_offsets(), [[1200.0, 300.0]])
    x0, x1 = ax.get_xlim()
    assert x0 < 0 and x1 >= 1000  # the whole image rectangle is shown
    plt.close(fig)
    # without stored flags, the image rectangle decides
    clip.in_view = None
    fig, ax = plt.subplots()
    _draw_2d(ax, clip, 0)
    marked = [c for c in ax.collections if c.get_label() == "out of view"]
    assert len(marked) == 1 and np.array_equal(marked[0].get_offsets(), [[1200.0, 300.0]])
    plt.close(fig)


def test_parse_frames():
    assert parse_frames(None, 10) == slice(0, 10)
    assert parse_frames("2:5", 10) == slice(2, 5)
    assert parse_frames(":3", 10) == slice(0, 3)
    assert parse_frames("-4:", 10) == slice(6, 10)
    assert parse_frames("7", 10) == slice(7, 8)
    for bad in ("5:2", "x:y", "20:30"):
        with pytest.raises(InputError):
            parse_frames(bad, 10)


def test_corpus_clip_reads_the_chosen_view_in_pixels(tmp_path):
    rng = np.random.default_rng(3)
    seq = make_seq(rng, "D/s/a", 30, n_views=3)
    with CorpusWriter(tmp_path / "c") as w:
        w.add(seq)
        w.commit("one")
    r = CorpusReader.open(tmp_path / "c")
    clip = corpus_clip(r, "D/s/a", view=2, frames="5:12")
    v = seq.views[2]
    w_px, h_px = v.intrinsics[9], v.intrinsics[10]
    uv = v.keypoints_2d[5:12].astype(np.float64)
    assert np.allclose(clip.keypoints_px[..., 0], (uv[..., 0] + 1) * w_px / 2)
    assert np.allclose(clip.keypoints_px[..., 1], (uv[..., 1] + h_px / w_px) * w_px / 2)
    assert np.array_equal(clip.in_view, v.in_view[5:12])
    assert np.array_equal(clip.joints, seq.joints_world[5:12].astype(np.float64))
    assert clip.frames.tolist() == list(range(5, 12)) and "cam2" in clip.title
    with pytest.raises(InputError, match="--view 3"):
        corpus_clip(r, "D/s/a", view=3)
    with pytest.raises(InputError, match="no sequence"):
        corpus_clip(r, "D/s/b")
    with pytest.raises(InputError, match=r"\.jpg"):
        write(clip, tmp_path / "x.jpg")
