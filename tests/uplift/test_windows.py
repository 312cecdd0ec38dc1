"""Window geometry against the official padding, and the loader position after k batches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uplift.windows import round_robin_skip, window_indices


def official_window(video: np.ndarray, i: int, seq_len: int, stride: int):
    """The official generator's slicing + np.pad("edge") for one centre, written out independently."""
    left = (seq_len - 1) * stride // 2
    right = (seq_len - 1) * stride - left
    begin, end = i - left, i + right + 1
    pad_left = pad_right = 0
    if begin < 0:
        pad_left = math.ceil(-begin / stride)
        begin = begin + pad_left * stride
    if end > len(video):
        pad_right = math.ceil((end - len(video)) / stride)
        end = end - pad_right * stride
    seq = video[begin:end:stride]
    mask = np.pad(np.ones(len(seq)), (pad_left, pad_right))
    return np.pad(seq, (pad_left, pad_right), mode="edge"), mask.astype(bool)


def test_window_indices_by_hand():
    idx, ok = window_indices(0, 10, 5, 2)
    assert idx.tolist() == [0, 0, 0, 2, 4] and ok.tolist() == [False, False, True, True, True]
    idx, ok = window_indices(1, 10, 5, 2)
    assert idx.tolist() == [1, 1, 1, 3, 5]
    idx, ok = window_indices(8, 10, 5, 2)  # last lattice frame is 8, not 9
    assert idx.tolist() == [4, 6, 8, 8, 8] and ok.tolist() == [True, True, True, False, False]
    idx, ok = window_indices(9, 10, 5, 2)
    assert idx.tolist() == [5, 7, 9, 9, 9]
    idx, ok = window_indices(0, 1, 3, 5)  # one-frame sequence
    assert idx.tolist() == [0, 0, 0] and ok.tolist() == [False, True, False]


@pytest.mark.parametrize("n,n_out,s", [(10, 5, 2), (37, 9, 3), (3, 7, 5), (100, 11, 5)])
def test_window_indices_match_official_padding(n, n_out, s):
    video = np.arange(n)
    t = np.arange(n)
    idx, ok = window_indices(t, n, n_out, s)
    for i in range(n):
        ref, mask = official_window(video, i, n_out, s)
        assert idx[i].tolist() == ref.tolist(), i
        assert ok[i].tolist() == mask.tolist(), i


def test_round_robin_skip():
    assert round_robin_skip(0, [3, 1]) == ([0, 0], 0)
    assert round_robin_skip(1, [3, 1]) == ([1, 0], 1)
    assert round_robin_skip(3, [3, 1]) == ([2, 1], 0)
    assert round_robin_skip(4, [3, 1]) == ([3, 1], 0)
    assert round_robin_skip(5, [2, 4, 1]) == ([2, 2, 1], 1)
    assert round_robin_skip(4, [2, 4, 1]) == ([2, 1, 1], 1)
