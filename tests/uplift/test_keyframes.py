"""Key-frame masks: phases, alignment to global frames, the official random phase, vectorised use."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.errors import ConfigError
from uplift.keyframes import draw_keyframes, keyframe_mask


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
