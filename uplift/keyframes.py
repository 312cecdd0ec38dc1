"""Key-frame masks: which tokens of a window carry a 2D input.

A window has ``n_out`` tokens spaced ``s_out`` frames apart around its centre; ``s_in`` (a multiple of
``s_out``) is the spacing of the frames that have 2D input, so every ``m = s_in / s_out``-th token is a
key frame. Training moves that lattice by a random phase (``draw_keyframes``, the official
augmentation); evaluation and inference align it to the video: frame ``f`` is a key frame iff
``f % s_in == 0`` (``keyframe_mask(..., centre=f)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uplift.config import check_s_in


def keyframe_mask(n_out: int, s_out: int, s_in: np.ndarray | int, shift: np.ndarray | int = 0,
                  centre: np.ndarray | int | None = None) -> np.ndarray:
    """Key-frame mask ``(..., n_out)`` bool, vectorised over ``s_in``, ``shift`` and ``centre`` ``(...)``.

    Token ``i`` is a key frame when ``(i - n_out // 2 + shift) * s_out (+ centre)`` is a multiple of
    ``s_in``. ``shift`` (in tokens) moves the key-frame lattice (training); ``centre`` aligns it to the
    global frame index of the window centre (evaluation). An ``s_in`` that is not a multiple of
    ``s_out`` raises ``ConfigError``.
    """
    # The two former copies differed here: the per-window one accepted any s_in and then marked
    # tokens on a lattice no 2D input lies on; now it is refused (tests/uplift/test_keyframes.py).
    s_in = np.asarray(check_s_in(s_in, s_out), dtype=np.int64)
    off = (np.arange(n_out, dtype=np.int64) - n_out // 2) * s_out
    off = off + np.asarray(shift, dtype=np.int64)[..., None] * s_out
    if centre is not None:
        off = off + np.asarray(centre, dtype=np.int64)[..., None]
    return off % s_in[..., None] == 0


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
