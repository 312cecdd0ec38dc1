"""Key frames: which frames, and so which tokens of a window, carry a 2D input. The one rule for
training (``uplift.batches``), evaluation (``uplift.batches``, ``uplift.evaluate``, ``uplift.metrics``)
and inference (``uplift.infer``).

A window has ``n_out`` tokens spaced ``s_out`` frames apart around its centre (``window_frames``);
``s_in`` (a multiple of ``s_out``) is the spacing of the frames that have 2D input: frame ``f`` is a key
frame iff ``f % s_in == 0`` (``is_keyframe``), so every ``m = s_in / s_out``-th token is one
(``keyframe_mask``). Evaluation and inference read that lattice off the video (``centre=`` the window's
centre frame); training moves it by a random phase in tokens (``shift``, the official augmentation),
which is the same mask as a window centred on frame ``shift * s_out``: every phase training draws is one
that inference meets (tests/uplift/test_keyframes.py).

Two ways to draw ``(s_in, phase)`` per training window (``TrainConfig.keyframe_draw``):

* ``"uniform"`` (``draw_keyframes``): s_in uniform over the choices, the phase uniform over its
  ``m = s_in / s_out`` values, independently.
* ``"coupled"`` (``draw_keyframes_coupled``): the authors' released generators. The s_in draw and
  the phase draw come from two numpy generators created with the same seed, each taking one
  bounded-integer draw a window (numpy's ``Generator.integers``: Lemire's method on one 32-bit
  output), except that a phase with one value (m = 1) takes none. So both read the same stream of
  32-bit values: in lockstep while no window has m = 1, and with the phase stream falling behind by
  one at every m = 1 window. For N = 81 (s_out 2, s_in 4/10/20: m = 2/5/10) they stay in lockstep
  and the phase is a function of the s_in draw: s_in 4 always -1 (the centre is never a key frame),
  s_in 10 -1/0/+1 with 0.2/0.6/0.2, s_in 20 1..4 (0.1/0.3/0.3/0.3). For N = 351 (m = 1/2/4) the
  streams drift apart and both draws are uniform.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uplift.config import check_s_in


def is_keyframe(frames, s_in) -> np.ndarray:
    """The key-frame rule: frame ``f`` has 2D input iff ``f % s_in == 0``. Bool, ``frames`` and ``s_in``
    broadcast together (``frames (..., n_out)`` with ``s_in (..., 1)``, or ``(F,)`` with an int)."""
    return np.asarray(frames) % s_in == 0


def window_frames(n_out: int, s_out: int, centre: np.ndarray | int = 0) -> np.ndarray:
    """Frame ``(..., n_out)`` int64 of each token of the windows centred on ``centre (...)``:
    ``centre + (i - n_out // 2) * s_out`` (may lie outside the video)."""
    return np.asarray(centre, dtype=np.int64)[..., None] + (np.arange(n_out, dtype=np.int64) - n_out // 2) * s_out


def keyframe_mask(n_out: int, s_out: int, s_in: np.ndarray | int, shift: np.ndarray | int = 0,
                  centre: np.ndarray | int | None = None) -> np.ndarray:
    """Key-frame mask ``(..., n_out)`` bool, vectorised over ``s_in``, ``shift`` and ``centre`` ``(...)``.

    Token ``i`` is a key frame when its frame ``(i - n_out // 2 + shift) * s_out (+ centre)`` is
    (``is_keyframe``). ``shift`` (in tokens) moves the key-frame lattice (training); ``centre`` aligns it
    to the global frame index of the window centre (evaluation, inference). An ``s_in`` that is not a
    multiple of ``s_out`` raises ``ConfigError``.
    """
    # The two former copies differed here: the per-window one accepted any s_in and then marked
    # tokens on a lattice no 2D input lies on; now it is refused (tests/uplift/test_keyframes.py).
    s_in = np.asarray(check_s_in(s_in, s_out), dtype=np.int64)
    lattice = np.asarray(shift, dtype=np.int64) * s_out
    if centre is not None:
        lattice = lattice + np.asarray(centre, dtype=np.int64)
    return is_keyframe(window_frames(n_out, s_out, lattice), s_in[..., None])


def draw_keyframes(rng: np.random.Generator, n: int, s_in_choices: Sequence[int], s_out: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-window ``s_in (n,)`` drawn from the choices and a phase ``shift (n,)`` in tokens.

    The shift is uniform over the ``m = s_in / s_out`` phases ``-ceil((m-1)/2) .. floor(m/2)`` (one
    less on the right for even m), as the official recipe draws it: the centre is a key frame in 1 of
    m windows.
    """
    choices = np.asarray(s_in_choices, dtype=np.int64)
    s_in = choices[rng.integers(0, len(choices), size=n)]
    m = s_in // s_out
    low = -np.ceil((m - 1) / 2).astype(np.int64)
    shift = low + (rng.random(n) * m).astype(np.int64)  # uniform over the m phases
    return s_in, shift


# numpy's Generator.integers for a range of k < 2**32 values: one 32-bit output u, the product
# u * k; its high 32 bits are the draw, and the draw is rejected (another u taken) when the low 32
# bits fall below (2**32 - k) % k. Vectorised here on one stream of 32-bit outputs.


def _lemire(u: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``(u * k) >> 32`` ``(n,)`` and whether numpy would have rejected any of them."""
    prod = u.astype(np.uint64) * k.astype(np.uint64)
    low = prod & np.uint64(0xFFFFFFFF)
    threshold = (np.uint64(2**32) - k.astype(np.uint64)) % k.astype(np.uint64)
    return (prod >> np.uint64(32)).astype(np.int64), bool((low < threshold).any())


def _coupled_loop(seed: int, n: int, choices: np.ndarray, s_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-window form of ``draw_keyframes_coupled`` (two generators, one draw each a window);
    used when a draw of the vectorised form would have been rejected (about 1 in 10**9 windows)."""
    stride_rng, shift_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    s_in, shift = np.empty(n, np.int64), np.empty(n, np.int64)
    for i in range(n):
        s_in[i] = choices[stride_rng.integers(0, len(choices))]
        m = int(s_in[i]) // s_out
        low = -(m // 2)  # -ceil((m - 1) / 2)
        shift[i] = low + shift_rng.integers(0, m) if m > 1 else 0
    return s_in, shift


def draw_keyframes_coupled(seed: int, n: int, s_in_choices: Sequence[int], s_out: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    """``s_in (n,)`` and phase ``shift (n,)`` (tokens) as the released code draws them for ``n``
    consecutive windows from two generators seeded with ``seed`` (see the module doc); the phase of
    s_in = m * s_out lies in ``-ceil((m-1)/2) .. floor(m/2)`` (one less on the right for even m), as
    in ``draw_keyframes``. Equal to running the two generators window by window."""
    choices = np.asarray(check_s_in(tuple(s_in_choices), s_out), dtype=np.int64)
    u = np.random.default_rng(seed).integers(0, 2**32, size=n, dtype=np.uint32)  # the shared stream
    idx, rejected = _lemire(u, np.full(n, len(choices), np.int64))
    s_in = choices[idx]
    m = s_in // s_out
    draws = m > 1  # a one-value range takes no output from the phase generator
    pos = np.cumsum(draws) - 1  # which output of the stream each phase draw reads
    ph, rejected_ph = _lemire(u[pos[draws]], m[draws])
    if rejected or rejected_ph:
        return _coupled_loop(seed, n, choices, s_out)
    shift = np.zeros(n, np.int64)
    shift[draws] = -(m[draws] // 2) + ph  # -ceil((m - 1) / 2) + draw
    return s_in, shift
