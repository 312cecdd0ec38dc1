"""The read side of a corpus: one version (one Icechunk snapshot) opened read-only.

This is the contract between the pipelines that write corpora and the trainer that reads them, so it
lives here, below both: ``pipelines`` (builds, the writer's carry-over, the CLI's listings) and
``uplift`` (the window stream, evaluation) ask it their questions and never read manifests or
arrays themselves.

A reader is pinned to one snapshot: later commits never change what an open reader sees. It pickles
as "reopen this path at this snapshot" (DataLoader workers, Dask).
"""

from __future__ import annotations

import os
from pathlib import Path

import icechunk
import numpy as np
import pyarrow as pa
import zarr

from schemas import manifests as M
from schemas import store as S
from schemas.errors import CorpusError, one_line
from schemas.records import Reject
from schemas.manifests import read_manifest
from schemas.versions import open_version, split_path_at_version
from schemas.storage import parse_location

_SPECS = {s.path: s for s in S.ARRAYS + S.OPTIONAL_ARRAYS}


def array_spec(path_or_leaf: str) -> S.ArraySpec:
    """The ``schemas.store`` spec of an array by its path (``"views/keypoints_2d"``) or its last
    component (``"keypoints_2d"``, also the attribute name on ``SequenceData`` / ``ViewData``)."""
    if path_or_leaf in _SPECS:
        return _SPECS[path_or_leaf]
    for s in _SPECS.values():
        if s.leaf == path_or_leaf:
            return s
    raise KeyError(path_or_leaf)


class CorpusReader:
    """A read-only view of one corpus version.

    Manifests as Arrow tables: ``sequences``, ``views``, ``rejects`` (``schemas.manifests``).
    """

    def __init__(self, path: Path | str, version_id: str, root: zarr.Group, session: icechunk.Session):
        self.path = path
        self.version_id = version_id
        self._root = root
        self._session = session  # keep the session (and its store) alive
        attrs = dict(root.attrs)
        if attrs.get(S.ATTR_FORMAT) not in S.READABLE_FORMATS:
            raise CorpusError(f"{path}@{version_id}: not a corpus version "
                              f"(store format {attrs.get(S.ATTR_FORMAT)!r}, expected one of {S.READABLE_FORMATS})")
        self.store_format = str(attrs[S.ATTR_FORMAT])
        self.fps = float(attrs[S.ATTR_FPS])
        self.joint_set = str(attrs[S.ATTR_JOINT_SET])
        self.build_info = dict(attrs.get(S.ATTR_BUILD_INFO) or {})
        self._handles: dict[str, zarr.Array] = {}
        where = f"{path}@{version_id}"
        try:
            self.num_joints = int(self.array(S.JOINTS_WORLD).shape[1])
            self.optional_arrays = tuple(s for s in S.OPTIONAL_ARRAYS if _has_array(root, s.path))
            # columns added after a version was written read as nulls (``schemas.manifests.ADDED_COLUMNS``)
            self.sequences = M.conformed("sequences", read_manifest(root, "sequences"))
            self.views = M.conformed("views", read_manifest(root, "views"))
            self.rejects = M.conformed("rejects", read_manifest(root, "rejects"))
            self._seq_off = _int_column(self.sequences, "offset")
            self._seq_len = _int_column(self.sequences, "n_frames")
            self._seq_ids = _int_column(self.sequences, "sequence_id")
            self._seq_by_key = {k: i for i, k in enumerate(self.sequences.column("key").to_pylist())}
            self._view_off = _int_column(self.views, "offset")
            self._view_len = _int_column(self.views, "n_frames")
            self._view_seq = _int_column(self.views, "sequence_id")
            self._view_ids = _int_column(self.views, "view_id")
        except CorpusError as e:
            raise CorpusError(f"{where}: {e}") from None
        except (KeyError, ValueError, TypeError, OSError, IndexError, pa.ArrowException) as e:
            raise CorpusError(f"{where}: unreadable manifests or arrays ({type(e).__name__}: "
                              f"{one_line(e, 200)})") from None
        self._seq_by_id = {int(s): i for i, s in enumerate(self._seq_ids)}
        self._view_by_id = {int(v): i for i, v in enumerate(self._view_ids)}
        problem = self._layout_problem()
        if problem:
            raise CorpusError(f"{where}: manifests do not match the arrays ({problem}); the version was altered "
                              f"or damaged, nothing is read from it")

    def _layout_problem(self) -> str | None:
        """What makes the manifests disagree with the arrays, or None (checked on every open).

        The writer's layout exactly: unique keys and ids (view ids are their row numbers, which index
        the camera arrays), offsets contiguous from 0 in row order with non-negative lengths that sum to the
        arrays' frames, every per-frame array of a kind equally long, each view of an existing
        sequence and as long as it. A manifest edited on disk then fails here instead of making
        readers return other frames than it names.
        """
        n_seq, n_views = len(self._seq_off), len(self._view_off)
        if len(self._seq_by_key) != n_seq or len(self._seq_by_id) != n_seq:
            return "duplicate sequence keys or ids"
        if not np.array_equal(self._view_ids, np.arange(n_views)):
            return "view ids are not their row numbers 0..V-1"
        lengths = {s.path: int(self.array(s).shape[0]) for s in S.ARRAYS + self.optional_arrays}
        # format 2: a writer's region may start at the next chunk boundary (padding between regions)
        chunk = ({s.path: int(self.array(s).chunks[0]) for s in S.ARRAYS + self.optional_arrays}
                 if self.store_format == S.STORE_FORMAT else {})
        for per, n_rows in (("sequence_frame", None), ("view_frame", None), ("view", n_views)):
            got = {p: n for p, n in lengths.items() if array_spec(p).per == per}
            if len(set(got.values())) > 1 or (n_rows is not None and set(got.values()) - {n_rows}):
                return f"arrays of one kind differ in length: {got}"
        for name, off, n, arr in (("sequences", self._seq_off, self._seq_len, S.JOINTS_WORLD.path),
                                  ("views", self._view_off, self._view_len, S.KEYPOINTS_2D.path)):
            bad = _offsets_problem(off, n, lengths[arr], chunk.get(arr))
            if bad:
                return f"{name} {bad}"
        if n_views:
            idx = np.array([self._seq_by_id.get(int(s), -1) for s in self._view_seq])
            if (idx < 0).any():
                return f"view row {int(np.argmax(idx < 0))} names no sequence"
            if not np.array_equal(self._seq_len[idx], self._view_len):
                return f"view row {int(np.argmax(self._seq_len[idx] != self._view_len))} is not as long as its sequence"
        return None

    @classmethod
    def open(cls, path: str | os.PathLike, version: str | None = None) -> "CorpusReader":
        """Open ``version`` (tag | branch | snapshot id; None = tip of main); CorpusError if missing."""
        path = parse_location(path)
        snap, root, session = open_version(path, version)
        return cls(path, snap, root, session)

    def __reduce__(self):
        return (CorpusReader.open, (str(self.path), self.version_id))

    def __repr__(self) -> str:
        return (f"CorpusReader({str(self.path)!r}, version={self.version_id!r}, "
                f"sequences={self.sequences.num_rows}, views={self.views.num_rows})")

    @property
    def spec(self) -> str:
        """``"PATH@SNAPSHOT"``: this exact version, as the trainer's corpus arguments spell it."""
        return f"{self.path}@{self.version_id}"

    # -- arrays ------------------------------------------------------------------------------------
    def array(self, spec: S.ArraySpec) -> zarr.Array:
        """A read-only handle on the array described by ``spec``."""
        h = self._handles.get(spec.path)
        if h is None:
            h = self._handles[spec.path] = self._root[spec.path]
        return h

    def read_sequence(self, key_or_id: str | int) -> dict[str, np.ndarray]:
        """All per-sequence-frame arrays of one sequence: ``{"joints_world": (T, J, 3)}``, plus the optional
        arrays this version holds (``"joints_world_32": (T, 32, 3)``)."""
        i = self._seq_index(key_or_id)
        a, n = int(self._seq_off[i]), int(self._seq_len[i])
        return {s.leaf: self.array(s)[a:a + n] for s in S.ARRAYS + self.optional_arrays
                if s.per == "sequence_frame"}

    def read_view(self, view_id: int, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Frames ``start:stop`` of one view: keypoints_2d (T, J, 2), joints_cam (T, J, 3), in_view (T, J)."""
        i = self._view_index(view_id)
        n = int(self._view_len[i])
        start, stop, _ = slice(start, stop).indices(n)  # same clipping as slicing the view's frames
        stop = max(start, stop)
        a = int(self._view_off[i])
        return {s.leaf: self.array(s)[a + start:a + stop] for s in S.ARRAYS if s.per == "view_frame"}

    def camera(self, view_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Intrinsics (11,) float64 and world-to-camera extrinsics (3, 4) float64 of one view."""
        self._view_index(view_id)
        return self.array(S.INTRINSICS)[int(view_id)], self.array(S.EXTRINSICS)[int(view_id)]

    # -- manifest rows -----------------------------------------------------------------------------
    def has_sequence(self, key_or_id: str | int) -> bool:
        table = self._seq_by_key if isinstance(key_or_id, str) else self._seq_by_id
        return (key_or_id if isinstance(key_or_id, str) else int(key_or_id)) in table

    def sequence_row(self, key_or_id: str | int) -> dict:
        """The ``sequences`` manifest row of one sequence (by key or sequence_id); KeyError if absent."""
        return self.sequences.slice(self._seq_index(key_or_id), 1).to_pylist()[0]

    def view_rows(self, key_or_id: str | int) -> list[dict]:
        """The ``views`` manifest rows of one sequence, in view_id order."""
        sid = self.sequence_row(key_or_id)["sequence_id"]
        idx = np.flatnonzero(self._view_seq == sid)
        return self.views.take(pa.array(idx)).to_pylist() if len(idx) else []

    def reject_records(self) -> list[Reject]:
        """Every source this version could not turn into a sequence, as build reports list them."""
        return [Reject(r["source_path"], r["reason"], r["kind"] or "input", r["source_sha256"] or "")
                for r in self.rejects.to_pylist()]

    def source_index(self) -> dict[str, list[dict]]:
        """source_path -> its sequences' ``{"key", "source_sha256", "config_hash"}`` (rebuild planning)."""
        out: dict[str, list[dict]] = {}
        cols = [self.sequences.column(c).to_pylist() for c in ("source_path", "key", "source_sha256", "config_hash")]
        for path, key, sha, config in zip(*cols):  # column by column: ~10x faster than to_pylist() of rows
            out.setdefault(path, []).append({"key": key, "source_sha256": sha, "config_hash": config})
        return out

    def source_status(self) -> dict[str, tuple]:
        """source_path -> (size, mtime_ns, inode, sha256) as recorded when the version was built, for every
        source (sequence or reject) with a sha256; the status is (None, None, None) where none was
        recorded (older versions). Rebuild planning trusts the sha256 of a file whose status is unchanged."""
        out = {}
        for table in (self.sequences, self.rejects):
            cols = [table.column(c).to_pylist() for c in ("source_path", *M.SOURCE_STATUS, "source_sha256")]
            for path, size, mtime_ns, inode, sha in zip(*cols):
                if path and sha:
                    out[path] = (size, mtime_ns, inode, sha)
        return out

    def source_paths(self) -> set[str]:
        """Every source file this version accounts for, as a sequence or as a reject."""
        return set(self.sequences.column("source_path").to_pylist()) | set(self.rejects.column("source_path").to_pylist())

    # -- statistics --------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        """Sequence frames over all sequences."""
        return int(self._seq_len.sum()) if len(self._seq_len) else 0

    def in_view_fraction(self) -> float:
        """Frames with every joint in view, over all view frames (from the views manifest)."""
        frames = self._view_len.astype(np.int64)
        if not frames.sum():
            return 1.0
        frac = np.asarray(self.views.column("in_view_fraction").to_pylist(), dtype=np.float64)
        return float((frames * frac).sum() / frames.sum())

    def n_flagged_views(self) -> int:
        """Views that leave some joint out of view in some frame."""
        frac = np.asarray(self.views.column("in_view_fraction").to_pylist(), dtype=np.float64)
        return int((frac < 1.0).sum())

    def out_of_view_fraction(self) -> float:
        """2D joints outside the image over every view frame: from the counts the writer recorded in the
        views manifest; a version written before them reads the in-view array (a few chunks at a time)."""
        counts = self.views.column("n_out_of_view")
        if counts.null_count == 0:
            total = int(self._view_len.astype(np.int64).sum()) * self.num_joints
            return int(counts.to_numpy(zero_copy_only=False).sum()) / total if total else 0.0
        arr = self.array(S.IN_VIEW)
        n = arr.shape[0]
        if n == 0:
            return 0.0
        step = arr.chunks[0] * 8
        out = sum(int((~np.asarray(arr[a:min(n, a + step)])).sum()) for a in range(0, n, step))
        return out / (n * arr.shape[1])

    # -- lookups -----------------------------------------------------------------------------------
    def _seq_index(self, key_or_id) -> int:
        if isinstance(key_or_id, str):
            i = self._seq_by_key.get(key_or_id)
        else:
            i = self._seq_by_id.get(int(key_or_id))
        if i is None:
            raise KeyError(f"{self.path}@{self.version_id}: no sequence {key_or_id!r}")
        return i

    def _view_index(self, view_id) -> int:
        i = self._view_by_id.get(int(view_id))
        if i is None:
            raise KeyError(f"{self.path}@{self.version_id}: no view {view_id!r}")
        return i


def _int_column(table: pa.Table, name: str) -> np.ndarray:
    """(rows,) int64 of a manifest column that must hold no nulls."""
    col = table.column(name)
    if col.null_count:
        raise CorpusError(f"manifest column {name!r} holds {col.null_count} nulls")
    arr = col.to_numpy()
    if arr.dtype.kind not in "iu":
        raise CorpusError(f"manifest column {name!r} is {arr.dtype}, expected integers")
    return arr.astype(np.int64, copy=False)


def _offsets_problem(off: np.ndarray, n: np.ndarray, total: int, chunk: int | None = None) -> str | None:
    """None when rows ``[off, off + n)`` tile ``[0, total)`` in row order, each starting where the
    previous one ended or (``chunk``: store format 2) at the next multiple of ``chunk`` after it (the
    padding between two writers' regions); else the first offender."""
    if len(n) and n.min() < 0:
        i = int(np.argmax(n < 0))
        return f"row {i}: n_frames {int(n[i])} < 0"
    prev_end = np.concatenate([[0], (off + n)[:-1]]) if len(n) else n
    ok = off == prev_end
    if chunk:
        ok |= off == -(-prev_end // chunk) * chunk
    bad = np.flatnonzero(~ok)
    if len(bad):
        i = int(bad[0])
        rule = "contiguous from 0" if not chunk else f"contiguous from 0 or padded to the next multiple of {chunk}"
        return f"row {i}: offset {int(off[i])} after a row ending at {int(prev_end[i])} (offsets are {rule})"
    end = int((off + n)[-1]) if len(n) else 0
    if end != total:
        return f"rows end at frame {end} but the arrays hold {total} frames"
    return None


def _has_array(group: zarr.Group, path: str) -> bool:
    try:
        return isinstance(group[path], zarr.Array)
    except (KeyError, FileNotFoundError):
        return False


def open_corpus(path_at_version: str | os.PathLike) -> CorpusReader:
    """Open ``"PATH@VERSION"`` or ``"PATH"`` (tip of main); see ``split_path_at_version``."""
    return CorpusReader.open(*split_path_at_version(path_at_version))
