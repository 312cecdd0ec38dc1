"""The corpus store: a streaming writer and a versioned reader over one Icechunk repository.

One corpus = one Icechunk repository (folder or s3:// URL) holding one Zarr v3 group laid out as in
``schemas.store``. Ragged data is concatenated along time; the Parquet manifests (``schemas.manifests``)
carry offsets and lengths and are stored *inside* the repository as uint8 arrays under
``/manifests/<name>``, so one Icechunk commit versions arrays and manifests together and a reader never
sees a half-written build.

Writer
    Every build writes a complete corpus (a fresh group) in one writable session; unchanged sequences
    are carried over from the parent version with ``add_from``. Frames are buffered per array until a
    whole time chunk is ready and written chunk-aligned (resize + write), so memory stays bounded by
    about one chunk per array plus the sequence being added. Nothing is visible until ``commit()``.

Layout choice
    Plain TIME_CHUNK-frame chunks, zstd (zarr 3 defaults), no sharding: on a 1M-frame view array
    (benchmarks/corpus_window_reads.py, 2-core box) one 351-frame window per call ran ~470/s
    unsharded vs ~485/s with 16-chunk shards, and block reads (two chunks, 64 windows cut from each)
    ~25k vs ~20k windows/s: sharding does not help random window reads, and it makes writes coarser.

Concurrency policy
    Icechunk's local-filesystem storage is not safe for concurrent commits, so every commit (and the
    repository creation) runs under a file lock at ``<PATH>.lock``. A build is a full rewrite derived
    from the version it started from; if the branch moved since the writer's session started, rebasing
    would silently drop the other build's work, so ``commit()`` raises ``VersionConflictError``
    instead and commits nothing (rerun the build on top of the new version).
    On object storage (``s3://bucket/prefix``, ``schemas.storage``) there is no lock: Icechunk's
    commit is a conditional write of the branch ref, so of two racing commits one fails with a
    conflict (``VersionConflictError`` here) whatever the head check saw.

Reader
    Opens any version (tag, branch or snapshot id; default the tip of ``main``) read-only, pinned to
    one snapshot: later commits never change what an open reader sees.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
import json
import os
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _pkg_version
from pathlib import Path

import filelock
import icechunk
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from pipelines.faults import armed, fault_point, trace
from pipelines.records import Reject, SequenceData
from schemas import manifests as M
from schemas import store as S
from schemas.errors import CorpusError, VersionConflictError
from schemas.storage import is_url, parse_location, repository_exists, storage_for

DEFAULT_BRANCH = "main"
LOCK_TIMEOUT_S = 600.0
# Icechunk warns on every open that local storage is unsafe for concurrent commits; we serialise
# commits with a file lock (see module docstring), so keep that one warning quiet unless the user
# configured Icechunk logging explicitly.
if "ICECHUNK_LOG" not in os.environ:
    icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")

# Commit metadata key that marks an Icechunk snapshot as a corpus version (and carries its totals).
COMMIT_META_KEY = "mocap_corpus"


# --------------------------------------------------------------------------------------------------
# Repository helpers (shared with pipelines.versions)


def lock_path(path: str | os.PathLike) -> Path:
    """The file lock that serialises commits to the repository at ``path``."""
    p = Path(path).resolve()
    return p.with_name(p.name + ".lock")


def commit_lock(path: str | os.PathLike, timeout: float = LOCK_TIMEOUT_S) -> filelock.FileLock:
    """A (re-entrant per instance) inter-process lock for commits, tags and creation at ``path``."""
    lp = lock_path(path)
    lp.parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(lp), timeout=timeout)


def open_repository(path: str | os.PathLike, *, create: bool = False) -> icechunk.Repository:
    """Open (or, with ``create``, open-or-create under the lock) the Icechunk repository at ``path``.

    ``path``: a local folder or ``s3://bucket/prefix`` (``schemas.storage``).
    """
    try:
        storage = storage_for(path)
        if create:
            with repository_lock(path):
                return icechunk.Repository.open_or_create(storage)
        if not repository_exists(path):
            raise CorpusError(f"{path}: no corpus repository here")
        return icechunk.Repository.open(storage)
    except (icechunk.IcechunkError, ValueError) as e:  # e.g. unreachable endpoint, bad credentials
        raise CorpusError(f"{path}: cannot open corpus repository: {_one_line(e)}") from e


def resolve_snapshot(repo: icechunk.Repository, version: str | None, path: str | os.PathLike = "") -> str:
    """``version`` (tag | branch | snapshot id; None = tip of main) -> snapshot id, or CorpusError."""
    version = DEFAULT_BRANCH if version is None else str(version)
    # Tags first: they are the names people cite; a tag and a branch should not share a name anyway.
    if version in repo.list_tags():
        return repo.lookup_tag(version)
    if version in repo.list_branches():
        return repo.lookup_branch(version)
    try:
        return repo.lookup_snapshot(version).id
    except (icechunk.IcechunkError, ValueError) as e:
        raise CorpusError(f"{path}: no version {version!r} (not a tag, branch or snapshot id)") from e


@contextmanager
def repository_lock(path):
    """Hold the commit lock of the repository at ``path``; CorpusError if it cannot be taken in time.

    Object storage has no lock (Icechunk's conditional ref updates detect conflicting commits).
    """
    if is_url(path):
        yield
        return
    lock = commit_lock(path)
    try:
        lock.acquire()
    except filelock.Timeout as e:
        raise CorpusError(f"{path}: could not take the commit lock {lock_path(path)} within "
                          f"{LOCK_TIMEOUT_S:.0f} s") from e
    try:
        yield
    finally:
        lock.release()


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


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


def read_manifest(group: zarr.Group, name: str) -> pa.Table:
    """Parse the Parquet manifest ``name`` stored as a uint8 array in ``group`` (the corpus root)."""
    arr = group[f"{S.MANIFESTS_GROUP}/{name}"]
    return pq.read_table(io.BytesIO(np.asarray(arr[:]).tobytes()))


def _leaf(spec: S.ArraySpec) -> str:
    # The last path component is also the attribute name on SequenceData / ViewData.
    return spec.path.rsplit("/", 1)[-1]


# --------------------------------------------------------------------------------------------------
# Writer


# Chunks buffered per array before a write: one resize and one multi-chunk write (which zarr encodes
# concurrently) per flush instead of per chunk; memory stays a few MB per array.
FLUSH_CHUNKS = 8
# Reliability trials only: flush every N rows (may be below one chunk: then writes are not chunk-aligned,
# slower, same content) so small synthetic builds go through many flushes before their commit.
FLUSH_ROWS_ENV = "MOCAP_CORPUS_FLUSH_ROWS"


def _flush_rows(chunk: int) -> tuple[int, int]:
    """(rows per flush, write unit in rows) for an array with ``chunk`` rows per chunk."""
    rows = int(os.environ.get(FLUSH_ROWS_ENV) or 0)
    if rows > 0:
        return rows, min(rows, chunk)
    return chunk * FLUSH_CHUNKS, chunk


class _Appender:
    """Buffers rows of one array and writes them in whole, chunk-aligned blocks (resize + write)."""

    def __init__(self, arr: zarr.Array):
        self.arr = arr
        self.chunk = int(arr.chunks[0])
        self.flush_rows, self.unit = _flush_rows(self.chunk)
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.written = 0

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
            trace("chunk_write_begin")
            self.arr.resize((stop, *self.arr.shape[1:]))
            if armed("chunk_write"):  # fault trial: write in two halves and die between them
                half = start + n // 2
                self.arr[start:half] = block[:half - start]
                fault_point("chunk_write")
                self.arr[half:stop] = block[half - start:n]
            else:
                self.arr[start:stop] = block[:n]
            self.written = stop
            fault_point("flush")
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
        known = {_leaf(s): s for s in S.OPTIONAL_ARRAYS}
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
        self._session = self._repo.writable_session(branch)
        self._base = self._session.snapshot_id
        # A version is a complete corpus: start from an empty root group.
        self._root = zarr.open_group(self._session.store, mode="w")
        self._arrays: dict[str, _Appender] = {}
        for spec in self._specs:
            parent, name = spec.path.rsplit("/", 1)
            g = self._root.require_group(parent)
            arr = g.create_array(name, shape=spec.shape(0, self.num_joints), dtype=spec.dtype,
                                 chunks=spec.chunks(self.num_joints), compressors=spec.compressors(),
                                 fill_value=False if spec.dtype == bool else 0)
            self._arrays[spec.path] = _Appender(arr)
        self._seq_rows: list[dict] = []
        self._view_rows: list[dict] = []
        self._reject_rows: list[dict] = []
        self._keys: set[str] = set()
        self._state = "open"  # -> "committed" | "aborted"

    # -- adding ------------------------------------------------------------------------------------
    def add(self, seq: SequenceData) -> int:
        """Append one sequence (frames and views); returns its ``sequence_id`` (= order of addition)."""
        row = {f.name: getattr(seq, f.name) for f in M.SEQUENCES if hasattr(seq, f.name)}
        row["betas"] = None if seq.betas is None else np.asarray(seq.betas, np.float32).tolist()
        frames = {s.path: getattr(seq, _leaf(s), None) for s in self._specs if s.per == "sequence_frame"}
        missing = [p for p, a in frames.items() if a is None]
        if missing:
            raise ValueError(f"{seq.key}: no {missing} (this corpus version holds them for every sequence)")
        views = []
        for v in seq.views:
            vrow = {f.name: getattr(v, f.name) for f in M.VIEWS if hasattr(v, f.name)}
            varrays = {s.path: getattr(v, _leaf(s)) for s in S.ARRAYS if s.per != "sequence_frame"}
            views.append((vrow, varrays))
        return self._append(row, frames, views)

    def add_from(self, reader: "CorpusReader", key: str) -> int:
        """Carry one sequence (frames, views, cameras, manifest rows) over from ``reader`` bit-identically."""
        if reader.num_joints != self.num_joints:
            raise ValueError(f"{reader.path}: carries {reader.num_joints} joints, this writer {self.num_joints}")
        i = reader._seq_row(key)
        row = reader.sequences.slice(i, 1).to_pylist()[0]
        frames = {_path_of(k): a for k, a in reader.read_sequence(key).items()}
        frames = {p: a for p, a in frames.items() if p in self._arrays}  # drop optional arrays not declared here
        missing = [s.path for s in self._specs if s.per == "sequence_frame" and s.path not in frames]
        if missing:
            raise ValueError(f"{reader.path}: sequence {key!r} has no {missing} to carry over")
        sid = row["sequence_id"]
        vidx = np.flatnonzero(reader._view_seq == sid)
        view_rows = reader.views.take(pa.array(vidx)).to_pylist() if len(vidx) else []
        views = []
        for vrow in view_rows:
            varrays = {_path_of(k): a for k, a in reader.read_view(vrow["view_id"]).items()}
            varrays[S.INTRINSICS.path], varrays[S.EXTRINSICS.path] = reader.camera(vrow["view_id"])
            views.append((vrow, varrays))
        return self._append(row, frames, views)

    def reject(self, r: Reject) -> None:
        """Record a source that could not be turned into a sequence (a ``rejects`` manifest row)."""
        self._check_open()
        self._reject_rows.append({f.name: getattr(r, f.name) for f in M.REJECTS})

    def _append(self, row: dict, frames: dict[str, np.ndarray], views: list[tuple[dict, dict]]) -> int:
        self._check_open()
        key = row["key"]
        if key in self._keys:
            raise ValueError(f"duplicate sequence key {key!r}")
        if row.get("fps") is not None and abs(float(row["fps"]) - self.fps) > 1e-9:
            raise ValueError(f"{key}: sequence fps {row['fps']} != corpus fps {self.fps}")
        # Validate and cast everything before touching any buffer, so a bad record leaves no trace.
        frames = {p: self._checked(key, p, a, None) for p, a in frames.items()}
        n = len(frames[S.JOINTS_WORLD.path])
        views = [(vrow, {p: self._checked(key, p, a, n) for p, a in varrays.items()}) for vrow, varrays in views]

        sid = len(self._seq_rows)
        seq_row = {f.name: row.get(f.name) for f in M.SEQUENCES}
        seq_row.update(sequence_id=sid, n_frames=n, offset=self._arrays[S.JOINTS_WORLD.path].length)
        for p, a in frames.items():
            self._arrays[p].append(a)
        for vrow, varrays in views:
            view_row = {f.name: vrow.get(f.name) for f in M.VIEWS}
            view_row.update(view_id=len(self._view_rows), sequence_id=sid, n_frames=n,
                            offset=self._arrays[S.KEYPOINTS_2D.path].length)
            for p, a in varrays.items():
                self._arrays[p].append(a[None] if _spec(p).per == "view" else a)
            self._view_rows.append(view_row)
        self._seq_rows.append(seq_row)
        self._keys.add(key)
        return sid

    def _checked(self, key: str, p: str, a, n: int | None) -> np.ndarray:
        spec = _spec(p)
        a = np.asarray(a)
        if spec.per == "view":
            want = spec.shape(1, self.num_joints)[1:]
        else:
            lead = n if n is not None else (a.shape[0] if a.ndim else 0)
            want = spec.shape(lead, self.num_joints)
        if a.shape != tuple(want):
            raise ValueError(f"{key}: {p} has shape {a.shape}, expected {tuple(want)}")
        a = np.ascontiguousarray(a, dtype=spec.dtype)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"{key}: {p} holds NaN or Inf")
        return a

    # -- committing --------------------------------------------------------------------------------
    def commit(self, message: str, *, tag: str | None = None, build_info: dict | None = None) -> str:
        """Write manifests and attrs and commit ONE snapshot on the branch; returns its snapshot id.

        Raises ``VersionConflictError`` (nothing committed) if the branch moved since this writer
        started, and ``CorpusError`` if ``tag`` already exists. Either way the writer is aborted.
        """
        self._check_open()
        trace("commit_begin")
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
            meta = {COMMIT_META_KEY: S.STORE_FORMAT, "n_sequences": len(self._seq_rows),
                    "n_frames": self._arrays[S.JOINTS_WORLD.path].length, "n_views": len(self._view_rows),
                    "n_view_frames": self._arrays[S.KEYPOINTS_2D.path].length,
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
                    fault_point("tag")
                    self._repo.create_tag(tag, snap)
                    trace("tagged")
            self._state = "committed"
            return snap
        except BaseException:
            self.abort()
            raise

    def _commit_snapshot(self, message: str, meta: dict) -> str:
        """Icechunk's commit in its two steps: write the snapshot (``flush``: data, manifests and the
        snapshot file, no ref moves), then move the branch only if it still points at our base. A kill
        between the two leaves an unreferenced snapshot (garbage for ``gc``), never a visible one."""
        trace("icechunk_commit_begin")
        snap = self._session.flush(message, metadata=meta)
        fault_point("icechunk_commit")
        try:
            self._repo.reset_branch(self.branch, snap, from_snapshot_id=self._base)
        except icechunk.IcechunkError as e:  # belt and braces: the branch moved under the lock
            raise VersionConflictError(f"{self.path}: version conflict: {_one_line(e)}; nothing was committed") from e
        trace("branch_moved")
        return snap

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


# --------------------------------------------------------------------------------------------------
# Reader

_SPECS = {s.path: s for s in S.ARRAYS + S.OPTIONAL_ARRAYS}


def _spec(path: str) -> S.ArraySpec:
    return _SPECS[path]


def _path_of(leaf_or_path: str) -> str:
    if leaf_or_path in _SPECS:
        return leaf_or_path
    for s in S.ARRAYS + S.OPTIONAL_ARRAYS:
        if _leaf(s) == leaf_or_path:
            return s.path
    raise KeyError(leaf_or_path)


class CorpusReader:
    """A read-only view of one corpus version (one Icechunk snapshot)."""

    def __init__(self, path: Path | str, version_id: str, root: zarr.Group, session: icechunk.Session):
        self.path = path
        self.version_id = version_id
        self._root = root
        self._session = session  # keep the session (and its store) alive
        attrs = dict(root.attrs)
        if attrs.get(S.ATTR_FORMAT) != S.STORE_FORMAT:
            raise CorpusError(f"{path}@{version_id}: not a corpus version "
                              f"(store format {attrs.get(S.ATTR_FORMAT)!r}, expected {S.STORE_FORMAT!r})")
        self.fps = float(attrs[S.ATTR_FPS])
        self.joint_set = str(attrs[S.ATTR_JOINT_SET])
        self.build_info = dict(attrs.get(S.ATTR_BUILD_INFO) or {})
        self._handles: dict[str, zarr.Array] = {}
        self.num_joints = int(self.array(S.JOINTS_WORLD).shape[1])
        self.optional_arrays = tuple(s for s in S.OPTIONAL_ARRAYS if _has_array(root, s.path))
        self.sequences = read_manifest(root, "sequences")
        self.views = read_manifest(root, "views")
        self.rejects = read_manifest(root, "rejects")
        self._seq_off = self.sequences.column("offset").to_numpy()
        self._seq_len = self.sequences.column("n_frames").to_numpy()
        self._seq_by_key = {k: i for i, k in enumerate(self.sequences.column("key").to_pylist())}
        self._seq_by_id = {int(s): i for i, s in enumerate(self.sequences.column("sequence_id").to_numpy())}
        self._view_off = self.views.column("offset").to_numpy()
        self._view_len = self.views.column("n_frames").to_numpy()
        self._view_seq = self.views.column("sequence_id").to_numpy()
        self._view_by_id = {int(v): i for i, v in enumerate(self.views.column("view_id").to_numpy())}

    @classmethod
    def open(cls, path: str | os.PathLike, version: str | None = None) -> "CorpusReader":
        """Open ``version`` (tag | branch | snapshot id; None = tip of main); CorpusError if missing."""
        path = parse_location(path)
        repo = open_repository(path)
        snap = resolve_snapshot(repo, version, path)
        session = repo.readonly_session(snapshot_id=snap)
        try:
            root = zarr.open_group(session.store, mode="r")
        except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError) as e:
            raise CorpusError(f"{path}@{version or DEFAULT_BRANCH}: version {snap} holds no corpus") from e
        return cls(path, snap, root, session)

    def __reduce__(self):
        # Pickle (e.g. into DataLoader workers) as "reopen this path at this snapshot".
        return (CorpusReader.open, (str(self.path), self.version_id))

    def __repr__(self) -> str:
        return (f"CorpusReader({str(self.path)!r}, version={self.version_id!r}, "
                f"sequences={self.sequences.num_rows}, views={self.views.num_rows})")

    def array(self, spec: S.ArraySpec) -> zarr.Array:
        """A read-only handle on the array described by ``spec``."""
        h = self._handles.get(spec.path)
        if h is None:
            h = self._handles[spec.path] = self._root[spec.path]
        return h

    def _seq_row(self, key_or_id) -> int:
        if isinstance(key_or_id, str):
            i = self._seq_by_key.get(key_or_id)
        else:
            i = self._seq_by_id.get(int(key_or_id))
        if i is None:
            raise KeyError(f"{self.path}@{self.version_id}: no sequence {key_or_id!r}")
        return i

    def read_sequence(self, key_or_id: str | int) -> dict[str, np.ndarray]:
        """All per-sequence-frame arrays of one sequence: ``{"joints_world": (T, J, 3)}``, plus the optional
        arrays this version holds (``"joints_world_32": (T, 32, 3)``)."""
        i = self._seq_row(key_or_id)
        a, n = int(self._seq_off[i]), int(self._seq_len[i])
        return {_leaf(s): self.array(s)[a:a + n] for s in S.ARRAYS + self.optional_arrays
                if s.per == "sequence_frame"}

    def read_view(self, view_id: int, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Frames ``start:stop`` of one view: keypoints_2d (T, J, 2), joints_cam (T, J, 3), in_view (T, J)."""
        i = self._view_by_id.get(int(view_id))
        if i is None:
            raise KeyError(f"{self.path}@{self.version_id}: no view {view_id!r}")
        n = int(self._view_len[i])
        start, stop, _ = slice(start, stop).indices(n)  # same clipping as slicing the view's frames
        stop = max(start, stop)
        a = int(self._view_off[i])
        return {_leaf(s): self.array(s)[a + start:a + stop] for s in S.ARRAYS if s.per == "view_frame"}

    def camera(self, view_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Intrinsics (11,) float64 and world-to-camera extrinsics (3, 4) float64 of one view."""
        if int(view_id) not in self._view_by_id:
            raise KeyError(f"{self.path}@{self.version_id}: no view {view_id!r}")
        return self.array(S.INTRINSICS)[int(view_id)], self.array(S.EXTRINSICS)[int(view_id)]


def _has_array(group: zarr.Group, path: str) -> bool:
    try:
        return isinstance(group[path], zarr.Array)
    except (KeyError, FileNotFoundError):
        return False


def open_corpus(path_at_version: str | os.PathLike) -> CorpusReader:
    """Open ``"PATH@VERSION"`` (the trainer's CLI syntax) or ``"PATH"`` (tip of main)."""
    s = str(path_at_version)
    path, version = s, None
    if "@" in s and not Path(s).exists():
        head, _, tail = s.rpartition("@")
        if tail and "/" not in tail and os.sep not in tail:
            path, version = head, tail
    return CorpusReader.open(path, version)
