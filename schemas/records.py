"""In-memory records that flow from the per-sequence pipeline (AMASS build, H36M import) to the corpus writer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ViewData:
    """One sequence seen by one camera. T = the sequence's frame count."""

    rig: str  # "h36m" | "3dhp"
    camera_id: str
    rig_subject: str  # whose extrinsics (H36M subject id), "" when not applicable
    detections: str  # "projected" | "cpn" | "gt"
    keypoints_2d: np.ndarray  # (T, J, 2) float32, normalised image coordinates
    joints_cam: np.ndarray  # (T, J, 3) float32, metres, camera frame
    in_view: np.ndarray  # (T, J) bool
    intrinsics: np.ndarray  # (11,) float64: fx fy cx cy k1 k2 k3 p1 p2 res_w res_h
    extrinsics: np.ndarray  # (3, 4) float64: world-to-camera [R | t], t in metres
    trimmed_frames: int = 0  # 2D frames dropped to match the 3D length

    @property
    def in_view_fraction(self) -> float:
        return float(self.in_view.all(axis=-1).mean()) if len(self.in_view) else 0.0


@dataclass
class SequenceData:
    """One motion sequence, ready to be written. Metadata columns follow schemas.manifests.SEQUENCES."""

    key: str  # unique within a corpus, e.g. "CMU/01/01_01_poses"
    source: str  # "amass" | "h36m"
    joints_world: np.ndarray  # (T, J, 3) float32, metres, world frame (z-up)
    joints_world_32: np.ndarray | None = None  # (T, 32, 3) full H36M layout where the source has it
    views: list[ViewData] = field(default_factory=list)
    dataset: str = ""
    subject: str = ""
    name: str = ""
    action: str = ""
    source_path: str = ""
    source_sha256: str = ""
    gender: str = ""
    body_model: str = ""  # "smplh" | "smplx": the body-model family the joints were regressed with
    betas: np.ndarray | None = None  # (B,) float32
    source_fps: float = 0.0
    fps: float = 50.0
    n_source_frames: int = 0
    split: str = "train"
    config_hash: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.joints_world.shape[0])


@dataclass
class Reject:
    """A source that could not be turned into a sequence; becomes a ``rejects`` manifest row."""

    source_path: str
    reason: str
    kind: str = "input"
    source_sha256: str = ""
