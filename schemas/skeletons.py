"""Skeleton definitions: joint order, parents, left/right flip pairs. One definition, imported everywhere."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]  # -1 for the root
    left: tuple[int, ...]  # joint indices on the subject's left side
    right: tuple[int, ...]  # their mirror partners, pairwise with ``left``
    root: int = 0

    def __post_init__(self):
        assert len(self.joints) == len(self.parents)
        assert len(self.left) == len(self.right)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def flip_permutation(self) -> np.ndarray:
        """(J,) index array: ``x_flipped = x[..., perm, :]`` swaps left and right joints."""
        perm = np.arange(self.num_joints)
        perm[list(self.left)] = self.right
        perm[list(self.right)] = self.left
        return perm

    def index(self, name: str) -> int:
        return self.joints.index(name)


# Human3.6M 17 joints in the order of VideoPose3D's 17-joint files.
H36M_17 = Skeleton(
    name="h36m17",
    joints=(
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
        "spine", "thorax", "neck_nose", "head",
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
)

# The full 32-joint Human3.6M layout of data_3d_h36m.npz; the 17 kept are H36M_17 in order.
H36M_32_PARENTS = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19,
                   22, 12, 24, 25, 26, 27, 28, 27, 30)
H36M_32_DROPPED = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
H36M_32_TO_17 = tuple(j for j in range(32) if j not in H36M_32_DROPPED)

# SMPL-H 52 joints: 22 body joints then 15 per hand (left, then right).
_SMPLH_BODY = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")
_SMPLH_HANDS = tuple(f"{side}_{finger}{k}" for side in ("left", "right") for finger in _FINGERS for k in (1, 2, 3))
_SMPLH_BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)


def _hand_parents(first: int = 22) -> tuple[int, ...]:
    """Parents of the 30 finger joints when the left hand's first joint has index ``first``."""
    parents = []
    for wrist, base in ((20, first), (21, first + 15)):
        for f in range(5):
            first = base + 3 * f
            parents += [wrist, first, first + 1]
    return tuple(parents)


def _mirror_pairs(names: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    left, right = [], []
    for i, n in enumerate(names):
        if n.startswith("left_"):
            left.append(i)
            right.append(names.index("right_" + n[len("left_"):]))
    return tuple(left), tuple(right)


_SMPLH_NAMES = _SMPLH_BODY + _SMPLH_HANDS
SMPLH_52 = Skeleton(
    name="smplh52",
    joints=_SMPLH_NAMES,
    parents=_SMPLH_BODY_PARENTS + _hand_parents(),
    left=_mirror_pairs(_SMPLH_NAMES)[0],
    right=_mirror_pairs(_SMPLH_NAMES)[1],
)

SMPLH_POSE_DIM = 3 * 52  # 156: root 3, body 63, hands 90

# SMPL-X 55 joints (smplx's order): the 22 body joints, jaw and eyes (children of the head), then the
# same 15 joints a hand as SMPL-H. Its full pose is (165,) = root 3 | body 63 | jaw 3 | eyes 6 | hands 90,
# which is also how AMASS SMPL-X ``*_stageii.npz`` files pack ``poses``.
_SMPLX_FACE = ("jaw", "left_eye_smplhf", "right_eye_smplhf")
_SMPLX_NAMES = _SMPLH_BODY + _SMPLX_FACE + _SMPLH_HANDS
SMPLX_55 = Skeleton(
    name="smplx55",
    joints=_SMPLX_NAMES,
    parents=_SMPLH_BODY_PARENTS + (15, 15, 15) + _hand_parents(first=25),
    left=_mirror_pairs(_SMPLX_NAMES)[0],
    right=_mirror_pairs(_SMPLX_NAMES)[1],
)
SMPLX_POSE_DIM = 3 * 55  # 165
SMPLX_NUM_SHAPE = 300  # shape directions of an SMPL-X model file whose shapedirs has 400 columns ...
SMPLX_NUM_EXPRESSION = 100  # ... followed by these expression directions (smplx, human_body_prior)
# Body-model families a sequence can be regressed with (the ``body_model`` manifest column).
BODY_MODEL_FAMILIES = ("smplh", "smplx")
# Genders of the SMPL-family models (AMASS files, body-model folders); the order also seeds the stand-in body.
GENDERS = ("male", "female", "neutral")
NUM_DMPLS = 8
NUM_BETAS = 16  # shape components of SMPL+H; AMASS stores 16 betas a subject
