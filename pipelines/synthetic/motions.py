"""Procedural AMASS-like motion (SMPL+H axis-angle) and a synthetic AMASS folder tree.

No licensed data: motions are built from gait cycles, smooth schedules and smooth noise, directly in
SMPL+H pose parameters (T, 156) = root 3 | body 63 | hands 90, with root translations (T, 3) in metres.

Conventions (SMPL / AMASS):
- A joint's axis-angle is its rotation in the parent frame, and at rest every joint frame equals the
  canonical body frame: y up, facing +z, the subject's left at +x. So hip/knee/spine flexion are
  rotations about x (a leg hangs along -y: a negative x rotation swings it forward, a positive knee
  rotation folds the shank back), an arm lies along +x (left) / -x (right).
- Right-side rotations are the mirror of left-side ones: rotvec (a, b, c) -> (a, -b, -c).
- AMASS world is z-up: an upright person heading ``h`` has root orientation Rz(h) @ Rx(+90deg), faces
  (sin h, -cos h, 0) and has the left at (cos h, sin h, 0). The pelvis sits at trans + J0 (J0 ~ 3 cm
  forward in z), so trans z ~ 0.9-1.0 m while standing.

Everything is vectorised over frames; every random choice comes from the ``numpy.random.Generator``
(or seed) passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from schemas.skeletons import NUM_DMPLS, SMPLH_52, SMPLH_POSE_DIM

MOTION_KINDS: tuple[str, ...] = ("walk", "run", "jump", "wave", "sit", "turn", "squat", "idle")
PATHS: tuple[str, ...] = ("loop", "figure8", "backforth", "straight")
NUM_BETAS = 16

_J = {name: i for i, name in enumerate(SMPLH_52.joints)}
_MIRROR = np.array([1.0, -1.0, -1.0])
# Relative weights of the kinds in a generated tree (walks dominate AMASS).
_KIND_WEIGHTS = {"walk": 0.28, "run": 0.12, "jump": 0.1, "wave": 0.1, "sit": 0.1, "turn": 0.12,
                 "squat": 0.08, "idle": 0.1}


# ---------------------------------------------------------------------------------------------
# Small smooth building blocks


def _ss(x: np.ndarray) -> np.ndarray:
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
    w = _ss(pos - i)[:, None]
    a = knots[i]
    return a + w * (knots[i + 1] - a)


def _knots(t: np.ndarray, tk: np.ndarray, vk: np.ndarray) -> np.ndarray:
    """Piecewise smoothstep through knot values ``vk`` (K,) at increasing times ``tk`` (K,) -> (T,)."""
    j = np.clip(np.searchsorted(tk, t, side="right") - 1, 0, len(tk) - 2)
    u = (t - tk[j]) / np.maximum(tk[j + 1] - tk[j], 1e-9)
    return vk[j] + (vk[j + 1] - vk[j]) * _ss(u)


def _toggle(rng: np.random.Generator, t: np.ndarray, hold0: tuple, move: tuple, hold1: tuple,
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
    return _knots(t, np.asarray(tk), np.asarray(vk))


def _rx(a):
    return _axis(a, 0)


def _ry(a):
    return _axis(a, 1)


def _rz(a):
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


def _compose(*rotvecs: np.ndarray) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# The pose being built


@dataclass
class _Pose:
    """Per-frame parameters filled in by a motion kind; turned into (T,156) / (T,3) by ``_assemble``."""

    t: np.ndarray  # (T,) seconds
    fps: float
    heading: np.ndarray  # (T,) radians
    xy: np.ndarray  # (T, 2) root translation in the ground plane
    z: np.ndarray  # (T,) root height
    body: np.ndarray  # (T, 52, 3) local rotation vectors; root row is body-frame pitch/yaw/roll

    @classmethod
    def new(cls, n: int, fps: float, rng: np.random.Generator):
        t = np.arange(n) / fps
        return cls(t=t, fps=fps, heading=np.full(n, rng.uniform(-np.pi, np.pi)),
                   xy=rng.uniform(-0.5, 0.5, 2) + 0.01 * smooth_noise(rng, n, fps, 2, rate_hz=0.5),
                   z=np.full(n, rng.uniform(0.90, 0.98)),
                   body=np.zeros((n, 52, 3)))

    def set(self, name: str, rv: np.ndarray, mirror_to: str | None = None) -> None:
        """Add rotation vectors (T,3) to a (left) joint, and their mirror to ``mirror_to``."""
        self.body[:, _J[name]] += rv
        if mirror_to is not None:
            self.body[:, _J[mirror_to]] += rv * _MIRROR

    def legs(self, hip_l, knee_l, ankle_l, hip_r, knee_r, ankle_r, abduct=0.0) -> None:
        """Flexion angles (T,): hip < 0 swings the thigh forward, knee > 0 folds it, ankle < 0 lifts toes."""
        for side, hip, knee, ankle in (("left", hip_l, knee_l, ankle_l), ("right", hip_r, knee_r, ankle_r)):
            sign = 1.0 if side == "left" else -1.0
            self.body[:, _J[f"{side}_hip"], 0] += hip
            self.body[:, _J[f"{side}_hip"], 2] += sign * abduct
            self.body[:, _J[f"{side}_knee"], 0] += knee
            self.body[:, _J[f"{side}_ankle"], 0] += ankle

    def arm(self, side: str, swing, raise_, twist=0.0, elbow=0.0) -> None:
        """Left-arm parameters (T,), mirrored for the right: swing < 0 forward, raise_ > 0 up from
        horizontal, twist about the upper arm, elbow > 0 folds the forearm forward."""
        n = len(self.t)
        full = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))
        shoulder = _compose(_rx(full(swing)), _rz(full(raise_)), _rx(full(twist)))
        fore = _ry(-full(elbow))
        m = 1.0 if side == "left" else _MIRROR
        self.body[:, _J[f"{side}_shoulder"]] += shoulder * m
        self.body[:, _J[f"{side}_elbow"]] += fore * m

    def spine(self, pitch=0.0, yaw=0.0, roll=0.0) -> None:
        """Spread a torso bend (about x forward, y twist, z side) over spine1..3."""
        for name, share in (("spine1", 0.4), ("spine2", 0.3), ("spine3", 0.3)):
            self.body[:, _J[name], 0] += share * np.asarray(pitch)
            self.body[:, _J[name], 1] += share * np.asarray(yaw)
            self.body[:, _J[name], 2] += share * np.asarray(roll)


def _walk_xy(p: _Pose, speed: np.ndarray) -> None:
    """Integrate the root along the heading at ``speed`` (T,) m/s."""
    p.xy = p.xy[0] + np.cumsum(speed[:, None] * facing(p.heading), axis=0) / p.fps
    p.xy -= speed[0] * facing(p.heading[:1]) / p.fps  # start exactly at the start point


def _path(p: _Pose, rng: np.random.Generator, pattern: str, v0: float, scale: float) -> np.ndarray:
    """Set ``p.heading`` for a path pattern and return the speed profile (T,) m/s.

    loop/figure8/straight steer by travelled distance (so loops close whatever the speed noise);
    backforth walks a line of ~``scale`` m and turns round at each end, slowing down.
    """
    t, h0 = p.t, p.heading[0]
    if pattern == "backforth":
        leg_t = scale / v0
        turn_t = rng.uniform(0.9, 1.3)
        period = leg_t + turn_t
        k = np.floor(t / period)
        u = np.clip((t - k * period - leg_t) / turn_t, 0.0, 1.0)  # 0 on the straight, 0..1 in the turn
        p.heading = h0 + np.pi * (k + _ss(u))
        return v0 * (1.0 - 0.9 * np.sin(np.pi * u))
    speed = v0 * (1.0 + 0.04 * smooth_noise(rng, len(t), p.fps, 1, rate_hz=0.5)[:, 0])
    s = np.cumsum(speed) / p.fps
    if pattern == "loop":
        p.heading = h0 + rng.choice([-1.0, 1.0]) * s / scale
    elif pattern == "figure8":
        per = 2 * np.pi * scale  # one full circle each way
        tri = np.abs(((s + per) % (2 * per)) - per)  # triangle wave 0..per: closes each loop exactly
        p.heading = h0 + (per - tri) / scale * rng.choice([-1.0, 1.0])
    elif pattern == "straight":
        p.heading = h0 + 0.15 * smooth_noise(rng, len(t), p.fps, 1, rate_hz=0.2)[:, 0]
    else:
        raise ValueError(f"unknown path pattern {pattern!r} (expected one of {PATHS})")
    return speed


def _gait(p: _Pose, rng: np.random.Generator, phase: np.ndarray, g: np.ndarray, run: bool) -> None:
    """Legs, arms, pelvis and torso for walking/running at gait phase ``phase`` and intensity ``g`` (T,)."""
    sp, cp = np.sin(phase), np.cos(phase)
    a_hip = (0.55 if run else 0.38) * g
    hip_l, hip_r = -a_hip * sp - (0.15 if run else 0.05) * g, a_hip * sp - (0.15 if run else 0.05) * g

    def knee(ph):  # swing-phase flexion peak (and a stance dip when running)
        swing = ((1 + np.cos(ph + 0.4)) / 2) ** 3
        stance = ((1 + np.cos(ph - 2.6)) / 2) ** 4
        return g * ((1.6 if run else 0.95) * swing + (0.35 if run else 0.12) * stance + 0.05)

    ankle = lambda ph: g * 0.2 * np.sin(ph + 1.2)
    p.legs(hip_l, knee(phase), ankle(phase), hip_r, knee(phase + np.pi), ankle(phase + np.pi),
           abduct=0.03)
    a_arm = (0.6 if run else 0.35) * g
    elbow = (1.4 if run else 0.25) + (0.25 if run else 0.12) * g
    down = -1.42 + (0.15 if run else 0.0)
    p.arm("left", a_arm * sp + 0.05, down, 0.0, elbow - 0.1 * g * sp)
    p.arm("right", -a_arm * sp + 0.05, down, 0.0, elbow + 0.1 * g * sp)
    lean = (0.18 if run else 0.04) * g
    p.body[:, 0, 0] += lean + 0.02 * g * np.cos(2 * phase)  # pelvis pitch, bobbing twice a cycle
    p.body[:, 0, 1] += 0.1 * g * sp  # pelvis yaw follows the leading leg
    p.body[:, 0, 2] += 0.04 * g * cp  # pelvis roll over the stance leg
    p.spine(pitch=0.3 * lean, yaw=-0.12 * g * sp)
    p.z = p.z - (0.03 if run else 0.02) * g + (0.05 if run else 0.022) * g * np.cos(2 * phase)
    p.xy = p.xy + (0.015 * g * cp)[:, None] * left_of(p.heading)


def _phase(fps: float, freq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(freq) / fps


def _locomotion(p: _Pose, rng: np.random.Generator, run: bool, pattern: str | None) -> None:
    if pattern is None:
        probs = (0.2, 0.0, 0.65, 0.15) if run else (0.3, 0.2, 0.4, 0.1)
        pattern = str(rng.choice(PATHS, p=probs))
    v0 = rng.uniform(2.6, 3.4) if run else rng.uniform(1.1, 1.5)
    scale = {"loop": rng.uniform(1.6, 1.9) if run else rng.uniform(1.0, 1.5), "figure8": rng.uniform(0.8, 0.95),
             "backforth": rng.uniform(1.6, 2.2) if run else rng.uniform(2.0, 2.8), "straight": 0.0}[pattern]
    speed = _path(p, rng, pattern, v0, scale)
    stride = rng.uniform(2.0, 2.4) if run else rng.uniform(1.3, 1.5)  # metres per gait cycle (2 steps)
    g = np.clip(speed / v0, 0.35, 1.0)
    freq = np.maximum(speed, 0.45 * v0) / stride
    _walk_xy(p, speed)
    _gait(p, rng, _phase(p.fps, freq, rng), g, run)


def _jump(p: _Pose, rng: np.random.Generator) -> None:
    period = rng.uniform(1.1, 1.6)
    height = rng.uniform(0.12, 0.32)
    hop = rng.uniform(0.25, 0.5) if rng.random() < 0.4 else 0.0
    cycles = p.t / period + rng.uniform(0, 1)
    u, k = cycles % 1.0, np.floor(cycles)
    crouch = np.exp(-((u - 0.3) / 0.09) ** 2) + 0.6 * np.exp(-((u - 0.82) / 0.06) ** 2)
    q = np.clip((u - 0.45) / 0.3, 0.0, 1.0)  # flight progress
    flying = (q > 0) & (q < 1)
    p.z = p.z - 0.32 * crouch + 4 * height * q * (1 - q)
    p.legs(-1.0 * crouch - 0.1 * flying, 1.6 * crouch + 0.15 * flying, -0.4 * crouch + 0.3 * flying,
           -1.0 * crouch - 0.1 * flying, 1.6 * crouch + 0.15 * flying, -0.4 * crouch + 0.3 * flying)
    p.body[:, 0, 0] += 0.45 * crouch  # torso leans forward over the knees
    swing = 0.9 * crouch - 1.6 * np.exp(-((u - 0.5) / 0.1) ** 2)  # back in the crouch, up at take-off
    for side in ("left", "right"):
        p.arm(side, swing, -1.25, 0.0, 0.3 + 0.3 * crouch)
    if hop:  # hop forward then back, so the subject stays put
        sign = np.where(k % 2 == 0, 1.0, -1.0)
        done = np.where(k % 2 == 0, 0.0, 1.0)
        p.xy = p.xy + (hop * (done + sign * _ss(q)))[:, None] * facing(p.heading)


def _standing(p: _Pose, rng: np.random.Generator, arms: bool = True) -> None:
    """Idle stance: weight shifts, breathing, head looking around, arms hanging (unless ``arms``)."""
    n = len(p.t)
    if arms:
        sway = smooth_noise(rng, n, p.fps, 4, rate_hz=0.5, scale=0.12)
        p.arm("left", sway[:, 0], -1.42 + 0.5 * sway[:, 1], 0.0, 0.25 + np.abs(sway[:, 1]))
        p.arm("right", sway[:, 2], -1.42 + 0.5 * sway[:, 3], 0.0, 0.25 + np.abs(sway[:, 3]))
    shift = smooth_noise(rng, n, p.fps, 3, rate_hz=0.3)
    p.xy = p.xy + 0.04 * shift[:, :2]
    p.body[:, 0, 2] += 0.05 * shift[:, 0]
    p.legs(0.04 * shift[:, 1], 0.08 + 0.06 * np.abs(shift[:, 0]), 0.0, -0.04 * shift[:, 1],
           0.08 + 0.06 * np.abs(shift[:, 2]), 0.0, abduct=0.05)
    look = smooth_noise(rng, n, p.fps, 2, rate_hz=0.4)
    p.body[:, _J["head"], 1] += 0.4 * look[:, 0]
    p.body[:, _J["neck"], 0] += 0.15 * look[:, 1]
    p.spine(pitch=0.02 * np.sin(2 * np.pi * 0.25 * p.t))  # breathing


def _wave(p: _Pose, rng: np.random.Generator) -> None:
    _standing(p, rng, arms=False)
    side = str(rng.choice(["left", "right"]))
    other = "right" if side == "left" else "left"
    up = _toggle(rng, p.t, (0.5, 2.0), (0.5, 0.9), (1.5, 4.0), start_held=rng.uniform(0.0, 0.8))
    f = rng.uniform(1.8, 3.0)
    osc = 0.35 * np.sin(2 * np.pi * f * p.t) * up
    # Arm raised above the horizontal, upper arm twisted so the elbow hinge lifts the forearm up.
    p.arm(side, 0.0, -1.42 + up * 1.72, -up * np.pi / 2, 0.2 + up * 1.1 + osc)
    p.arm(other, 0.05, -1.42, 0.0, 0.2)


def _sit(p: _Pose, rng: np.random.Generator, squat: bool) -> None:
    n = len(p.t)
    s = _toggle(rng, p.t, (0.8, 2.0), (1.0, 1.6) if not squat else (0.8, 1.2),
                (1.5, 4.0) if not squat else (0.3, 1.2), start_held=rng.uniform(0.2, 1.0))
    moving = 4 * s * (1 - s)  # 1 mid-transition, 0 when sitting or standing
    if squat:
        p.legs(-1.9 * s, 2.2 * s, -0.5 * s, -1.9 * s, 2.2 * s, -0.5 * s, abduct=0.15 * s)
        p.z = p.z - 0.5 * s
        p.body[:, 0, 0] += 0.5 * s
        for side in ("left", "right"):
            p.arm(side, -1.2 * s, -1.3 + 0.2 * s, 0.0, 0.2 + 0.3 * s)
    else:
        p.legs(-1.5 * s, 1.5 * s, 0.1 * s, -1.5 * s, 1.5 * s, 0.1 * s, abduct=0.08 * s)
        p.z = p.z - 0.42 * s
        p.xy = p.xy - (0.22 * s)[:, None] * facing(p.heading)  # sits back onto the chair
        p.body[:, 0, 0] += 0.6 * moving + 0.05 * s  # leans forward to stand up / sit down
        for side in ("left", "right"):
            p.arm(side, -0.5 * s, -1.3, 0.0, 0.25 + 0.9 * s)
    look = smooth_noise(rng, n, p.fps, 1, rate_hz=0.4)
    p.body[:, _J["head"], 1] += 0.3 * look[:, 0]


def _turn(p: _Pose, rng: np.random.Generator) -> None:
    t = p.t
    end = float(t[-1]) + 1.0
    tk, vk = [0.0], [p.heading[0]]
    while tk[-1] < end:  # hold, then turn by 90-180 degrees either way
        hold, move = rng.uniform(0.5, 2.0), rng.uniform(0.9, 1.6)
        tk += [tk[-1] + hold, tk[-1] + hold + move]
        vk += [vk[-1], vk[-1] + rng.choice([-1.0, 1.0]) * rng.uniform(np.pi / 2, np.pi)]
    p.heading = _knots(t, np.asarray(tk), np.asarray(vk))
    rate = np.abs(np.gradient(p.heading, t)) if len(t) > 1 else np.zeros(1)
    g = np.clip(rate / 2.0, 0.0, 0.5)  # small in-place steps while turning
    _gait(p, rng, _phase(p.fps, np.full(len(t), 1.6), rng), g, run=False)
    p.xy = p.xy + 0.03 * smooth_noise(rng, len(t), p.fps, 2, rate_hz=0.5)
    p.body[:, _J["head"], 1] += 0.2 * np.clip(np.gradient(p.heading, t) if len(t) > 1 else 0.0, -1, 1)


def _hands(p: _Pose, rng: np.random.Generator) -> None:
    """Small smooth finger curls (about z, toward the palm), thumb about y."""
    n = len(p.t)
    curl = 0.25 + 0.2 * smooth_noise(rng, n, p.fps, 2, rate_hz=0.5)
    scale = np.tile([1.0, 1.1, 0.8], 5)  # proximal, middle, distal joint of each finger
    for h, side in enumerate(("left", "right")):
        first = _J[f"{side}_index1"]
        angles = curl[:, h:h + 1] * scale  # (T, 15)
        rv = np.zeros((n, 15, 3))
        rv[:, :, 2] = -angles
        rv[:, 12:15, 2] = 0.0  # thumb: bend about y instead
        rv[:, 12:15, 1] = -0.5 * angles[:, 12:15]
        if side == "right":
            rv *= _MIRROR
        p.body[:, first:first + 15] += rv


def generate_motion(kind: str, fps: float, duration_s: float, rng: np.random.Generator,
                    path: str | None = None, n_frames: int | None = None) -> dict:
    """One procedural sequence in AMASS SMPL+H layout.

    Args:
        kind: one of :data:`MOTION_KINDS`.
        fps: source frame rate; T = round(duration_s * fps) frames (at least 1), or ``n_frames``.
        rng: the only source of randomness.
        path: for walk/run, one of :data:`PATHS` (default: drawn; "straight" leaves a 4 m area).
    Returns:
        dict with ``poses`` (T, 156) float64 axis-angle, ``trans`` (T, 3) float64 metres (z-up),
        ``kind``, ``fps``.
    """
    if kind not in MOTION_KINDS:
        raise ValueError(f"unknown motion kind {kind!r} (expected one of {MOTION_KINDS})")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps}")
    n = int(n_frames) if n_frames is not None else max(1, int(round(duration_s * fps)))
    if n < 1:
        raise ValueError("need at least one frame")
    p = _Pose.new(n, float(fps), rng)
    if kind in ("walk", "run"):
        _locomotion(p, rng, run=kind == "run", pattern=path)
    elif kind == "jump":
        _jump(p, rng)
    elif kind == "wave":
        _wave(p, rng)
    elif kind in ("sit", "squat"):
        _sit(p, rng, squat=kind == "squat")
    elif kind == "turn":
        _turn(p, rng)
    else:
        _standing(p, rng)
    _hands(p, rng)
    # Pelvis pitch tilts the torso; counter-rotate the hips so the legs keep the angles set above.
    p.body[:, _J["left_hip"], 0] -= p.body[:, 0, 0]
    p.body[:, _J["right_hip"], 0] -= p.body[:, 0, 0]
    # Everyone moves a little everywhere: slow smooth noise on all body joints.
    noise = smooth_noise(rng, n, p.fps, 22 * 3, rate_hz=1.5, scale=0.025).reshape(n, 22, 3)
    p.body[:, :22] += noise

    poses = np.empty((n, SMPLH_POSE_DIM))
    up = np.zeros((n, 3))
    up[:, 0] = np.pi / 2
    poses[:, :3] = _compose(_rz(p.heading), up, p.body[:, 0])  # Rz(h) @ Rx(90) @ body tilt
    poses[:, 3:] = p.body[:, 1:].reshape(n, -1)
    trans = np.concatenate([p.xy, p.z[:, None]], axis=1)
    return {"poses": poses, "trans": trans, "kind": kind, "fps": float(fps)}


# ---------------------------------------------------------------------------------------------
# A synthetic AMASS folder tree

# name -> (format, extra inner folder level)
_DATASETS = {
    "SynthCMU": ("smplh", False),
    "SynthKIT": ("smplh", True),
    "SynthBML": ("smplh", False),
    "SynthGRAB": ("smplx_keys", False),
    "SynthSOMA": ("smplx_stageii", False),
}
FLOAT32_120HZ = 120.00004577636719  # how some AMASS releases store 120 Hz


def _save(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # np.savez(path) would append ".npz" to names lacking it
        np.savez(fh, **arrays)


def _plan(rng, n_sequences, fps_choices, duration_s, smplx_fraction, total_frames) -> list[dict]:
    lo, hi = duration_s
    kinds = list(_KIND_WEIGHTS)
    kw = np.array([_KIND_WEIGHTS[k] for k in kinds])
    plan, total = [], 0
    i = 0
    while (total_frames is None and i < n_sequences) or (total_frames is not None and total < total_frames):
        fps = float(rng.choice(fps_choices))
        dur = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        n = max(1, int(round(dur * fps)))
        if total_frames is not None:
            n = min(n, total_frames - total)
        plan.append({"fps": fps, "n": n, "kind": str(rng.choice(kinds, p=kw / kw.sum())),
                     "smplx": rng.random() < smplx_fraction})
        total += n
        i += 1
    if total_frames is None and smplx_fraction > 0 and n_sequences >= 4:
        # make sure both SMPL-X layouts appear, whatever the draw
        want = max(2, int(round(n_sequences * smplx_fraction)))
        flags = np.zeros(n_sequences, bool)
        flags[rng.choice(n_sequences, size=min(want, n_sequences - 1), replace=False)] = True
        for s, f in zip(plan, flags):
            s["smplx"] = bool(f)
    n_x = 0
    for s in plan:
        if s["smplx"]:
            s["dataset"] = "SynthGRAB" if n_x % 2 == 0 else "SynthSOMA"
            n_x += 1
        else:
            s["dataset"] = str(rng.choice(["SynthCMU", "SynthKIT", "SynthBML"], p=[0.5, 0.3, 0.2]))
    return plan


def write_amass_tree(root, n_sequences: int = 24, seed: int = 0, fps_choices=(60, 100, 120, 250),
                     duration_s=(1.0, 60.0), smplx_fraction: float = 0.15,
                     total_frames: int | None = None) -> list[Path]:
    """Write an AMASS-like tree of motion files under ``root``; returns the motion files, sorted.

    Layout: ``<root>/<Dataset>/<Subject>/<name>_poses.npz`` (``SynthKIT`` has one more folder level),
    ``shape.npz`` beside SMPL+H sequences, SMPL-X files with separate keys (``SynthGRAB``) or packed
    ``*_stageii.npz`` with a ``{gender}_stagei.npz`` beside them (``SynthSOMA``). Subjects share
    gender and betas across their sequences. Genders are stored as unicode or bytes 0-d arrays
    (alternating), some 120 Hz SMPL+H files store 120.00004577636719.
    ``total_frames``, when given, replaces ``n_sequences``: sequences are drawn until their source
    frames sum to exactly that number (the last one is cut short).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    plan = _plan(rng, n_sequences, tuple(fps_choices), duration_s, smplx_fraction, total_frames)
    subjects: dict[tuple[str, str], dict] = {}
    counts: dict[str, int] = {}
    written: list[Path] = []
    n_h = 0
    for i, s in enumerate(plan):
        ds = s["dataset"]
        fmt, nested = _DATASETS[ds]
        k = counts.get(ds, 0)
        counts[ds] = k + 1
        subj = f"{ds[5:].lower()}{k // 4 + 1:02d}"  # four sequences per subject
        folder = root / ds / subj
        if nested:
            folder = folder / f"session{k // 2 % 2 + 1}"
        info = subjects.get((ds, subj))
        if info is None:
            genders = ["male", "female"] + (["neutral"] if fmt != "smplh" else [])
            info = {"gender": str(rng.choice(genders)), "betas": rng.normal(size=NUM_BETAS)}
            subjects[(ds, subj)] = info
        m = generate_motion(s["kind"], s["fps"], 0.0, rng, n_frames=s["n"])
        n = s["n"]
        name = f"{subj}_{k:03d}_{s['kind']}"
        gender = info["gender"]
        if fmt == "smplh":
            g_arr = np.array(gender.encode()) if n_h % 2 else np.array(gender)
            fps_stored = FLOAT32_120HZ if (s["fps"] == 120 and n_h % 3 == 0) else s["fps"]
            n_h += 1
            markers = m["trans"][:, None, :].astype(np.float32) + rng.normal(scale=0.1, size=(1, 4, 3)).astype(np.float32)
            path = folder / f"{name}_poses.npz"
            _save(path, {"trans": m["trans"], "gender": g_arr, "mocap_framerate": np.array(fps_stored),
                         "betas": info["betas"], "dmpls": smooth_noise(rng, n, s["fps"], NUM_DMPLS, 1.0, 0.3),
                         "poses": m["poses"], "marker_data": markers,
                         "marker_labels": np.array(["LFHD", "RFHD", "LBHD", "RBHD"])})
            shape = folder / "shape.npz"
            if not shape.exists():
                _save(shape, {"betas": info["betas"], "gender": np.array(gender)})
        else:
            p = m["poses"]
            jaw = 0.05 * smooth_noise(rng, n, s["fps"], 3, 1.0)
            eyes = 0.05 * smooth_noise(rng, n, s["fps"], 6, 1.0)
            common = {"trans": m["trans"], "gender": np.array(gender), "betas": info["betas"],
                      "mocap_frame_rate": np.array(s["fps"]), "surface_model_type": np.array("smplx")}
            if fmt == "smplx_keys":
                path = folder / f"{name}_poses.npz"
                _save(path, {**common, "root_orient": p[:, :3], "pose_body": p[:, 3:66], "pose_hand": p[:, 66:156],
                             "pose_jaw": jaw, "pose_eye": eyes})
            else:
                path = folder / f"{name}_stageii.npz"
                packed = np.concatenate([p[:, :3], p[:, 3:66], jaw, eyes, p[:, 66:156]], axis=1)
                _save(path, {**common, "poses": packed, "mocap_time_length": np.array(n / s["fps"]),
                             "num_betas": np.array(NUM_BETAS)})
                stagei = folder / f"{gender}_stagei.npz"
                if not stagei.exists():
                    _save(stagei, {"betas": info["betas"], "gender": np.array(gender),
                                   "surface_model_type": np.array("smplx")})
        written.append(path)
    return sorted(written)
