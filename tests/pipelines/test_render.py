"""pipelines.render: left/right colours, out-of-view marks, facing direction, frame ranges, corpus clips."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from schemas.reader import CorpusReader  # noqa: E402
from pipelines.writer import CorpusWriter
from pipelines.render import (Clip, LEFT_COLOUR, RIGHT_COLOUR, _draw_2d, camera_note, clip_azimuth,  # noqa: E402
                              corpus_clip, facing_azimuth, joint_colours, parse_frames, playback, view_box, write)
from schemas.errors import InputError  # noqa: E402
from schemas.skeletons import H36M_17  # noqa: E402
from tests.support.corpus_fixtures import make_seq  # noqa: E402


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
    assert x0 < 500 and x1 > 1200  # the person, the joint out of view and the image's right edge
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


def _turning_body(T: int = 40) -> np.ndarray:
    """(T, 17, 3): hips turning a quarter turn over the clip, z up."""
    j = np.zeros((T, 17, 3))
    ang = np.linspace(0, np.pi / 2, T)
    j[:, H36M_17.index("l_hip"), :2] = np.stack([-0.1 * np.cos(ang), -0.1 * np.sin(ang)], -1)
    j[:, H36M_17.index("r_hip"), :2] = -j[:, H36M_17.index("l_hip"), :2]
    return j


def test_one_3d_view_per_clip_whatever_the_body_does():
    """The 3D panels keep one azimuth for the whole clip (the axes used to swing with the hips)."""
    j = _turning_body()
    clip = Clip(keypoints_px=None, in_view=None, res=(1000.0, 1000.0), joints=j, frames=np.arange(len(j)))
    per_frame = [facing_azimuth(x) for x in j]
    assert max(per_frame) - min(per_frame) > 80  # the body turns ...
    assert clip.azimuth == pytest.approx(clip_azimuth(j)) == pytest.approx(float(np.mean(per_frame)), abs=1.0)
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    from pipelines.render import _draw_3d

    seen = set()
    for i in (0, len(j) // 2, len(j) - 1):
        _draw_3d(ax, clip, i, 10.0, 0.0)
        seen.add(round(ax.azim, 6))
    assert len(seen) == 1  # ... the view does not
    plt.close(fig)


def test_playback_is_real_time():
    assert playback(50.0) == (25.0, 2)  # 50 Hz: every 2nd frame at 25 frames/s, not every frame at 25
    assert playback(25.0) == (25.0, 1)
    assert playback(120.0) == (24.0, 5)
    assert playback(10.0) == (10.0, 1)
    with pytest.raises(InputError):
        playback(0.0)


def test_gif_frame_durations_follow_the_source_rate(tmp_path):
    from PIL import Image

    j = _turning_body(12)
    clip = Clip(keypoints_px=None, in_view=None, res=(1000.0, 1000.0), joints=j, frames=np.arange(len(j)))
    seen = []
    write(clip, tmp_path / "a.gif", source_fps=50.0, progress=lambda d, n: seen.append((d, n)))
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 6 and gif.info["duration"] == 40  # 12 frames at 50 Hz last 0.24 s
    assert seen[-1] == (6, 6) and [d for d, _ in seen] == list(range(1, 7))


def test_small_figure_is_zoomed_to_the_person():
    """A person filling ~20 % of a 1000 px image fills most of the 2D panel (it was drawn at 20 %)."""
    px = np.zeros((3, 17, 2))
    px[..., 0] = 450 + 100 * np.linspace(0, 1, 17)  # 100 px wide
    px[..., 1] = 400 + 200 * np.linspace(0, 1, 17)  # 200 px tall
    lo, hi = view_box(px, (1000.0, 1000.0))
    side = (hi - lo)[0]
    assert (hi - lo)[0] == (hi - lo)[1] and 200 / side > 0.6  # square, the figure over 60 % of its height
    assert lo[0] < 450 and hi[0] > 550 and lo[1] < 400 and hi[1] > 600


def test_ceiling_cameras_are_labelled():
    from schemas.cameras import h36m_camera, mpi_inf_3dhp_camera

    notes = {i: camera_note(mpi_inf_3dhp_camera(i).extrinsics_matrix()) for i in range(14)}
    assert {i for i, n in notes.items() if "upside down" in n} == {11, 12, 13}
    assert all(camera_note(h36m_camera("S1", c).extrinsics_matrix()) == "" for c in range(4))
