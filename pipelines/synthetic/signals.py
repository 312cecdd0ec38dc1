"""Smooth signals and rotations for procedural motion, vectorised over frames.

Smooth signals: smoothstep ramps, knot schedules and band-limited noise, each a (T,) or (T, D)
array. Rotations: (T, 3) axis-angle vectors composed through unit quaternions (plain numpy: scipy's
``Rotation`` product costs ~4x more on long sequences). Headings follow AMASS's z-up world.
"""

from __future__ import annotations

import math

import numpy as np

def smoothstep(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1] (clipped): C1 ramps with zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smooth_noise(rng: np.random.Generator, n: int, fps: float, dims: int, rate_hz: float = 2.0,
                 scale: float = 1.0) -> np.ndarray:
    """(n, dims) smooth random signal: N(0, scale^2) knots every 1/rate_hz s, smoothstep-blended."""
    n_knots = int(math.ceil(max(n - 1, 0) / fps * rate_hz)) + 2
    knots = rng.standard_normal((n_knots, dims)) * scale
    pos = np.arange(n) * (rate_hz / fps)
    i = np.minimum(pos.astype(np.int64), n_knots - 2)
    w = smoothstep(pos - i)[:, None]
    a = knots[i]
    return a + w * (knots[i + 1] - a)


def piecewise_smooth(t: np.ndarray, tk: np.ndarray, vk: np.ndarray) -> np.ndarray:
    """Piecewise smoothstep through knot values ``vk`` (K,) at increasing times ``tk`` (K,) -> (T,)."""
    j = np.clip(np.searchsorted(tk, t, side="right") - 1, 0, len(tk) - 2)
    u = (t - tk[j]) / np.maximum(tk[j + 1] - tk[j], 1e-9)
    return vk[j] + (vk[j + 1] - vk[j]) * smoothstep(u)


def toggle(rng: np.random.Generator, t: np.ndarray, hold0: tuple, move: tuple, hold1: tuple,
            start_held: float | None = None) -> np.ndarray:
    """(T,) schedule in [0, 1]: hold 0, ramp up, hold 1, ramp down, ... with random durations."""
    end = float(t[-1]) + 1.0
    tk, vk = [0.0], [0.0]
    first = True
    while tk[-1] < end:
        h0 = start_held if (first and start_held is not None) else rng.uniform(*hold0)
        first = False
        for dur, val in ((h0, 0.0), (rng.uniform(*move), 1.0), (rng.uniform(*hold1), 1.0),
                         (rng.uniform(*move), 0.0)):
            tk.append(tk[-1] + dur)
            vk.append(val)
    return piecewise_smooth(t, np.asarray(tk), np.asarray(vk))


def rot_x(a):
    return _axis(a, 0)


def rot_y(a):
    return _axis(a, 1)


def rot_z(a):
    return _axis(a, 2)


def _axis(angle: np.ndarray, k: int) -> np.ndarray:
    """(T, 3) rotation vectors about one canonical axis."""
    out = np.zeros((len(angle), 3))
    out[:, k] = angle
    return out


def _quat(rv: np.ndarray) -> np.ndarray:
    """(T, 3) rotation vectors -> (T, 4) unit quaternions (w, x, y, z)."""
    a = np.linalg.norm(rv, axis=-1, keepdims=True)
    small = a < 1e-6
    k = np.where(small, 0.5 - a * a / 48.0, np.sin(0.5 * a) / np.where(small, 1.0, a))
    return np.concatenate([np.cos(0.5 * a), rv * k], axis=-1)


def _qmul(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    pw, px, py, pz = np.moveaxis(p, -1, 0)
    qw, qx, qy, qz = np.moveaxis(q, -1, 0)
    return np.stack([pw * qw - px * qx - py * qy - pz * qz, pw * qx + px * qw + py * qz - pz * qy,
                     pw * qy - px * qz + py * qw + pz * qx, pw * qz + px * qy - py * qx + pz * qw], axis=-1)


def _rotvec(q: np.ndarray) -> np.ndarray:
    """(T, 4) quaternions -> (T, 3) rotation vectors with angle in [0, pi]."""
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    a = 2.0 * np.arctan2(s, q[..., :1])
    small = s < 1e-9
    return v * np.where(small, 2.0 / np.maximum(q[..., :1], 1e-12), a / np.where(small, 1.0, s))


def compose(*rotvecs: np.ndarray) -> np.ndarray:
    """Rotation vectors of R1 @ R2 @ ... (each (T, 3)): apply the last first.

    Plain numpy quaternions: scipy's Rotation product costs ~4x more on long sequences.
    """
    q = _quat(rotvecs[0])
    for rv in rotvecs[1:]:
        q = _qmul(q, _quat(rv))
    return _rotvec(q)


def facing(heading: np.ndarray) -> np.ndarray:
    """(T, 2) world xy direction the body faces for root orientation Rz(heading) @ Rx(90deg)."""
    return np.stack([np.sin(heading), -np.cos(heading)], axis=-1)


def left_of(heading: np.ndarray) -> np.ndarray:
    """(T, 2) world xy direction of the subject's left side."""
    return np.stack([np.cos(heading), np.sin(heading)], axis=-1)
