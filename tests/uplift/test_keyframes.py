"""Key frames: the masks (phases, alignment to global frames, the official random phase, vectorised use) and the
one rule training, evaluation and inference share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from schemas.errors import ConfigError
from schemas.reader import open_corpus
from uplift.evaluate import ALL_ACTIONS, evaluate_model
from uplift.infer import video_windows
from uplift.keyframes import draw_keyframes, draw_keyframes_coupled, is_keyframe, keyframe_mask
from uplift.metrics import keyframe_split
from uplift.model import UpliftOutput
from uplift.stream import StreamConfig, WindowStream


def test_keyframe_mask_phases():
    # offsets (k - 2) * 2 = [-4, -2, 0, 2, 4]
    assert keyframe_mask(5, 2, 4).tolist() == [True, False, True, False, True]
    assert keyframe_mask(5, 2, 4, shift=1).tolist() == [False, True, False, True, False]
    assert keyframe_mask(5, 2, 2).all()
    # n_out 9, s_out 2, s_in 4: every second token, centre (4) included
    assert keyframe_mask(9, 2, 4).tolist() == [True, False] * 4 + [True]
    assert keyframe_mask(9, 2, 4, shift=1).tolist() == [False, True] * 4 + [False]


def test_keyframe_mask_aligned_to_global_frames():
    # evaluation: aligned to the global frame index of the centre (frames 6, 8, 10, 12, 14)
    assert keyframe_mask(5, 2, 4, centre=10).tolist() == [False, True, False, True, False]
    # one token per window centred on frames -4, -3, 0, 5, 10: key frames iff f % 5 == 0
    centres = np.array([-4, -3, 0, 5, 10])
    assert keyframe_mask(1, 1, 5, centre=centres)[:, 0].tolist() == [False, False, True, True, True]


def test_keyframe_mask_vectorised_equals_per_window():
    s_in, shift = np.array([2, 4, 8, 4]), np.array([0, -1, 2, 1])
    got = keyframe_mask(7, 2, s_in, shift)
    assert got.shape == (4, 7)
    for i in range(4):
        assert got[i].tolist() == keyframe_mask(7, 2, int(s_in[i]), int(shift[i])).tolist()
    centre = np.array([3, 10, 11, 0])
    got = keyframe_mask(7, 2, s_in, centre=centre)
    for i in range(4):
        assert got[i].tolist() == keyframe_mask(7, 2, int(s_in[i]), centre=int(centre[i])).tolist()


def test_keyframe_mask_refuses_s_in_off_the_output_lattice():
    # The former scalar copy (uplift/keyframes.py) refused s_in not a multiple of s_out; the former
    # per-window copy (uplift/data.py) returned a mask on a lattice no 2D input lies on
    # ([F, F, T, F, F] for (5, 2, 5)). Refusing is right: no window of that stream can exist.
    with pytest.raises(ConfigError):
        keyframe_mask(9, 2, 5)
    with pytest.raises(ConfigError):
        keyframe_mask(5, 2, np.array([4, 5]), np.zeros(2, np.int64))
    with pytest.raises(ConfigError):
        keyframe_mask(5, 2, 0)


@pytest.mark.parametrize("m, phases", [(1, (0, 0)), (2, (-1, 0)), (3, (-1, 1)), (4, (-2, 1))])
def test_draw_keyframes_covers_the_official_phases(m, phases):
    # m = s_in / s_out phases, as in the official recipe: [-ceil((m-1)/2), floor(m/2)], one less on
    # the right for even m
    s_in, shift = draw_keyframes(np.random.default_rng(0), 400, [3 * m], 3)
    assert (s_in == 3 * m).all()
    assert set(shift.tolist()) == set(range(phases[0], phases[1] + 1))


def test_random_phase_puts_a_key_frame_on_the_centre_once_in_m_windows():
    # r = 4: shifts -2..1, each phase once -> the centre is a key frame ~1/4 of the time
    s_in, shift = draw_keyframes(np.random.default_rng(0), 2000, [4], 1)
    assert 0.2 < keyframe_mask(9, 1, s_in, shift)[:, 4].mean() < 0.3
    # no random phase (shift 0): the centre is always a key frame
    assert keyframe_mask(9, 1, np.full(20, 4), np.zeros(20, np.int64))[:, 4].all()


# ------------------------------------------------------------------------------------------------
# one rule for training, evaluation and inference

# (seq_len, s_out, s_in choices): the official N = 81 and N = 351 settings, and a small one
SETTINGS = [(81, 2, (4, 10, 20)), (351, 5, (5, 10, 20)), (9, 2, (2, 4))]


def _inference_masks(seq_len: int, s_out: int, s_in: int):
    """``uplift.infer``'s windows of a video long enough for every phase: key-frame masks (C, n_out) and
    their centre frames (C,)."""
    n_out = (seq_len - 1) // s_out + 1
    video = np.zeros((2 * seq_len + 2 * s_in, 17, 2), np.float32)
    _, kf, frames = video_windows(video, s_in, s_out, n_out)
    return kf, frames[:, n_out // 2]


@pytest.mark.parametrize("draw", ["uniform", "coupled"])
@pytest.mark.parametrize("seq_len, s_out, choices", SETTINGS)
def test_inference_windows_have_the_training_masks(draw, seq_len, s_out, choices):
    """A training window drawn with (s_in, shift) has the key frames of the inference window centred on a
    frame ``c`` with ``c = shift * s_out (mod s_in)``; under the uniform draw training meets every
    inference phase, under the coupled (released) one a subset of them."""
    n_out = (seq_len - 1) // s_out + 1
    if draw == "coupled":
        s_in, shift = draw_keyframes_coupled(3, 4000, choices, s_out)
    else:
        s_in, shift = draw_keyframes(np.random.default_rng(3), 4000, choices, s_out)
    train = keyframe_mask(n_out, s_out, s_in, shift)  # as uplift.batches cuts a training batch
    for v in choices:
        kf, centres = _inference_masks(seq_len, s_out, v)
        mine = np.flatnonzero(s_in == v)
        target = (shift[mine] * s_out) % v + v * (seq_len // v + 1)  # an inner window of the same phase
        k = np.searchsorted(centres, target)
        assert (centres[k] == target).all()
        np.testing.assert_array_equal(kf[k], train[mine])
        seen, phases = {r.tobytes() for r in train[mine]}, {r.tobytes() for r in kf}
        assert len(phases) == v // s_out  # the m phases of the lattice
        assert seen == phases if draw == "uniform" else seen <= phases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One 700-frame sequence with one stored view (values irrelevant: only key frames are read)."""
    from pipelines.writer import CorpusWriter
    from schemas.records import SequenceData, ViewData

    n = 700
    j = np.random.default_rng(0).normal(size=(n, 17, 3)).astype(np.float32)
    path = tmp_path_factory.mktemp("kf") / "c"
    w = CorpusWriter(path, num_joints=17, fps=50.0)
    w.add(SequenceData(key="h/0", source="h36m", joints_world=j, split="train", subject="S1", action="a",
                       views=[ViewData("h36m", "0", "S1", "gt", np.zeros((n, 17, 2), np.float32), j,
                                       np.ones((n, 17), bool), np.zeros(11), np.zeros((3, 4)))]))
    w.commit("kf", tag="v1")
    return f"{path}@v1"


@pytest.mark.parametrize("draw", ["uniform", "coupled"])
def test_stream_training_masks_are_inference_masks(corpus, draw):
    """The window stream's training batches (``keyframe_draw`` uniform or coupled) hold only key-frame masks
    that inference produces for the same (N, s_out, s_in); the uniform draw meets all of them."""
    seq_len, s_out, choices = SETTINGS[0]
    cfg = StreamConfig(seq_len=seq_len, s_out=s_out, s_in=choices, batch_size=128, block_frames=256,
                       buffer_blocks=4, keyframe_draw=draw)
    rows: dict[int, set] = {v: set() for v in choices}
    for b in WindowStream(corpus, cfg, split="train"):
        for key, v in zip(b["keyframe"].numpy(), b["s_in"].tolist()):
            rows[v].add(key.tobytes())
    for v in choices:
        phases = {r.tobytes() for r in _inference_masks(seq_len, s_out, v)[0]}
        assert rows[v] and (rows[v] == phases if draw == "uniform" else rows[v] <= phases)
    assert draw == "uniform" or len(rows[4]) == 1  # the released draw: s_in 4 always at phase -1


@pytest.mark.parametrize("s_in", [4, 10])
def test_evaluation_masks_equal_inference_masks(corpus, s_in):
    """Evaluation batches (key frames aligned to the sequence's frames) and inference on a video of the
    same length agree window by window (both centre a window on every s_out-th frame)."""
    seq_len, s_out, n = 81, 2, 700
    n_out = (seq_len - 1) // s_out + 1
    cfg = StreamConfig(seq_len=seq_len, s_out=s_out, s_in=(s_in,), batch_size=128, block_frames=256, buffer_blocks=4,
                       frame_step=s_out)  # as uplift.evaluate streams
    _, kf, frames = video_windows(np.zeros((n, 17, 2), np.float32), s_in, s_out, n_out)
    seen = []
    for b in WindowStream(corpus, cfg, train=False, eval_s_in=s_in, split="train"):
        centre = b["frame"].numpy()
        np.testing.assert_array_equal(frames[centre // s_out, n_out // 2], centre)
        np.testing.assert_array_equal(b["keyframe"].numpy(), kf[centre // s_out])
        seen += centre.tolist()
    assert sorted(seen) == list(range(0, n, s_out))  # every window inference cuts inside the video


def test_metrics_and_evaluation_split_frames_by_the_same_rule():
    frames = np.arange(-7, 40)
    for s_in in (2, 4, 5):
        ref = keyframe_mask(1, 1, s_in, centre=frames)[:, 0]  # one-token windows: the frame itself
        np.testing.assert_array_equal(is_keyframe(frames, s_in), ref)
        split = keyframe_split(frames.astype(float), frames, s_in)
        assert split["key"] == frames[ref].mean() and split["non_key"] == frames[~ref].mean()


class _Zero(torch.nn.Module):
    """Predicts every joint at the origin: its error at a frame is the mean root-relative joint norm there."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x2d, keyframes):
        centre = torch.zeros(x2d.shape[0], x2d.shape[2], 3)
        return UpliftOutput(centre[:, None].expand(-1, x2d.shape[1], -1, -1), centre)


def test_evaluation_key_rows_hold_the_key_frames(corpus):
    """``evaluate``'s "key" rows average the frames the rule calls key frames (the same ones as
    ``metrics.keyframe_split``), its "all" rows every frame."""
    s_in = 4
    table = evaluate_model(_Zero(), corpus, seq_len=81, s_out=2, s_in=[s_in], split="train", test_flip=False)
    gt = open_corpus(corpus).read_sequence("h/0")["joints_world"].astype(np.float64)  # = the view's joints_cam here
    err = np.linalg.norm(gt - gt[:, :1], axis=-1).mean(-1) * 1000.0
    ref = keyframe_split(err, np.arange(len(err)), s_in)
    row = {r["frames"]: r for r in table if r["action"] == ALL_ACTIONS}
    assert row["key"]["n"] == len(err[::s_in]) and row["all"]["n"] == len(err)
    assert row["key"]["mpjpe_mm"] == pytest.approx(ref["key"], rel=1e-5)
    assert row["all"]["mpjpe_mm"] == pytest.approx(ref["all"], rel=1e-5)
