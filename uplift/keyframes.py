"""Key-frame masks: which tokens of a window carry 2D input (frames with ``t mod s_in == 0``).

A window has ``n_out`` tokens spaced ``s_out`` frames apart around its centre; ``s_in`` is a multiple
of ``s_out``, so every ``r = s_in / s_out``-th token is a key frame.
"""

from __future__ import annotations

import numpy as np

from schemas.errors import ConfigError


def _ratio(s_in: int, s_out: int) -> int:
    if s_in < s_out or s_in % s_out:
        raise ConfigError(f"s_in {s_in} is not a multiple of s_out {s_out}")
    return s_in // s_out


def keyframe_mask(n_out: int, s_out: int, s_in: int, shift: int = 0) -> np.ndarray:
    """``(n_out,)`` bool for a window whose centre is a key frame when ``shift == 0``.

    ``shift`` (in tokens) moves the key-frame grid: token ``i`` is a key frame when
    ``(i - n_out // 2 + shift) * s_out`` is a multiple of ``s_in``.
    """
    r = _ratio(s_in, s_out)
    offsets = np.arange(n_out) - n_out // 2 + shift
    return offsets % r == 0


def random_keyframe_mask(n_out: int, s_out: int, s_in: int, rng: np.random.Generator,
                         random_shift: bool = True) -> np.ndarray:
    """Training mask: the key-frame grid shifted by a random number of tokens (official augmentation).

    The shift is drawn uniformly from the r integers ``-ceil((r-1)/2) .. floor((r-1)/2)`` (``r = s_in /
    s_out``), i.e. every phase of the grid once, so the centre is a key frame in 1 of r windows.
    With ``random_shift=False`` the centre is always a key frame.
    """
    r = _ratio(s_in, s_out)
    shift = int(rng.integers(-(r // 2), (r - 1) // 2, endpoint=True)) if random_shift and r > 1 else 0
    return keyframe_mask(n_out, s_out, s_in, shift)


def global_keyframe_mask(frame_indices, s_in: int) -> np.ndarray:
    """Inference mask aligned to the video: True where the global frame index is a multiple of ``s_in``."""
    return np.asarray(frame_indices) % s_in == 0
