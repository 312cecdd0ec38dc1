"""A sparse H36M-style joint regressor (17 x 6890) for the stand-in body, in H36M_17 or SPIN's row order.

Like SPIN's ``J_regressor_h36m.npy`` it uses 4-9 vertices a joint: for each joint, the vertices of
its body part nearest to an anchor point (SMPL-H joints plus an offset) in each octant around it,
weighted so that their mean hits the anchor.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import trimesh

from pipelines.synthetic.tube_mesh import vertex_tubes
from schemas.skeletons import H36M_17, SMPLH_52

_J = {name: i for i, name in enumerate(SMPLH_52.joints)}

# H36M joints as points relative to SMPL-H joints: (smplh joint(s) averaged, offset in metres).
_H36M_ANCHORS = {
    "pelvis": (("pelvis",), (0.0, -0.04, 0.0), ("torso",)),
    "r_hip": (("right_hip",), (-0.02, -0.04, 0.0), ("right_leg",)),
    "r_knee": (("right_knee",), (0.0, 0.0, 0.0), ("right_leg",)),
    "r_ankle": (("right_ankle",), (0.0, 0.0, 0.0), ("right_leg", "right_foot")),
    "l_hip": (("left_hip",), (0.02, -0.04, 0.0), ("left_leg",)),
    "l_knee": (("left_knee",), (0.0, 0.0, 0.0), ("left_leg",)),
    "l_ankle": (("left_ankle",), (0.0, 0.0, 0.0), ("left_leg", "left_foot")),
    "spine": (("spine1", "spine2"), (0.0, 0.0, 0.0), ("torso",)),
    "thorax": (("spine3", "neck", "neck"), (0.0, 0.0, 0.0), ("torso",)),
    "neck_nose": (("head",), (0.0, 0.02, 0.035), ("head",)),
    "head": (("head",), (0.0, 0.12, 0.0), ("head",)),
    "l_shoulder": (("left_shoulder",), (0.0, 0.0, 0.0), ("left_arm",)),
    "l_elbow": (("left_elbow",), (0.0, 0.0, 0.0), ("left_arm",)),
    "l_wrist": (("left_wrist",), (0.0, 0.0, 0.0), ("left_arm", "left_palm")),
    "r_shoulder": (("right_shoulder",), (0.0, 0.0, 0.0), ("right_arm",)),
    "r_elbow": (("right_elbow",), (0.0, 0.0, 0.0), ("right_arm",)),
    "r_wrist": (("right_wrist",), (0.0, 0.0, 0.0), ("right_arm", "right_palm")),
}


def _vertex_parts(model: dict[str, np.ndarray]) -> np.ndarray:
    """(V,) tube name of every vertex of a model made by ``make_body_model``."""
    out = vertex_tubes()
    if len(out) != len(model["v_template"]):
        raise ValueError("h36m_regressor needs a model made by make_body_model")
    return out


def _convex_weights(V: np.ndarray, dist: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1, close to Gaussian distance weights, with ``w @ V ~ anchor``."""
    w0 = np.exp(-0.5 * (dist / dist.mean()) ** 2)
    w0 /= w0.sum()
    k, big = len(V), 1e3
    A = np.vstack([V.T * big, np.full((1, k), big), np.eye(k)])
    b = np.concatenate([anchor * big, [big], w0])
    w, _ = scipy.optimize.nnls(A, b)
    return w / w.sum()


def _octant_vertices(points: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Indices of the point nearest to ``anchor`` in each of the 8 octants around it (<= 8 points),
    so that the anchor lies inside their convex hull."""
    rel = points - anchor
    dist = np.linalg.norm(rel, axis=1)
    octant = (rel[:, 0] > 0) * 4 + (rel[:, 1] > 0) * 2 + (rel[:, 2] > 0)
    return np.array([np.flatnonzero(octant == o)[np.argmin(dist[octant == o])]
                     for o in range(8) if np.any(octant == o)])


# SPIN's J_regressor_h36m.npy row order as H36M_17 rows: its rows 1-3 are the LEFT leg, 4-6 the right
# leg; the arms already follow H36M_17. ``spin = h36m[SPIN_ROWS]`` (the swap is its own inverse).
SPIN_ROWS = (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)


def h36m_regressor(model: dict[str, np.ndarray], vertices_per_joint: int = 40) -> np.ndarray:
    """(17, 6890) regressor in H36M_17 row order, as sparse as SPIN's: 4-9 vertices a joint.

    For each joint, the vertices of the body part it sits in that are nearest to its anchor point in
    each of the 8 octants around it (the anchor lies inside their hull) get non-negative weights
    summing to 1, as close as possible to Gaussian distance weights while their weighted mean hits
    the anchor (least squares with heavily weighted mean and sum-to-one rows, under w >= 0).
    ``vertices_per_joint`` is the size of the neighbourhood the octants are searched in.
    """
    mesh = trimesh.Trimesh(model["v_template"], model["f"], process=False)
    J = np.asarray(model["J"])
    parts = _vertex_parts(model)
    R = np.zeros((H36M_17.num_joints, len(mesh.vertices)))
    for n, name in enumerate(H36M_17.joints):
        names, off, pool = _H36M_ANCHORS[name]
        anchor = np.mean([J[_J[s]] for s in names], axis=0) + off
        # Candidates: the body part the joint sits in (so that the anchor lies inside their hull).
        cand = np.flatnonzero(np.isin(parts, pool))
        sub = trimesh.PointCloud(mesh.vertices[cand])
        for k in (vertices_per_joint, 2 * vertices_per_joint, 4 * vertices_per_joint):
            # Widen the neighbourhood until the anchor lies inside its hull (fit within 0.5 mm).
            _, loc = sub.kdtree.query(anchor, k=min(k, len(cand)))
            idx = cand[loc][_octant_vertices(mesh.vertices[cand[loc]], anchor)]
            dist = np.linalg.norm(mesh.vertices[idx] - anchor, axis=1)
            w = _convex_weights(mesh.vertices[idx], dist, anchor)
            if np.linalg.norm(w @ mesh.vertices[idx] - anchor) < 5e-4 and (w > 1e-6).sum() >= 4:
                break
        w[w <= 1e-6] = 0.0
        R[n, idx] = w / w.sum()
    return R
