"""A small corpus a tiny model can learn from: smooth synthetic motion seen by one pinhole camera."""

from __future__ import annotations

import numpy as np

from pipelines.writer import CorpusWriter
from schemas.records import SequenceData, ViewData


# fx = width and the centre in the middle: pixels normalised the corpus way are 2 x/z and 2 y/z
PINHOLE = np.array([1000.0, 1000.0, 500.0, 500.0, 0, 0, 0, 0, 0, 1000.0, 1000.0])


def projected_corpus(path, n_seq=3, n_frames=120, seed=0, split="train", actions=("Walking 1", "Sitting")) -> str:
    """Smooth synthetic motion 4 m in front of a pinhole camera; 2D = its projection (learnable).

    ``n_seq`` sequences of (n_frames, 17, 3) joints, one view each; the first is in the test split.
    Commits with tag ``v1`` and returns ``"PATH@v1"``.
    """
    rng = np.random.default_rng(seed)
    bone = rng.normal(scale=0.3, size=(17, 3))
    bone[0] = 0
    w = CorpusWriter(path, num_joints=17, fps=50.0)
    for i in range(n_seq):
        t = np.arange(n_frames)[:, None, None] / 50.0
        amp, freq = rng.uniform(0.1, 0.4, size=(1, 17, 3)), rng.uniform(0.2, 1.0, size=(1, 17, 3))
        j = bone[None] + amp * np.sin(2 * np.pi * freq * t) + np.array([0, 0, 4.0])
        j = j.astype(np.float32)
        kp = (j[..., :2] / j[..., 2:] * 2.0).astype(np.float32)
        v = ViewData("h36m", "0", "S1", "projected", kp, j, np.ones((n_frames, 17), bool), PINHOLE, np.eye(3, 4))
        w.add(SequenceData(key=f"{split}/{i}", source="h36m", joints_world=j, views=[v],
                           split=split if i else "test", subject="S1", action=actions[i % len(actions)]))
    w.commit("synthetic", tag="v1")
    return f"{path}@v1"
