"""Parquet manifest schemas: every column name and type a writer or reader may use, and how a stored
manifest is read back (``read_manifest``)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import store as S

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
    # the source file's status when its sha256 was taken (os.stat): a rebuild that finds the same
    # size, mtime and inode trusts the recorded sha256 without reading the file (null: not a file)
    pa.field("source_size", pa.int64()),
    pa.field("source_mtime_ns", pa.int64()),
    pa.field("source_inode", pa.int64()),
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
    pa.field("n_out_of_view", pa.int64()),  # (frame, joint) pairs outside the image, counted at write time
])

REJECTS = pa.schema([
    pa.field("source_path", pa.string(), nullable=False),
    pa.field("source_sha256", pa.string()),
    pa.field("kind", pa.string()),  # the error's ``kind``
    pa.field("reason", pa.string(), nullable=False),
    pa.field("source_size", pa.int64()),  # the file's status, as in SEQUENCES (null: not a regular file)
    pa.field("source_mtime_ns", pa.int64()),
    pa.field("source_inode", pa.int64()),
])

MANIFESTS = {"sequences": SEQUENCES, "views": VIEWS, "rejects": REJECTS}

# Nullable columns added after format 1: a corpus written before them lacks them; readers see them
# as nulls (``conformed``), validation does not count their absence as a problem.
ADDED_COLUMNS = {"sequences": ("body_model", "source_size", "source_mtime_ns", "source_inode"),
                 "views": ("n_out_of_view",),
                 "rejects": ("source_size", "source_mtime_ns", "source_inode")}
SOURCE_STATUS = ("source_size", "source_mtime_ns", "source_inode")


def conformed(name: str, table: pa.Table) -> pa.Table:
    """``table`` with the ``ADDED_COLUMNS`` of manifest ``name`` it lacks appended as nulls, in schema order."""
    missing = [c for c in ADDED_COLUMNS.get(name, ()) if c not in table.schema.names]
    if not missing:
        return table
    schema = MANIFESTS[name]
    for c in missing:
        table = table.append_column(schema.field(c), pa.nulls(table.num_rows, schema.field(c).type))
    order = [f.name for f in schema if f.name in table.schema.names] + \
            [n for n in table.schema.names if n not in schema.names]
    return table.select(order)


SPLITS = ("train", "val", "test")


def read_manifest(group, name: str) -> pa.Table:
    """The Parquet manifest ``name`` stored as a 1-D uint8 array in ``group`` (a corpus root, a
    ``zarr.Group``).

    ValueError when the array is not Parquet bytes (validation reports it as a finding).
    """
    arr = group[f"{S.MANIFESTS_GROUP}/{name}"]
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(f"manifest array {name} is {arr.dtype} {arr.shape}, expected 1-D uint8 Parquet bytes")
    return pq.read_table(io.BytesIO(np.asarray(arr[:]).tobytes()))
