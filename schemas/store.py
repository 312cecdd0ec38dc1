"""The on-disk contract of a corpus: Zarr v3 arrays inside one Icechunk repository.

One corpus = one Icechunk repository = one Zarr group. Ragged per-sequence data is concatenated
along time; offsets and lengths live in the manifests (see ``manifests.py``), which are stored in
the same repository (as Parquet bytes) so that a commit versions arrays and manifests together.

Rows in manifest order, offsets increasing. A build on a cluster writes each worker's shard of
sequences into its own chunk-aligned region (two writers never touch one chunk), so between two
sequences there may be padding: rows that no manifest row covers (fill value), only ever running up
to the next chunk boundary (``region_start``). Format 1 had no padding; readers read both, since
every read goes through the manifests' offsets.

Layout (F_seq = total sequence frames, F_view = total view frames, V = number of views)::

    /                               attrs: STORE_FORMAT, fps, joint_set, build_info (JSON)
    /sequences/joints_world         (F_seq, J, 3)  float32  metres, world frame (z-up)
    /views/keypoints_2d             (F_view, J, 2) float32  normalised image coords in [-1, 1]
    /views/joints_cam               (F_view, J, 3) float32  metres, camera frame
    /views/in_view                  (F_view, J)    bool     joint projects inside the image
    /views/intrinsics               (V, 11)        float64  fx fy cx cy k1 k2 k3 p1 p2 res_w res_h
    /views/extrinsics               (V, 3, 4)      float64  world-to-camera [R | t], t in metres
    /sequences/joints_world_32      (F_seq, 32, 3) float32  OPTIONAL: the full 32-joint Human3.6M layout
                                                            (corpora imported from data_3d_h36m.npz)
    /manifests/<name>               (nbytes,)      uint8    a Parquet file (sequences, views, rejects)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STORE_FORMAT = "mocap-corpus/2"  # 2: padding up to a chunk boundary may sit between sequences
READABLE_FORMATS = ("mocap-corpus/1", STORE_FORMAT)

# Frames per time chunk: a 351-frame window touches one or two chunks.
TIME_CHUNK = 4096


@dataclass(frozen=True)
class ArraySpec:
    path: str
    dtype: np.dtype
    trailing_shape: tuple  # shape after the leading (time or view) axis; "J" means the joint count
    per: str  # "sequence_frame", "view_frame" or "view"
    description: str

    @property
    def leaf(self) -> str:
        """The last path component: the attribute name on ``SequenceData`` / ``ViewData``."""
        return self.path.rsplit("/", 1)[-1]

    def shape(self, n: int, num_joints: int) -> tuple[int, ...]:
        trailing = tuple(num_joints if d == "J" else d for d in self.trailing_shape)
        return (n, *trailing)

    def chunks(self, num_joints: int) -> tuple[int, ...]:
        lead = TIME_CHUNK if self.per != "view" else 65536
        return self.shape(lead, num_joints)

    def compressors(self) -> tuple:
        """Blosc LZ4 with byte shuffle. Measured on stored poses: 1.29x, like zstd-3 with shuffle and far
        better than zarr's default zstd without shuffle (1.09x), at ~1/3 less write time than zstd."""
        from zarr.codecs import BloscCodec

        return (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)


JOINTS_WORLD = ArraySpec("sequences/joints_world", np.dtype("float32"), ("J", 3), "sequence_frame",
                         "3D joints in the world frame, metres")
KEYPOINTS_2D = ArraySpec("views/keypoints_2d", np.dtype("float32"), ("J", 2), "view_frame",
                         "2D keypoints, normalised image coordinates (aspect ratio kept)")
JOINTS_CAM = ArraySpec("views/joints_cam", np.dtype("float32"), ("J", 3), "view_frame",
                       "3D joints in the camera frame, metres")
IN_VIEW = ArraySpec("views/in_view", np.dtype("bool"), ("J",), "view_frame",
                    "joint projects inside the image (and in front of the camera)")
INTRINSICS = ArraySpec("views/intrinsics", np.dtype("float64"), (11,), "view",
                       "fx fy cx cy k1 k2 k3 p1 p2 res_w res_h (pixels)")
EXTRINSICS = ArraySpec("views/extrinsics", np.dtype("float64"), (3, 4), "view",
                       "world-to-camera [R | t], t in metres")


def region_start(end: int, chunk: int) -> int:
    """The first row a new write region may start at after rows ``[0, end)``: ``end`` rounded up to
    a multiple of ``chunk``, so that the region shares no chunk with what came before."""
    return -(-int(end) // int(chunk)) * int(chunk)


ARRAYS: tuple[ArraySpec, ...] = (JOINTS_WORLD, KEYPOINTS_2D, JOINTS_CAM, IN_VIEW, INTRINSICS, EXTRINSICS)

# Optional arrays: a corpus holds one for all its sequences or not at all (a writer declares it).
# The 32-joint H36M layout keeps the 15 joints VideoPose3D's loader drops, so that an export of an
# imported Human3.6M corpus hands that loader its original file back (H36M_32_TO_17 rows == JOINTS_WORLD).
JOINTS_WORLD_32 = ArraySpec("sequences/joints_world_32", np.dtype("float32"), (32, 3), "sequence_frame",
                            "3D joints in the full 32-joint Human3.6M layout, world frame, metres (optional)")
OPTIONAL_ARRAYS: tuple[ArraySpec, ...] = (JOINTS_WORLD_32,)
INTRINSICS_FIELDS = ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "p1", "p2", "res_w", "res_h")

MANIFESTS_GROUP = "manifests"

# Root attributes.
ATTR_FORMAT = "store_format"
ATTR_FPS = "fps"
ATTR_JOINT_SET = "joint_set"
ATTR_BUILD_INFO = "build_info"
