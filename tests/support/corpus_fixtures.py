"""Synthetic SequenceData for the corpus tests: random but contract-valid (proper rotations, z > 0)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from pipelines.writer import CorpusWriter
from schemas.records import SequenceData, ViewData
from schemas.store import TIME_CHUNK

J = 17
LENGTHS = (37, TIME_CHUNK + 311, 1, 2 * TIME_CHUNK + 5)  # incl. > TIME_CHUNK and > 2 chunks


def make_view(rng: np.random.Generator, T: int, camera_id: str) -> ViewData:
    R = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
    t = rng.normal(0, 1, 3)
    intr = np.array([1145.0, 1144.0, 512.0, 515.0, -0.2, 0.24, -0.002, -0.001, 0.0, 1000.0, 1002.0])
    intr[:4] += rng.normal(0, 5, 4)
    return ViewData(
        rig="h36m", camera_id=camera_id, rig_subject="S1", detections="projected",
        keypoints_2d=rng.uniform(-1, 1, (T, J, 2)).astype(np.float32),
        joints_cam=np.concatenate([rng.normal(0, 0.5, (T, J, 2)), rng.uniform(2, 7, (T, J, 1))], -1).astype(np.float32),
        in_view=rng.random((T, J)) > 0.1,
        intrinsics=intr, extrinsics=np.concatenate([R, t[:, None]], 1),
        trimmed_frames=int(rng.integers(0, 3)),
    )


def make_seq(rng: np.random.Generator, key: str, T: int, n_views: int = 2, *, sha: str | None = None,
             config_hash: str = "cfg1", split: str = "train") -> SequenceData:
    return SequenceData(
        key=key, source="amass", joints_world=rng.normal(0, 1, (T, J, 3)).astype(np.float32),
        views=[make_view(rng, T, f"cam{i}") for i in range(n_views)],
        dataset=key.split("/")[0], subject="s", name=key.rsplit("/", 1)[-1], action="",
        source_path=f"/data/{key}.npz", source_sha256=sha or f"sha-{key}", gender="female",
        betas=rng.normal(0, 1, 16).astype(np.float32), source_fps=120.0, fps=50.0,
        n_source_frames=int(T * 2.4), split=split, config_hash=config_hash,
    )


def make_seqs(seed: int = 0, lengths=LENGTHS, prefix: str = "CMU/01/") -> list[SequenceData]:
    """One sequence of each length, keys ``{prefix}00``, ``{prefix}01``, ...; 1, 2, 3, 1, ... views."""
    rng = np.random.default_rng(seed)
    return [make_seq(rng, f"{prefix}{i:02d}", T, n_views=1 + i % 3) for i, T in enumerate(lengths)]


def write_corpus(path, seqs, *, message="build", tag=None, rejects=(), build_info=None) -> str:
    """Commit ``seqs`` (and ``rejects``) as one new version of the corpus at ``path``; returns its id."""
    with CorpusWriter(path) as w:
        for s in seqs:
            w.add(s)
        for r in rejects:
            w.reject(r)
        return w.commit(message, tag=tag, build_info=build_info)
