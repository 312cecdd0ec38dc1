"""Fixtures shared by the Human3.6M tests (reading/import and the build/export)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.synthetic.h36m import write_h36m_files

SUBJECTS = ("S1", "S9", "S11")
ACTIONS = ("Directions 1", "Walking")
FRAMES = 40


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(folder, paths) of synthetic VideoPose3D-format H36M files (some 2D sequences 3 frames longer)."""
    d = tmp_path_factory.mktemp("h36m")
    return d, write_h36m_files(d, seed=3, subjects=SUBJECTS, actions=ACTIONS, frames=FRAMES,
                               extra_2d_frames=(0, 3))


def same_tree(a, b) -> bool:
    """Nested dicts/lists of arrays (or None) equal in structure, dtype and values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and np.array_equal(a, b)
