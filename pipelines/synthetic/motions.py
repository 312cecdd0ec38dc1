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
(or seed) passed in. Here: :func:`generate_motion` (one sequence) and :func:`write_amass_tree` (a
folder of files); how each kind moves lives in :mod:`pipelines.synthetic.kinds`, the smooth signals
and rotations in :mod:`pipelines.synthetic.signals`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipelines.synthetic.kinds import Pose, hands, jump, locomotion, sit, standing, turn, wave
from pipelines.synthetic.signals import compose, rot_z, smooth_noise
from schemas.skeletons import NUM_BETAS, NUM_DMPLS, SMPLH_52, SMPLH_POSE_DIM

MOTION_KINDS: tuple[str, ...] = ("walk", "run", "jump", "wave", "sit", "turn", "squat", "idle")

_J = {name: i for i, name in enumerate(SMPLH_52.joints)}
# Relative weights of the kinds in a generated tree (walks dominate AMASS).
_KIND_WEIGHTS = {"walk": 0.28, "run": 0.12, "jump": 0.1, "wave": 0.1, "sit": 0.1, "turn": 0.12,
                 "squat": 0.08, "idle": 0.1}


def generate_motion(kind: str, fps: float, duration_s: float, rng: np.random.Generator,
                    path: str | None = None, n_frames: int | None = None) -> dict:
    """One procedural sequence in AMASS SMPL+H layout.

    Args:
        kind: one of :data:`MOTION_KINDS`.
        fps: source frame rate; T = round(duration_s * fps) frames (at least 1), or ``n_frames``.
        rng: the only source of randomness.
        path: for walk/run, one of :data:`pipelines.synthetic.kinds.PATHS` (default: drawn; "straight"
            leaves a 4 m area).
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
    p = Pose.new(n, float(fps), rng)
    if kind in ("walk", "run"):
        locomotion(p, rng, run=kind == "run", pattern=path)
    elif kind == "jump":
        jump(p, rng)
    elif kind == "wave":
        wave(p, rng)
    elif kind in ("sit", "squat"):
        sit(p, rng, squat=kind == "squat")
    elif kind == "turn":
        turn(p, rng)
    else:
        standing(p, rng)
    hands(p, rng)
    # Pelvis pitch tilts the torso; counter-rotate the hips so the legs keep the angles set above.
    p.body[:, _J["left_hip"], 0] -= p.body[:, 0, 0]
    p.body[:, _J["right_hip"], 0] -= p.body[:, 0, 0]
    # Everyone moves a little everywhere: slow smooth noise on all body joints.
    noise = smooth_noise(rng, n, p.fps, 22 * 3, rate_hz=1.5, scale=0.025).reshape(n, 22, 3)
    p.body[:, :22] += noise

    poses = np.empty((n, SMPLH_POSE_DIM))
    up = np.zeros((n, 3))
    up[:, 0] = np.pi / 2
    poses[:, :3] = compose(rot_z(p.heading), up, p.body[:, 0])  # Rz(h) @ Rx(90) @ body tilt
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
    "SynthMOYO": ("smplx_stageii", False),
}
# SMPL-X datasets in the order they are handed out, with their AMASS body data: "G" (gendered: male or
# female subjects) or "N" (every subject on the neutral model). SynthMOYO stands for the newer
# sub-datasets AMASS ships in SMPL-X only.
_SMPLX_DATASETS = (("SynthSOMA", "G"), ("SynthMOYO", "N"), ("SynthGRAB", "G"))
NUM_EXPRESSION_GRAB = 10  # expression coefficients in the separate-keys files (as GRAB's own SMPL-X fits)
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
            s["dataset"] = _SMPLX_DATASETS[n_x % len(_SMPLX_DATASETS)][0]
            n_x += 1
        else:
            s["dataset"] = str(rng.choice(["SynthCMU", "SynthKIT", "SynthBML"], p=[0.5, 0.3, 0.2]))
    return plan


def write_amass_tree(root, n_sequences: int = 24, seed: int = 0, fps_choices=(60, 100, 120, 250),
                     duration_s=(1.0, 60.0), smplx_fraction: float = 0.15,
                     total_frames: int | None = None) -> list[Path]:
    """Write an AMASS-like tree of motion files under ``root``; returns the motion files, sorted.

    Layout: ``<root>/<Dataset>/<Subject>/<name>_poses.npz`` (``SynthKIT`` has one more folder level),
    ``shape.npz`` beside SMPL+H sequences, SMPL-X files with separate keys and 10 expression
    coefficients (``SynthGRAB``) or AMASS SMPL-X ``*_stageii.npz`` (packed ``poses`` (T, 165) and its
    parts, 16 betas) with a ``{gender}_stagei.npz`` beside them: SMPL-X G (``SynthSOMA``, male/female)
    and SMPL-X N (``SynthMOYO``, neutral). Subjects share gender and betas across their sequences. Genders are stored as unicode or bytes 0-d arrays
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
            genders = ["neutral"] if dict(_SMPLX_DATASETS).get(ds) == "N" else ["male", "female"]
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
            parts = {"root_orient": p[:, :3], "pose_body": p[:, 3:66], "pose_hand": p[:, 66:156],
                     "pose_jaw": jaw, "pose_eye": eyes}
            if fmt == "smplx_keys":
                path = folder / f"{name}_poses.npz"
                expression = 0.5 * smooth_noise(rng, n, s["fps"], NUM_EXPRESSION_GRAB, 1.0)
                _save(path, {**common, **parts, "expression": expression})
            else:
                # AMASS SMPL-X stageii: the packed pose and its parts; hands as 45 axis-angle values each,
                # no PCA and no mean hand pose added (human_body_prior's BodyModel poses them as stored)
                path = folder / f"{name}_stageii.npz"
                packed = np.concatenate([p[:, :3], p[:, 3:66], jaw, eyes, p[:, 66:156]], axis=1)
                latent = m["trans"].mean(axis=0) + rng.normal(scale=0.1, size=(6, 3))
                _save(path, {**common, "poses": packed, **parts, "mocap_time_length": np.array(n / s["fps"]),
                             "num_betas": np.array(NUM_BETAS), "markers_latent": latent,
                             "latent_labels": np.array(["C7", "CLAV", "LFHD", "RFHD", "LBHD", "RBHD"])})
                stagei = folder / f"{gender}_stagei.npz"
                if not stagei.exists():
                    _save(stagei, {"betas": info["betas"], "gender": np.array(gender),
                                   "surface_model_type": np.array("smplx")})
        written.append(path)
    return sorted(written)
