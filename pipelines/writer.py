"""The corpus writer: streams sequences into a new version of one Icechunk repository.

One corpus = one Icechunk repository (folder or s3:// URL) holding one Zarr v3 group laid out as in
``schemas.store``. Ragged data is concatenated along time; the Parquet manifests (``schemas.manifests``)
carry offsets and lengths and are stored *inside* the repository as uint8 arrays under
``/manifests/<name>``, so one Icechunk commit versions arrays and manifests together and a reader
(``schemas.reader``) never sees a half-written build.

Every build writes a complete corpus (a fresh group) in one writable session; unchanged sequences
are carried over from the parent version with ``add_from``. Frames are buffered per array until a
whole time chunk is ready and written chunk-aligned (resize + write), so memory stays bounded by
about one chunk per array plus the sequence being added. Nothing is visible until ``commit()``.

Layout choice
    Plain TIME_CHUNK-frame chunks, Blosc-LZ4 with byte shuffle (``schemas.store``), no sharding: on a
    1M-frame view array (benchmarks/corpus_window_reads.py, 2-core box) one 351-frame window per call
    ran ~470/s unsharded vs ~485/s with 16-chunk shards, and block reads (two chunks, 64 windows cut
    from each) ~25k vs ~20k windows/s: sharding does not help random window reads, and it makes writes
    coarser.

Concurrency policy (``schemas.repository``)
    Every commit runs under the repository's commit lock. A build is a full rewrite derived from the
    version it started from; if the branch moved since the writer's session started, rebasing would
    silently drop the other build's work, so ``commit()`` raises ``VersionConflictError`` instead and
    commits nothing (rerun the build on top of the new version). On object storage Icechunk's commit
    is a conditional write of the branch ref, so of two racing commits one fails with a conflict.
"""

from __future__ import annotations

import io
import json
import os
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _pkg_version

import icechunk
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from schemas import manifests as M
from schemas import store as S
from schemas.errors import CorpusError, VersionConflictError
from schemas.reader import CorpusReader, array_spec
from schemas.records import Reject, SequenceData
from schemas.errors import one_line
from schemas.repository import open_repository, repository_lock
from schemas.versions import DEFAULT_BRANCH, COMMIT_META_KEY, check_tag_name, create_tag
from schemas.storage import parse_location

# Manifest columns the writer computes itself; every other column must be a field of the record.
_COMPUTED = {"sequences": {"sequence_id", "n_frames", "offset", *M.SOURCE_STATUS},
             "views": {"view_id", "sequence_id", "n_frames", "offset", "n_out_of_view"}}


def _record_row(record, schema: pa.Schema, computed: set[str]) -> dict:
    """The manifest columns of ``schema`` read from ``record``'s attributes. A column that is neither
    an attribute nor computed by the writer is a programming error, raised, never written as null."""
    missing = [f.name for f in schema if f.name not in computed and not hasattr(record, f.name)]
    if missing:
        raise TypeError(f"{type(record).__name__} has no {missing} for manifest columns of the same name")
    return {f.name: getattr(record, f.name) for f in schema if f.name not in computed}

def _package_version() -> str:
    try:
        return _pkg_version("mocap-corpus")
    except PackageNotFoundError:
        return "unknown"


def _parquet_bytes(table: pa.Table) -> np.ndarray:
    """(nbytes,) uint8: ``table`` as one Parquet file."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# One sequence as the writer takes it: (manifest row, frame arrays by path, [(view row, view arrays)])

Parts = tuple[dict, dict, list]


def sequence_parts(seq: SequenceData, specs: tuple[S.ArraySpec, ...]) -> Parts:
    """The parts of a computed sequence (``specs``: the arrays this version holds)."""
    row = _record_row(seq, M.SEQUENCES, _COMPUTED["sequences"])
    row["betas"] = None if seq.betas is None else np.asarray(seq.betas, np.float32).tolist()
    frames = {s.path: getattr(seq, s.leaf, None) for s in specs if s.per == "sequence_frame"}
    missing = [p for p, a in frames.items() if a is None]
    if missing:
        raise ValueError(f"{seq.key}: no {missing} (this corpus version holds them for every sequence)")
    views = []
    for v in seq.views:
        vrow = _record_row(v, M.VIEWS, _COMPUTED["views"])
        varrays = {s.path: getattr(v, s.leaf) for s in S.ARRAYS if s.per != "sequence_frame"}
        views.append((vrow, varrays))
    return row, frames, views


def carried_parts(reader: CorpusReader, key: str, specs: tuple[S.ArraySpec, ...], num_joints: int) -> Parts:
    """The parts of sequence ``key`` of ``reader``'s version, to carry over bit-identically."""
    if reader.num_joints != num_joints:
        raise ValueError(f"{reader.path}: carries {reader.num_joints} joints, this writer {num_joints}")
    row = reader.sequence_row(key)
    wanted = {s.path for s in specs}
    frames = {array_spec(k).path: a for k, a in reader.read_sequence(key).items()}
    frames = {p: a for p, a in frames.items() if p in wanted}  # drop optional arrays not declared here
    missing = [s.path for s in specs if s.per == "sequence_frame" and s.path not in frames]
    if missing:
        raise ValueError(f"{reader.path}: sequence {key!r} has no {missing} to carry over")
    views = []
    for vrow in reader.view_rows(key):
        varrays = {array_spec(k).path: a for k, a in reader.read_view(vrow["view_id"]).items()}
        varrays[S.INTRINSICS.path], varrays[S.EXTRINSICS.path] = reader.camera(vrow["view_id"])
        views.append((vrow, varrays))
    return row, frames, views


def _checked(key: str, p: str, a, n: int | None, num_joints: int) -> np.ndarray:
    spec = array_spec(p)
    a = np.asarray(a)
    if spec.per == "view":
        want = spec.shape(1, num_joints)[1:]
    else:
        lead = n if n is not None else (a.shape[0] if a.ndim else 0)
        want = spec.shape(lead, num_joints)
    if a.shape != tuple(want):
        raise ValueError(f"{key}: {p} has shape {a.shape}, expected {tuple(want)}")
    a = np.ascontiguousarray(a, dtype=spec.dtype)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{key}: {p} holds NaN or Inf")
    return a


def checked_parts(row: dict, frames: dict, views: list, num_joints: int) -> Parts:
    """Every array checked (shape, finite) and cast before anything is written, so a bad record leaves
    no trace; each view row gets its frame count and its out-of-view count (``n_out_of_view``: the
    statistics a build report needs, so nothing reads the arrays back for them)."""
    key = row["key"]
    frames = {p: _checked(key, p, a, None, num_joints) for p, a in frames.items()}
    n = len(frames[S.JOINTS_WORLD.path])
    out = []
    for vrow, varrays in views:
        varrays = {p: _checked(key, p, a, n, num_joints) for p, a in varrays.items()}
        in_view = varrays[S.IN_VIEW.path]
        out.append(({**vrow, "n_frames": n, "n_out_of_view": int(in_view.size - np.count_nonzero(in_view))}, varrays))
    return row, frames, out


# --------------------------------------------------------------------------------------------------
# Writer


def _create_arrays(root: zarr.Group, specs: tuple[S.ArraySpec, ...], num_joints: int,
                   frame_rows: int = 0) -> dict[str, zarr.Array]:
    """The arrays of ``specs`` in ``root``: per-frame ones ``frame_rows`` long, per-view ones empty."""
    out = {}
    for spec in specs:
        parent, name = spec.path.rsplit("/", 1)
        n = frame_rows if spec.per != "view" else 0
        out[spec.path] = root.require_group(parent).create_array(
            name, shape=spec.shape(n, num_joints), dtype=spec.dtype, chunks=spec.chunks(num_joints),
            compressors=spec.compressors(), fill_value=False if spec.dtype == bool else 0)
    return out



# Chunks buffered per array before a write: one resize and one multi-chunk write (which zarr encodes
# concurrently) per flush instead of per chunk; memory stays a few MB per array.
FLUSH_CHUNKS = 8


def _flush_rows(chunk: int) -> tuple[int, int]:
    """(rows per flush, write unit in rows) for an array with ``chunk`` rows per chunk."""
    return chunk * FLUSH_CHUNKS, chunk


class _Appender:
    """Buffers rows of one array and writes them in whole, chunk-aligned blocks (resize + write).

    ``start``: the first row to write (a worker's region, chunk-aligned); ``grow`` False: the array is
    already long enough (a build layout, ``ForkedCorpusWriter``), only rows are written.
    """

    def __init__(self, arr: zarr.Array, start: int = 0, grow: bool = True):
        self.arr = arr
        self.chunk = int(arr.chunks[0])
        self.flush_rows, self.unit = _flush_rows(self.chunk)
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.written = int(start)
        self.grow = grow

    def append(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        self.pending.append(rows)
        self.n_pending += len(rows)
        if self.n_pending >= self.flush_rows:
            self._write(final=False)

    def finish(self) -> None:
        self._write(final=True)

    @property
    def length(self) -> int:
        return self.written + self.n_pending

    def _write(self, final: bool) -> None:
        if self.n_pending == 0:
            return
        block = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
        n = len(block) if final else (len(block) // self.unit) * self.unit
        if n:
            start, stop = self.written, self.written + n
            if self.grow:
                self.arr.resize((stop, *self.arr.shape[1:]))
            self.arr[start:stop] = block[:n]
            self.written = stop
        rest = block[n:]
        # Copy the tail so the caller's (possibly large) sequence array is not kept alive.
        self.pending = [rest.copy()] if len(rest) else []
        self.n_pending = len(rest)


class CorpusWriter:
    """Streams sequences into a new version of the corpus at ``path``; ``commit()`` publishes it.

    Use as a context manager: leaving the block without ``commit()`` aborts (nothing becomes visible).
    """

    def __init__(self, path: str | os.PathLike, *, num_joints: int = 17, joint_set: str = "h36m17",
                 fps: float = 50.0, branch: str = DEFAULT_BRANCH, optional_arrays: tuple[str, ...] = ()):
        """``optional_arrays``: names of ``schemas.store.OPTIONAL_ARRAYS`` (e.g. ``"joints_world_32"``)
        this version holds for every sequence (``add`` then needs the attribute of that name)."""
        self.path = parse_location(path)
        known = {s.leaf: s for s in S.OPTIONAL_ARRAYS}
        unknown = [n for n in optional_arrays if n not in known]
        if unknown:
            raise ValueError(f"unknown optional arrays {unknown} (known: {sorted(known)})")
        self._specs = S.ARRAYS + tuple(known[n] for n in dict.fromkeys(optional_arrays))
        self.num_joints = int(num_joints)
        self.joint_set = str(joint_set)
        self.fps = float(fps)
        self.branch = branch
        self._repo = open_repository(self.path, create=True)
        if branch not in self._repo.list_branches():
            raise CorpusError(f"{self.path}: no branch {branch!r} (create it from a version first)")
        self._open_version()
        self._seq_rows: list[dict] = []
        self._view_rows: list[dict] = []
        self._reject_rows: list[dict] = []
        self._keys: set[str] = set()
        self._state = "open"  # -> "committed" | "aborted"

    def _open_version(self) -> None:
        """The writable session, its fresh root group and one appender per array."""
        self._session = self._repo.writable_session(self.branch)
        self._base = self._session.snapshot_id
        # A version is a complete corpus: start from an empty root group.
        self._root = zarr.open_group(self._session.store, mode="w")
        self._arrays: dict[str, _Appender] = {p: _Appender(a) for p, a in _create_arrays(self._root, self._specs,
                                                                                          self.num_joints).items()}

    # -- adding ------------------------------------------------------------------------------------
    def add(self, seq: SequenceData) -> int:
        """Append one sequence (frames and views); returns its ``sequence_id`` (= order of addition)."""
        return self._append(*sequence_parts(seq, self._specs))

    def add_from(self, reader: CorpusReader, key: str) -> int:
        """Carry one sequence (frames, views, cameras, manifest rows) over from ``reader`` bit-identically."""
        return self._append(*carried_parts(reader, key, self._specs, self.num_joints))

    def reject(self, r: Reject, status: tuple | None = None) -> None:
        """Record a source that could not be turned into a sequence (a ``rejects`` manifest row);
        ``status``: its file's (size, mtime_ns, inode), when it is a regular file."""
        self._check_open()
        row = {f.name: getattr(r, f.name, None) for f in M.REJECTS}
        row.update(zip(M.SOURCE_STATUS, status or (None,) * len(M.SOURCE_STATUS)))
        self._reject_rows.append(row)

    def _append(self, row: dict, frames: dict[str, np.ndarray], views: list[tuple[dict, dict]]) -> int:
        self._check_open()
        row, frames, views = checked_parts(row, frames, views, self.num_joints)
        self._check_row(row)
        n = len(frames[S.JOINTS_WORLD.path])
        sid = len(self._seq_rows)
        seq_row = {f.name: row.get(f.name) for f in M.SEQUENCES}
        seq_row.update(sequence_id=sid, n_frames=n, offset=self._arrays[S.JOINTS_WORLD.path].length)
        for p, a in frames.items():
            self._arrays[p].append(a)
        for vrow, varrays in views:
            view_row = {f.name: vrow.get(f.name) for f in M.VIEWS}
            view_row.update(view_id=len(self._view_rows), sequence_id=sid,
                            offset=self._arrays[S.KEYPOINTS_2D.path].length)
            for p, a in varrays.items():
                self._arrays[p].append(a[None] if array_spec(p).per == "view" else a)
            self._view_rows.append(view_row)
        self._seq_rows.append(seq_row)
        self._keys.add(row["key"])
        return sid

    def _check_row(self, row: dict) -> None:
        """A sequence row fits this version: a new key, the corpus fps."""
        key = row["key"]
        if key in self._keys:
            raise ValueError(f"duplicate sequence key {key!r}")
        if row.get("fps") is not None and abs(float(row["fps"]) - self.fps) > 1e-9:
            raise ValueError(f"{key}: sequence fps {row['fps']} != corpus fps {self.fps}")

    # -- committing --------------------------------------------------------------------------------
    def commit(self, message: str, *, tag: str | None = None, build_info: dict | None = None) -> str:
        """Write manifests and attrs and commit ONE snapshot on the branch; returns its snapshot id.

        Raises ``VersionConflictError`` (nothing committed) if the branch moved since this writer
        started, and ``CorpusError`` if ``tag`` already exists. Either way the writer is aborted.
        """
        self._check_open()
        if tag is not None:  # every rule a tag must meet, before anything is committed
            try:
                check_tag_name(self.path, tag, branches=(DEFAULT_BRANCH, *self._repo.list_branches()))
            except CorpusError:
                self.abort()
                raise
        try:
            for app in self._arrays.values():
                app.finish()
            tables = {
                "sequences": pa.Table.from_pylist(self._seq_rows, schema=M.SEQUENCES),
                "views": pa.Table.from_pylist(self._view_rows, schema=M.VIEWS),
                "rejects": pa.Table.from_pylist(self._reject_rows, schema=M.REJECTS),
            }
            mg = self._root.require_group(S.MANIFESTS_GROUP)
            for name, table in tables.items():
                data = _parquet_bytes(table)
                arr = mg.create_array(name, shape=data.shape, dtype=np.uint8,
                                      chunks=(max(1, min(len(data), 1 << 22)),))
                arr[:] = data
            info = {"store_format": S.STORE_FORMAT, "joint_set": self.joint_set, "num_joints": self.num_joints,
                    "fps": self.fps, "package_version": _package_version()}
            info.update(build_info or {})
            self._root.attrs.update({S.ATTR_FORMAT: S.STORE_FORMAT, S.ATTR_FPS: self.fps,
                                     S.ATTR_JOINT_SET: self.joint_set,
                                     S.ATTR_BUILD_INFO: json.loads(json.dumps(info, default=str))})
            # frames the manifests cover (rows of padding between shards not counted)
            meta = {COMMIT_META_KEY: S.STORE_FORMAT, "n_sequences": len(self._seq_rows),
                    "n_frames": sum(r["n_frames"] for r in self._seq_rows), "n_views": len(self._view_rows),
                    "n_view_frames": sum(r["n_frames"] for r in self._view_rows),
                    "n_rejects": len(self._reject_rows)}
            with repository_lock(self.path):
                head = self._repo.lookup_branch(self.branch)
                if head != self._base:
                    raise VersionConflictError(
                        f"{self.path}: version conflict: branch {self.branch!r} moved from {self._base} to {head} while this "
                        f"build ran; nothing was committed - rerun the build on top of the new version")
                if tag is not None and tag in self._repo.list_tags():
                    raise CorpusError(f"{self.path}: tag {tag!r} already exists (tags are immutable)")
                snap = self._commit_snapshot(message, meta)
                if tag is not None:
                    self._tag_or_move_back(tag, snap)
            self._state = "committed"
            return snap
        except BaseException:
            self.abort()
            raise

    def _commit_snapshot(self, message: str, meta: dict) -> str:
        """Icechunk's commit in its two steps: write the snapshot (``flush``: data, manifests and the
        snapshot file, no ref moves), then move the branch only if it still points at our base. A kill
        between the two leaves an unreferenced snapshot (garbage for ``gc``), never a visible one."""
        snap = self._session.flush(message, metadata=meta)
        try:
            self._repo.reset_branch(self.branch, snap, from_snapshot_id=self._base)
        except icechunk.IcechunkError as e:  # belt and braces: the branch moved under the lock
            raise VersionConflictError(f"{self.path}: version conflict: {one_line(e, 300)}; nothing was committed") from e
        return snap

    def _tag_or_move_back(self, tag: str, snap: str) -> None:
        """Tag ``snap``; if that fails, move the branch back to where this writer started, so a
        command that reports the failure has committed nothing (the snapshot is left for ``gc``)."""
        try:
            create_tag(self._repo, self.path, tag, snap)
        except BaseException:
            self._repo.reset_branch(self.branch, self._base, from_snapshot_id=snap)
            raise

    def abort(self) -> None:
        """Drop everything written by this writer; safe to call more than once or after commit."""
        if self._state == "open":
            try:
                self._session.discard_changes()
            finally:
                self._state = "aborted"
                self._arrays.clear()

    def _check_open(self) -> None:
        if self._state != "open":
            raise CorpusError(f"{self.path}: writer already {self._state}")

    def __enter__(self) -> "CorpusWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()




class ManifestRewriter(CorpusWriter):
    """A new version of ``reader``'s corpus with the same arrays and edited manifest rows (e.g. the
    source file status a rebuild re-hashed and found unchanged). Edit ``seq_rows`` / ``reject_rows``,
    then ``commit`` as for ``CorpusWriter``; ``VersionConflictError`` if the branch is no longer at
    ``reader``'s version."""

    def __init__(self, reader: CorpusReader, branch: str = DEFAULT_BRANCH):
        super().__init__(reader.path, num_joints=reader.num_joints, joint_set=reader.joint_set, fps=reader.fps,
                         branch=branch)
        if self._base != reader.version_id:
            self.abort()
            raise VersionConflictError(f"{self.path}: version conflict: branch {branch!r} moved from "
                                       f"{reader.version_id} to {self._base}; nothing was committed")
        self.seq_rows, self.reject_rows = reader.sequences.to_pylist(), reader.rejects.to_pylist()
        self._seq_rows, self._view_rows, self._reject_rows = self.seq_rows, reader.views.to_pylist(), self.reject_rows

    def _open_version(self) -> None:
        self._session = self._repo.writable_session(self.branch)
        self._base = self._session.snapshot_id
        self._root = zarr.open_group(self._session.store, mode="r+")
        del self._root[S.MANIFESTS_GROUP]  # rewritten whole by commit(); the arrays stay as they are
        self._arrays = {}

    def add(self, seq) -> int:
        raise TypeError("ManifestRewriter keeps the arrays: edit the rows, then commit")

    add_from = add
