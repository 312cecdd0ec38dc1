"""Which rows of a joint-regressor file are left and which right, decided by the body's geometry.

Published copies of H36M regressors disagree on which leg rows are left and right (SPIN's
``J_regressor_h36m.npy`` has the left leg in rows 1-3), so row names are never trusted blindly:

1. :func:`lateral_axis`: the subject's left, from the template (up x forward; +x in SMPL's frame).
2. :func:`check_regressor_sides`: regress the template, project every row onto that axis; each
   mirror pair must land on opposite sides and each limb row on its own body part, else the file
   is undecidable (:class:`RegressorError`).
3. :func:`resolve_regressor_order`: permute swapped pairs (``order="auto"``) or trust the file
   (``"as-is"``), and say what was done (:class:`RegressorOrder`, recorded in build reports).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from pipelines.body_model import BodyModel
from schemas.errors import RegressorError
from schemas.skeletons import H36M_17, Skeleton

REGRESSOR_ORDERS = ("auto", "as-is")
# H36M_17 row -> the SMPL-family body part (side-free) it must land on; the other rows are midline.
_PART_OF = {"hip": "hip", "knee": "knee", "ankle": "ankle", "shoulder": "shoulder", "elbow": "elbow",
            "wrist": "wrist"}
# SMPL-family body joints (ids 0..21 are shared by SMPL, SMPL+H and SMPL-X) used to name a body part.
_SMPL_BODY = {0: "pelvis", 1: "hip", 2: "hip", 3: "spine", 4: "knee", 5: "knee", 6: "spine", 7: "ankle",
              8: "ankle", 9: "spine", 10: "foot", 11: "foot", 12: "neck", 13: "collar", 14: "collar",
              15: "head", 16: "shoulder", 17: "shoulder", 18: "elbow", 19: "elbow", 20: "wrist", 21: "wrist"}
MIN_SIDE_OFFSET_M = 0.02  # a paired row this close to the midline cannot be sided


def lateral_axis(model: BodyModel) -> np.ndarray:
    """(3,) unit vector towards the subject's LEFT, from the template's geometry, not from joint names.

    up = head - pelvis, forward = toes - ankles (feet point forward); left = up x forward. In SMPL's
    canonical frame (y up, facing +z) this is +x.
    """
    own = model.rest_joints()
    up = own[15] - own[0]
    forward = (own[10] + own[11] - own[7] - own[8]) / 2.0
    forward = forward - (forward @ up) / (up @ up) * up
    left = np.cross(up, forward)
    return left / np.linalg.norm(left)


def _side_free_part(point: np.ndarray, own: np.ndarray, axis: np.ndarray) -> str:
    """Name of the SMPL body part nearest to ``point`` once both are folded onto the left half."""
    centre = own[0]

    def fold(p):
        p = p - centre
        return p - 2.0 * min(0.0, float(p @ axis)) * axis

    q = fold(point)
    dists = {j: np.linalg.norm(fold(own[j]) - q) for j in _SMPL_BODY}
    return _SMPL_BODY[min(dists, key=dists.get)]


def check_regressor_sides(regressor, model: BodyModel, skeleton: Skeleton = H36M_17, path=None) -> dict:
    """Check by geometry that the regressor's left/right rows are on the subject's left/right.

    Regresses the model's template and projects every joint onto the subject's lateral axis
    (:func:`lateral_axis`, +x in SMPL's frame). For each mirror pair of ``skeleton`` the row named
    ``l_*`` must land on the left, ``r_*`` on the right.

    Returns ``{"swapped": bool, "swapped_pairs": [names], "lateral": {joint: metres}, "perm": (N,)
    row permutation that fixes the file, "message": str}``; a swapped file is reported, not raised,
    because ``regressor[perm]`` repairs it. Raises RegressorError when the regressor does not fit the
    model (wrong V or N) or the sides cannot be told apart: a pair on one point or on one side of the
    body, a paired row on the midline, or a limb row on another body part than its name says.
    """
    reg = scipy.sparse.csr_matrix(regressor)
    if reg.shape != (skeleton.num_joints, model.num_vertices):
        raise RegressorError(path, f"regressor shape {reg.shape} does not fit {skeleton.name} on a "
                                   f"{model.num_vertices}-vertex model")
    joints = np.asarray(reg @ model.v_template)
    own = model.rest_joints()
    axis = lateral_axis(model)
    lateral = (joints - own[0]) @ axis
    swapped_pairs, perm = [], np.arange(skeleton.num_joints)
    for li, ri in zip(skeleton.left, skeleton.right):
        ln, rn = skeleton.joints[li], skeleton.joints[ri]
        gap = lateral[li] - lateral[ri]
        if abs(gap) < 1e-3:
            raise RegressorError(path, f"rows {ln} and {rn} land on the same point; cannot tell left from right")
        if lateral[li] * lateral[ri] >= 0 or min(abs(lateral[li]), abs(lateral[ri])) < MIN_SIDE_OFFSET_M:
            raise RegressorError(path, f"rows {ln} and {rn} do not land on opposite sides of the body "
                                       f"({lateral[li]:+.3f} m, {lateral[ri]:+.3f} m from the midline); "
                                       "cannot tell left from right")
        for idx, name in ((li, ln), (ri, rn)):
            want = _PART_OF.get(name.split("_", 1)[1])
            got = _side_free_part(joints[idx], own, axis)
            if want is not None and got != want:
                raise RegressorError(path, f"row {idx} ({name}) lands on the body model's {got}, not its {want}; "
                                           "cannot tell which rows are which")
        if gap < 0:
            swapped_pairs.append(f"{ln}/{rn}")
            perm[li], perm[ri] = ri, li
    if swapped_pairs:
        message = (f"left/right rows swapped for {', '.join(swapped_pairs)}: the rows named left regress "
                   "to the subject's right side; use regressor[perm] to fix")
    else:
        message = "left/right rows on the correct sides"
    return {"swapped": bool(swapped_pairs), "swapped_pairs": swapped_pairs,
            "lateral": {n: float(x) for n, x in zip(skeleton.joints, lateral)}, "perm": perm, "message": message}


@dataclass(frozen=True)
class RegressorOrder:
    """How a regressor file's rows were mapped onto ``H36M_17``: ``rows = file_rows[perm]``."""

    order: str  # "auto" (sides checked on the template) | "as-is" (file order trusted)
    perm: tuple[int, ...]  # (N,) applied row permutation; identity when nothing was swapped
    swapped_pairs: tuple[str, ...]  # e.g. ("l_hip/r_hip", ...): pairs whose rows were exchanged
    sha256: str  # of the regressor file's bytes
    deftrafo_sha256: str = ""  # for SMPL-X: of the deformation transfer the file's rows were composed with

    @property
    def message(self) -> str:
        if self.order == "as-is":
            text = "regressor rows taken as-is (sides not checked)"
        elif self.swapped_pairs:
            text = f"regressor rows swapped to fix sides: {', '.join(self.swapped_pairs)}"
        else:
            text = "regressor rows already on the correct sides"
        if self.deftrafo_sha256:
            text += " (composed with the SMPL-X -> SMPL deformation transfer, checked on the SMPL-X templates)"
        return text

    def as_dict(self) -> dict:
        out = {"order": self.order, "perm": list(self.perm), "swapped_pairs": list(self.swapped_pairs),
               "sha256": self.sha256, "message": self.message}
        if self.deftrafo_sha256:
            out["deftrafo_sha256"] = self.deftrafo_sha256
        return out


def resolve_regressor_order(regressor, models, order: str = "auto", path=None, sha256: str = "",
                            skeleton: Skeleton = H36M_17) -> tuple[scipy.sparse.csr_matrix, RegressorOrder]:
    """Put ``regressor`` (N, V) rows into ``skeleton`` order by geometry, before any frame is computed.

    ``models``: one BodyModel or several (e.g. every gender); each one whose vertex count matches is
    checked and they must agree. ``order="auto"`` permutes swapped left/right rows; ``"as-is"``
    trusts the file. Raises RegressorError when the sides are undecidable, the models disagree, or
    no model fits the regressor. Returns the (possibly permuted) regressor and what was done.
    """
    if order not in REGRESSOR_ORDERS:
        raise ValueError(f"regressor order must be one of {REGRESSOR_ORDERS}, got {order!r}")
    reg = scipy.sparse.csr_matrix(regressor)
    if isinstance(models, BodyModel):
        models = [models]
    fitting = [m for m in models if m.num_vertices == reg.shape[1]]
    if not fitting:
        raise RegressorError(path, f"regressor has {reg.shape[1]} columns but no body model has that many "
                                   f"vertices ({sorted({m.num_vertices for m in models})})")
    if reg.shape[0] != skeleton.num_joints:
        raise RegressorError(path, f"regressor has {reg.shape[0]} rows, expected {skeleton.num_joints} "
                                   f"({skeleton.name})")
    if order == "as-is":
        return reg, RegressorOrder("as-is", tuple(range(reg.shape[0])), (), sha256)
    reports = [check_regressor_sides(reg, m, skeleton, path) for m in fitting]
    perms = {tuple(int(i) for i in r["perm"]) for r in reports}
    if len(perms) != 1:
        raise RegressorError(path, "the body models disagree on which rows are left and right: "
                                   + "; ".join(f"{m.gender}: {r['message']}" for m, r in zip(fitting, reports)))
    perm = perms.pop()
    fixed = reg[list(perm)] if reports[0]["swapped"] else reg
    return scipy.sparse.csr_matrix(fixed), RegressorOrder("auto", perm, tuple(reports[0]["swapped_pairs"]), sha256)


def order_from_perm(perm, order: str = "auto", sha256: str = "", deftrafo_sha256: str = "",
                    skeleton: Skeleton = H36M_17) -> RegressorOrder:
    """The RegressorOrder of a permutation decided before (a build's driver checked the sides; its
    workers apply the same ``perm`` without loading every template again)."""
    perm = tuple(int(i) for i in perm)
    swapped = tuple(f"{skeleton.joints[li]}/{skeleton.joints[ri]}" for li, ri in zip(skeleton.left, skeleton.right)
                    if perm[li] == ri and perm[ri] == li)
    return RegressorOrder(order, perm, swapped, sha256, deftrafo_sha256)
