"""Parquet manifest schemas: every column name and type a writer or reader may use."""

from __future__ import annotations

import pyarrow as pa

SEQUENCES = pa.schema([
    pa.field("sequence_id", pa.int64(), nullable=False),
    pa.field("key", pa.string(), nullable=False),  # unique, e.g. "CMU/01/01_01" or "h36m/S1/Directions 1"
    pa.field("source", pa.string(), nullable=False),  # "amass" | "h36m"
    pa.field("dataset", pa.string()),
    pa.field("subject", pa.string()),
    pa.field("name", pa.string()),
    pa.field("action", pa.string()),  # H36M action label; "" for AMASS
    pa.field("source_path", pa.string()),
    pa.field("source_sha256", pa.string()),
    pa.field("gender", pa.string()),
    pa.field("body_model", pa.string()),  # family of the body model the joints came from: "smplh" | "smplx"; "" (H36M)
    pa.field("betas", pa.list_(pa.float32())),
    pa.field("source_fps", pa.float64()),
    pa.field("fps", pa.float64()),
    pa.field("n_source_frames", pa.int64()),
    pa.field("n_frames", pa.int64(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),  # into sequences/* arrays
    pa.field("split", pa.string(), nullable=False),  # "train" | "val" | "test"
    pa.field("config_hash", pa.string()),  # hash of everything that shaped this sequence's data
])

VIEWS = pa.schema([
    pa.field("view_id", pa.int64(), nullable=False),  # row in views/intrinsics and views/extrinsics
    pa.field("sequence_id", pa.int64(), nullable=False),
    pa.field("rig", pa.string(), nullable=False),  # "h36m" | "3dhp"
    pa.field("camera_id", pa.string(), nullable=False),
    pa.field("rig_subject", pa.string()),  # whose extrinsics (H36M subject), "" for 3DHP
    pa.field("detections", pa.string()),  # "projected" (AMASS), "cpn" or "gt" (H36M)
    pa.field("offset", pa.int64(), nullable=False),  # into views/* per-frame arrays
    pa.field("n_frames", pa.int64(), nullable=False),
    pa.field("trimmed_frames", pa.int64()),  # 2D frames dropped to match the 3D length
    pa.field("in_view_fraction", pa.float64()),  # fraction of frames with every joint in view
])

REJECTS = pa.schema([
    pa.field("source_path", pa.string(), nullable=False),
    pa.field("source_sha256", pa.string()),
    pa.field("kind", pa.string()),  # the error's ``kind``
    pa.field("reason", pa.string(), nullable=False),
])

# Columns added after store format "mocap-corpus/1" was fixed: versions written before lack them
# (readers see nulls); validation does not count their absence as a problem.
LATER_COLUMNS = {"sequences": ("body_model",)}

MANIFESTS = {"sequences": SEQUENCES, "views": VIEWS, "rejects": REJECTS}

SPLITS = ("train", "val", "test")
