"""Distributed corpus writes: workers write their shards' frames through forked Icechunk sessions, the
driver merges the forks and commits once.

Icechunk 1.x forks only a session that has no changes, and a version is a fresh root group, so a
build first lays its arrays out (every per-frame array ``LAYOUT_ROWS`` long, metadata only) in a
snapshot on a branch of its own (``schemas.versions.build_branch_name``), never on ``main``. The
driver's session on that branch stays clean for the whole build: each worker task gets a fork of it
(:meth:`ForkedCorpusWriter.fork`) and writes its shard's frames into it (:func:`write_shard`); the
forks that come back are merged into one fork the driver keeps (where it also appends the small
per-view camera arrays). ``commit`` merges that into the session, cuts the per-frame arrays to their
real length (metadata only), and then runs ``CorpusWriter.commit``: manifests, the commit lock, the
check that ``main`` is still where the build started (else ``VersionConflictError``, nothing
committed), the two-step Icechunk commit that moves ``main`` to the new snapshot, the tag. The build
branch is deleted after; a killed build leaves its branch to ``gc``. ``main``'s history shows the
layout snapshot between two versions; it carries no corpus-version metadata, so version listings
skip it.

On a cluster the workers open the repository themselves (a fork pickles as its session: the
storage location and config, no data): they need the store's credentials in their environment (S3:
the usual AWS variables or instance role, and ``MOCAP_CORPUS_S3_ENDPOINT`` for a non-AWS endpoint)
and, for a local-folder corpus, the same path on a shared filesystem - as they need the sources.

Regions: the driver takes shard summaries in shard order and gives each shard the next rows of each
row space starting on a chunk boundary (``schemas.store.region_start``): no two forks ever write one
chunk, and rows are laid out in shard order whatever order the workers finish in. Between shards
there may be padding up to a chunk boundary (store format 2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import zarr
from icechunk.session import ForkSession
from zarr.core.sync import sync

from pipelines.writer import CorpusWriter, Parts, _Appender, _create_arrays, checked_parts
from schemas import manifests as M
from schemas import store as S
from schemas.errors import CorpusError
from schemas.reader import array_spec
from schemas.errors import one_line
from schemas.repository import repository_lock
from schemas.versions import LAYOUT_META_KEY, build_branch_name

log = logging.getLogger(__name__)

# Rows every per-frame array has in a build's layout (metadata only: unwritten chunks cost nothing).
# Icechunk 1.1 panics on chunk indices near 2**32, so stay well below: 2**31 frames is ~1,000 days at 50 Hz.
LAYOUT_ROWS = 1 << 31

_ROW_SPACES = ("sequence_frame", "view_frame")


@dataclass
class ShardSummary:
    """What the driver needs of one shard: manifest rows and cameras, no frames.

    ``rows``: sequence rows (``n_frames`` set, no ``sequence_id`` / ``offset`` yet); ``views``: per
    sequence, its view rows (``n_frames``, ``n_out_of_view`` set); ``cameras``: per sequence and view,
    intrinsics (11,) and extrinsics (3, 4).
    """

    rows: list[dict] = field(default_factory=list)
    views: list[list[dict]] = field(default_factory=list)
    cameras: list[list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_ROW_SPACES, 0))  # rows per row space


class Shard:
    """The sequences of one worker task, checked (shape, finite) and held on the worker until the
    driver has given them their region."""

    def __init__(self, parts: list[Parts], num_joints: int):
        self.parts = [checked_parts(*p, num_joints) for p in parts]

    def summary(self) -> ShardSummary:
        out = ShardSummary()
        for row, frames, views in self.parts:
            n = len(frames[S.JOINTS_WORLD.path])
            out.rows.append({**row, "n_frames": n})
            out.views.append([vrow for vrow, _ in views])
            out.cameras.append([(v[S.INTRINSICS.path], v[S.EXTRINSICS.path]) for _, v in views])
            out.frames["sequence_frame"] += n
            out.frames["view_frame"] += n * len(views)
        return out


def write_shard(fork: ForkSession, shard: Shard, starts: dict[str, int]) -> ForkSession:
    """Write ``shard``'s frames into ``fork`` from ``starts`` (row space -> first row, chunk-aligned)
    on; returns the fork (its change set goes back to the driver). Runs on a worker."""
    root = zarr.open_group(fork.store, mode="r+")
    appenders: dict[str, _Appender] = {}

    def appender(path: str) -> _Appender:
        if path not in appenders:
            appenders[path] = _Appender(root[path], start=starts[array_spec(path).per], grow=False)
        return appenders[path]

    for _row, frames, views in shard.parts:
        for p, a in frames.items():
            appender(p).append(a)
        for _vrow, varrays in views:
            for p, a in varrays.items():
                if array_spec(p).per == "view_frame":
                    appender(p).append(a)
    for app in appenders.values():
        app.finish()
    return fork


class _Region:
    """A per-frame array that workers write; the driver only moves its end, and cuts it there at commit."""

    def __init__(self, arr: zarr.Array):
        self.arr = arr
        self.length = 0

    def finish(self) -> None:
        """Set the array's length to ``length`` (metadata only: no chunk is read or deleted)."""
        sync(self.arr._async_array.resize((self.length, *self.arr.shape[1:]), delete_outside_chunks=False))


class ForkedCorpusWriter(CorpusWriter):
    """A ``CorpusWriter`` whose frames are written by workers through forks (module doc).

    Per shard, in order: ``starts = add_shard(summary)``; a worker runs ``write_shard(fork(), shard,
    starts)``; ``merge(returned_fork)``. Then ``commit`` as for ``CorpusWriter``. ``add`` and
    ``add_from`` are not available (frames never pass through the driver); ``reject`` is.
    """

    def _open_version(self) -> None:
        self._base = self._repo.lookup_branch(self.branch)
        self._build_branch = build_branch_name()
        with repository_lock(self.path):
            self._repo.create_branch(self._build_branch, self._base)
        try:
            layout = self._repo.writable_session(self._build_branch)
            _create_arrays(zarr.open_group(layout.store, mode="w"), self._specs, self.num_joints, LAYOUT_ROWS)
            with repository_lock(self.path):
                layout.commit("layout of a build in progress (not a corpus version)",
                              metadata={LAYOUT_META_KEY: S.STORE_FORMAT})
            self._session = self._repo.writable_session(self._build_branch)  # stays clean: it is forked
            self._root = zarr.open_group(self._session.store, mode="r+")
            self._merged = self._session.fork()  # the workers' forks are merged into this one
            merged_root = zarr.open_group(self._merged.store, mode="r+")
            self._arrays = {s.path: _Appender(merged_root[s.path]) if s.per == "view" else _Region(self._root[s.path])
                            for s in self._specs}
        except BaseException:
            self._drop_build_branch()
            raise

    def fork(self) -> ForkSession:
        """A fork of the build's session for one worker task (pickles to the worker)."""
        self._check_open()
        return self._session.fork()

    def add_shard(self, summary: ShardSummary) -> dict[str, int]:
        """Give the next shard its rows: manifest rows get ids and offsets, cameras are appended here.
        Returns the first row of its region per row space (what ``write_shard`` needs)."""
        self._check_open()
        for row in summary.rows:
            self._check_row(row)
        starts = {space: self._reserve(space, summary.frames[space]) for space in _ROW_SPACES}
        seq_off, view_off = starts["sequence_frame"], starts["view_frame"]
        for row, vrows, cams in zip(summary.rows, summary.views, summary.cameras):
            sid = len(self._seq_rows)
            seq_row = {f.name: row.get(f.name) for f in M.SEQUENCES}
            seq_row.update(sequence_id=sid, offset=seq_off)
            seq_off += row["n_frames"]
            for vrow, (intrinsics, extrinsics) in zip(vrows, cams):
                view_row = {f.name: vrow.get(f.name) for f in M.VIEWS}
                view_row.update(view_id=len(self._view_rows), sequence_id=sid, offset=view_off)
                view_off += vrow["n_frames"]
                self._arrays[S.INTRINSICS.path].append(np.asarray(intrinsics)[None])
                self._arrays[S.EXTRINSICS.path].append(np.asarray(extrinsics)[None])
                self._view_rows.append(view_row)
            self._seq_rows.append(seq_row)
            self._keys.add(row["key"])
        return starts

    def _reserve(self, space: str, n: int) -> int:
        """First row of an ``n``-row region of ``space``: the next chunk boundary (no rows: no region)."""
        regions = [a for p, a in self._arrays.items() if array_spec(p).per == space]
        end = regions[0].length
        if n == 0:
            return end
        start = S.region_start(end, int(regions[0].arr.chunks[0]))
        if start + n > LAYOUT_ROWS:
            raise CorpusError(f"{self.path}: more than {LAYOUT_ROWS} {space.replace('_', ' ')}s in one version")
        for r in regions:
            r.length = start + n
        return start

    def merge(self, fork: ForkSession) -> None:
        """Take in the change set of a fork a worker wrote its shard into."""
        self._check_open()
        self._merged.merge(fork)

    def add(self, seq) -> int:
        raise TypeError("ForkedCorpusWriter: frames are written by workers (add_shard / write_shard), not add()")

    def add_from(self, reader, key) -> int:
        raise TypeError("ForkedCorpusWriter: carried sequences are written by workers too, not add_from()")

    def commit(self, message: str, *, tag: str | None = None, build_info: dict | None = None) -> str:
        """Merge everything the workers wrote, then ``CorpusWriter.commit`` (one snapshot on the branch)."""
        self._check_open()
        try:
            for spec in self._specs:
                if spec.per == "view":
                    self._arrays[spec.path].finish()
            self._session.merge(self._merged)
        except BaseException:
            self.abort()
            raise
        try:
            return super().commit(message, tag=tag, build_info=build_info)
        finally:
            self._drop_build_branch()

    def abort(self) -> None:
        was_open = self._state == "open"
        super().abort()
        if was_open:
            self._drop_build_branch()

    def _drop_build_branch(self) -> None:
        """Delete this build's branch; if that fails the build's outcome stands and ``gc`` removes it."""
        try:
            with repository_lock(self.path):
                if self._build_branch in self._repo.list_branches():
                    self._repo.delete_branch(self._build_branch)
        except Exception as exc:  # noqa: BLE001 - never turn a committed build into a failure over this
            log.warning("%s: could not delete build branch %s (gc removes it): %s", self.path, self._build_branch,
                        one_line(exc, 300))
