"""How each kind of motion moves the body, filling the pose that ``generate_motion`` assembles.

A kind fills a :class:`Pose` (heading, root path and height, local joint rotations) in place, in
the conventions of :mod:`pipelines.synthetic.motions`; every random choice comes from the
``numpy.random.Generator`` passed in, in a fixed order (so a seed fixes the motion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.synthetic.signals import (compose, facing, left_of, piecewise_smooth, rot_x, rot_y, rot_z,
                                         smooth_noise, smoothstep, toggle)
from schemas.skeletons import SMPLH_52

PATHS: tuple[str, ...] = ("loop", "figure8", "backforth", "straight")

_J = {name: i for i, name in enumerate(SMPLH_52.joints)}
_MIRROR = np.array([1.0, -1.0, -1.0])


@dataclass
class Pose:
    """Per-frame parameters filled in by a motion kind; turned into (T,156) / (T,3) by ``generate_motion``."""

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
        shoulder = compose(rot_x(full(swing)), rot_z(full(raise_)), rot_x(full(twist)))
        fore = rot_y(-full(elbow))
        m = 1.0 if side == "left" else _MIRROR
        self.body[:, _J[f"{side}_shoulder"]] += shoulder * m
        self.body[:, _J[f"{side}_elbow"]] += fore * m

    def spine(self, pitch=0.0, yaw=0.0, roll=0.0) -> None:
        """Spread a torso bend (about x forward, y twist, z side) over spine1..3."""
        for name, share in (("spine1", 0.4), ("spine2", 0.3), ("spine3", 0.3)):
            self.body[:, _J[name], 0] += share * np.asarray(pitch)
            self.body[:, _J[name], 1] += share * np.asarray(yaw)
            self.body[:, _J[name], 2] += share * np.asarray(roll)


def _walk_xy(p: Pose, speed: np.ndarray) -> None:
    """Integrate the root along the heading at ``speed`` (T,) m/s."""
    p.xy = p.xy[0] + np.cumsum(speed[:, None] * facing(p.heading), axis=0) / p.fps
    p.xy -= speed[0] * facing(p.heading[:1]) / p.fps  # start exactly at the start point


def _path(p: Pose, rng: np.random.Generator, pattern: str, v0: float, scale: float) -> np.ndarray:
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
        p.heading = h0 + np.pi * (k + smoothstep(u))
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


def _gait(p: Pose, rng: np.random.Generator, phase: np.ndarray, g: np.ndarray, run: bool) -> None:
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


def locomotion(p: Pose, rng: np.random.Generator, run: bool, pattern: str | None) -> None:
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


def jump(p: Pose, rng: np.random.Generator) -> None:
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
        p.xy = p.xy + (hop * (done + sign * smoothstep(q)))[:, None] * facing(p.heading)


def standing(p: Pose, rng: np.random.Generator, arms: bool = True) -> None:
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


def wave(p: Pose, rng: np.random.Generator) -> None:
    standing(p, rng, arms=False)
    side = str(rng.choice(["left", "right"]))
    other = "right" if side == "left" else "left"
    up = toggle(rng, p.t, (0.5, 2.0), (0.5, 0.9), (1.5, 4.0), start_held=rng.uniform(0.0, 0.8))
    f = rng.uniform(1.8, 3.0)
    osc = 0.35 * np.sin(2 * np.pi * f * p.t) * up
    # Arm raised above the horizontal, upper arm twisted so the elbow hinge lifts the forearm up.
    p.arm(side, 0.0, -1.42 + up * 1.72, -up * np.pi / 2, 0.2 + up * 1.1 + osc)
    p.arm(other, 0.05, -1.42, 0.0, 0.2)


def sit(p: Pose, rng: np.random.Generator, squat: bool) -> None:
    n = len(p.t)
    s = toggle(rng, p.t, (0.8, 2.0), (1.0, 1.6) if not squat else (0.8, 1.2),
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


def turn(p: Pose, rng: np.random.Generator) -> None:
    t = p.t
    end = float(t[-1]) + 1.0
    tk, vk = [0.0], [p.heading[0]]
    while tk[-1] < end:  # hold, then turn by 90-180 degrees either way
        hold, move = rng.uniform(0.5, 2.0), rng.uniform(0.9, 1.6)
        tk += [tk[-1] + hold, tk[-1] + hold + move]
        vk += [vk[-1], vk[-1] + rng.choice([-1.0, 1.0]) * rng.uniform(np.pi / 2, np.pi)]
    p.heading = piecewise_smooth(t, np.asarray(tk), np.asarray(vk))
    rate = np.abs(np.gradient(p.heading, t)) if len(t) > 1 else np.zeros(1)
    g = np.clip(rate / 2.0, 0.0, 0.5)  # small in-place steps while turning
    _gait(p, rng, _phase(p.fps, np.full(len(t), 1.6), rng), g, run=False)
    p.xy = p.xy + 0.03 * smooth_noise(rng, len(t), p.fps, 2, rate_hz=0.5)
    p.body[:, _J["head"], 1] += 0.2 * np.clip(np.gradient(p.heading, t) if len(t) > 1 else 0.0, -1, 1)


def hands(p: Pose, rng: np.random.Generator) -> None:
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
