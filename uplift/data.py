"""Streaming training/evaluation windows from one or more corpus versions, with bounded memory.

Design (measured: one Zarr read per window is ~700 windows/s; cutting many windows out of whole
chunks is 10-30x faster):

* The selected view frames of every corpus are cut into *blocks* of ``block_frames`` consecutive
  rows of the ``views/*`` arrays (aligned to the Zarr time chunks). A block is the unit of I/O
  (its rows plus a halo of half a window on each side are read in one call per array), of
  sharding (DataLoader workers x distributed ranks get disjoint blocks) and of shuffling (block
  order is a permutation drawn from ``(seed, epoch)``).
* A shard's blocks are taken ``buffer_blocks`` at a time (a *group*); the windows of one group are
  permuted with a generator seeded by ``(seed, epoch, shard, group)``. At most two groups are
  resident, so memory is bounded by ``2 * buffer_blocks * (block_frames + window span)`` frames
  whatever the corpus size.
* Mixing: many small blocks (default 256 frames) in a large group (default 512 blocks) make a batch
  draw from hundreds of random stretches of the corpus, close to a global shuffle of all windows
  (``benchmarks/bench_loader.py`` measures distinct sources per batch and consecutive-batch
  overlap against a global shuffle), at ~110 MB per resident group for N = 351.
* The whole sample order is a pure function of the manifests and ``(seed, epoch, shard)``: resuming
  at batch k recomputes it from metadata, skips whole groups without reading them, and continues
  with exactly the batches an uninterrupted run would have produced.
* The stream yields whole batches (numpy gathers, no per-sample Python); use it with
  ``DataLoader(stream, batch_size=None)``. With ``flip`` and ``in_batch_flip`` the second half of a
  batch is the left/right-flipped first half; with ``in_batch_flip=False`` (official
  ``IN_BATCH_AUGMENT: false``) every window also appears flipped as a separate sample, shuffled with
  the rest (an epoch holds twice the windows, a batch ``batch_size`` distinct ones).
* ``cameras="per-window"``: AMASS views (one per sequence) are re-projected per window through a
  camera drawn from the rig's pool per (epoch, window), from the stored world joints
  (``uplift.views``); the draw comes from the group's generator, so resume stays exact.

Windows follow the official Uplift-Upsample recipe: N frames at stride ``s_out`` centred on frame t,
out-of-sequence frames "copy"-padded with the nearest in-sequence frame of the same stride lattice,
a validity mask, and a key-frame mask (every ``s_in``-th frame has a 2D input) whose phase is drawn
at random in training and aligned to global frame indices in evaluation.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import IterableDataset, get_worker_info

from schemas.errors import ConfigError
from schemas.skeletons import H36M_17
from schemas.store import IN_VIEW, JOINTS_CAM, JOINTS_WORLD, KEYPOINTS_2D
from uplift.views import draw_cameras, project_windows, rig_pool

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Window geometry (pure functions)
# ----------------------------------------------------------------------------------------------

def window_span(n_out: int, s_out: int) -> tuple[int, int]:
    """Frames a window reaches left and right of its centre: ``(left, right)``."""
    left = (n_out - 1) * s_out // 2
    return left, (n_out - 1) * s_out - left


def window_indices(t: np.ndarray | int, n_frames: np.ndarray | int, n_out: int, s_out: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of windows centred on ``t`` inside sequences of ``n_frames`` frames.

    Returns ``idx (..., n_out)`` int64 (always inside ``[0, n_frames)``) and ``valid (..., n_out)`` bool.
    Out-of-sequence positions copy the nearest in-sequence frame *on the same stride lattice*
    (``t % s_out`` on the left, the last lattice frame on the right), as ``np.pad(mode="edge")``
    on ``video[begin:end:s_out]`` does in the official code.
    """
    t = np.asarray(t, dtype=np.int64)[..., None]
    n = np.asarray(n_frames, dtype=np.int64)[..., None]
    mid = n_out // 2
    raw = t + (np.arange(n_out, dtype=np.int64) - mid) * s_out
    valid = (raw >= 0) & (raw < n)
    first = t % s_out
    last = t + ((n - 1 - t) // s_out) * s_out
    idx = np.where(raw < 0, first, np.where(raw >= n, last, raw))
    return idx, valid


def phase_shift_range(m: int) -> tuple[int, int]:
    """Inclusive range of the random key-frame shift (in output frames) for ``m = s_in / s_out``.

    Official recipe: ``[-ceil((m-1)/2), floor(m/2)]`` for odd m and one less on the right for even
    m, i.e. exactly m distinct phases.
    """
    low = -math.ceil((m - 1) / 2)
    return low, low + m - 1


def keyframe_mask(n_out: int, s_out: int, s_in: np.ndarray | int, shift: np.ndarray | int = 0,
                  centre: np.ndarray | int | None = None) -> np.ndarray:
    """Key-frame mask ``(..., n_out)`` bool: which window positions carry a 2D input.

    ``shift`` (in output frames) moves the key-frame lattice (training); ``centre`` aligns it to the
    global frame index of the window centre (evaluation: frame f is a key frame iff f % s_in == 0).
    """
    s_in = np.asarray(s_in, dtype=np.int64)[..., None]
    off = (np.arange(n_out, dtype=np.int64) - n_out // 2) * s_out
    off = off + np.asarray(shift, dtype=np.int64)[..., None] * s_out
    if centre is not None:
        off = off + np.asarray(centre, dtype=np.int64)[..., None]
    return off % s_in == 0


def draw_keyframes(rng: np.random.Generator, n: int, s_in_choices: Sequence[int], s_out: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``s_in (n,)`` drawn from the choices and a phase ``shift (n,)`` in output frames."""
    choices = np.asarray(s_in_choices, dtype=np.int64)
    s_in = choices[rng.integers(0, len(choices), size=n)]
    m = s_in // s_out
    low = -np.ceil((m - 1) / 2).astype(np.int64)
    shift = low + (rng.random(n) * m).astype(np.int64)  # uniform over the m phases
    return s_in, shift


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamConfig:
    """Window and loader settings. Defaults are the published N=351, s_out=5, s_in in {5,10,20}.

    A window spans ``seq_len`` (N) frames at the full rate and holds ``n_out = (N-1)/s_out + 1``
    tokens (71 for the published setting), as ``uplift.config.ModelConfig`` counts them.
    """

    seq_len: int = 351
    s_out: int = 5
    s_in: tuple[int, ...] = (5, 10, 20)
    batch_size: int = 512  # windows per batch, flipped copies included
    flip: bool = True  # mirrored copies (left/right)
    in_batch_flip: bool = True  # True: second half of each batch = flipped first half; False: separate samples
    random_shift: bool = True  # random key-frame phase (training); evaluation aligns to global frames
    frame_step: int = 1  # every frame_step-th frame is a window centre
    block_frames: int = 256  # small blocks, many of them in a group: batches mix the corpus
    buffer_blocks: int = 512  # blocks shuffled together; bounds memory
    drop_last: bool = True
    seed: int = 0
    cameras: str = "precomputed"  # or "per-window" (AMASS views, see uplift.views)
    prefetch_group: bool = True  # load the next group in a background thread
    camera_rig: str | None = None  # per-window pool: "h36m" | "3dhp"; None: each view's own rig

    def __post_init__(self):
        if self.s_out < 1 or self.seq_len < 1 or (self.seq_len - 1) % self.s_out or self.n_out % 2 == 0:
            raise ConfigError(f"seq_len - 1 = {self.seq_len - 1} must be a multiple of s_out = {self.s_out} "
                              f"giving an odd token count, got n_out = {(self.seq_len - 1) / self.s_out + 1}")
        if self.s_out < 1 or any(s < self.s_out or s % self.s_out for s in self.s_in):
            raise ConfigError(f"every s_in must be a multiple of s_out={self.s_out}, got {self.s_in}")
        if self.cameras not in ("precomputed", "per-window"):
            raise ConfigError(f"cameras must be 'precomputed' or 'per-window', got {self.cameras!r}")
        if self.in_batch and self.batch_size % 2:
            raise ConfigError(f"batch_size must be even with flip, got {self.batch_size}")
        if self.batch_size < 1 or self.block_frames < 1 or self.buffer_blocks < 1 or self.frame_step < 1:
            raise ConfigError("batch_size, block_frames, buffer_blocks and frame_step must be positive")

    @property
    def n_out(self) -> int:
        """Tokens per window."""
        return (self.seq_len - 1) // self.s_out + 1

    @property
    def in_batch(self) -> bool:
        """Flipped copies fill the second half of each batch."""
        return self.flip and self.in_batch_flip

    @property
    def copies(self) -> int:
        """Samples per window centre in an epoch: 2 with separate flipped copies, else 1."""
        return 2 if self.flip and not self.in_batch_flip else 1

    @property
    def base_per_batch(self) -> int:
        """Samples drawn from the shuffled order per batch (half the batch with in-batch flips)."""
        return self.batch_size // 2 if self.in_batch else self.batch_size


# ----------------------------------------------------------------------------------------------
# Selection of views and blocks (metadata only)
# ----------------------------------------------------------------------------------------------

def select_views(sequences: pa.Table, views: pa.Table, split: str | Sequence[str] | None = None,
                 subjects: Iterable[str] | None = None, actions: Iterable[str] | None = None,
                 sources: Iterable[str] | None = None, sequence_ids: Iterable[int] | None = None,
                 keys: Iterable[str] | None = None, detections: Iterable[str] | None = None
                 ) -> pa.Table:
    """Views (joined with their sequence's metadata) that pass every given filter, by offset.

    Returns the view columns plus key, subject, action, split and source of the sequence.
    """
    seq = sequences
    conds = []
    if split is not None:
        conds.append(pc.is_in(seq["split"], pa.array([split] if isinstance(split, str) else list(split))))
    for col, vals in (("subject", subjects), ("action", actions), ("source", sources), ("key", keys)):
        if vals is not None:
            conds.append(pc.is_in(seq[col], pa.array(list(vals), pa.string())))
    if sequence_ids is not None:
        conds.append(pc.is_in(seq["sequence_id"], pa.array(list(sequence_ids), pa.int64())))
    if conds:
        keep = conds[0]
        for c in conds[1:]:
            keep = pc.and_(keep, c)
        seq = seq.filter(keep)
    if detections is not None:
        views = views.filter(pc.is_in(views["detections"], pa.array(list(detections), pa.string())))
    meta = seq.select([c for c in ("sequence_id", "key", "subject", "action", "split", "source")
                       if c in seq.column_names])
    joined = views.join(meta, "sequence_id", join_type="inner")
    joined = joined.filter(pc.greater(joined["n_frames"], 0))
    return joined.sort_by([("offset", "ascending")])


@dataclass
class _Part:
    """One corpus's share of the stream: selected views and the arrays to read from."""

    source: object  # a CorpusReader-like object
    views: pa.Table
    offset: np.ndarray  # (V,) int64 first row of each selected view, ascending
    n_frames: np.ndarray  # (V,) int64
    view_base: int  # index of this part's first view in the stream's global view list
    blocks: np.ndarray  # (B,) int64 block numbers (row // block_frames) holding selected frames
    seq_offset: np.ndarray | None = None  # (V,) first row of each view's sequence in sequences/*
    per_window: np.ndarray | None = None  # (V,) bool: re-project this view per window
    rig: np.ndarray | None = None  # (V,) object: the view's rig


def _blocks_of(offset: np.ndarray, n_frames: np.ndarray, block_frames: int) -> np.ndarray:
    """Distinct block numbers touched by the row ranges ``[offset, offset + n_frames)``."""
    if len(offset) == 0:
        return np.zeros(0, np.int64)
    first = offset // block_frames
    last = (offset + n_frames - 1) // block_frames
    counts = last - first + 1
    rep = np.repeat(first - np.cumsum(np.r_[0, counts[:-1]]), counts) + np.arange(counts.sum())
    return np.unique(rep)


def block_centres(offset: np.ndarray, n_frames: np.ndarray, block: int, block_frames: int,
                  frame_step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Window centres inside one block: ``(view (K,), t (K,))`` = selected view index and frame."""
    lo, hi = block * block_frames, (block + 1) * block_frames
    end = offset + n_frames
    v0 = int(np.searchsorted(end, lo, side="right"))
    v1 = int(np.searchsorted(offset, hi, side="left"))
    vs, ts = [], []
    for v in range(v0, v1):
        a = max(lo, int(offset[v])) - int(offset[v])
        b = min(hi, int(end[v])) - int(offset[v])
        a = -(-a // frame_step) * frame_step  # first multiple of frame_step >= a
        if a < b:
            t = np.arange(a, b, frame_step, dtype=np.int64)
            ts.append(t)
            vs.append(np.full(len(t), v, np.int64))
    if not ts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(vs), np.concatenate(ts)


def _block_count(offset, n_frames, block, block_frames, frame_step) -> int:
    return len(block_centres(offset, n_frames, block, block_frames, frame_step)[0])


def shard_blocks(n_blocks: int, seed: int, epoch: int, shard: int, num_shards: int,
                 shuffle: bool = True) -> np.ndarray:
    """Global block indices of one shard for one epoch (disjoint across shards, union = all)."""
    order = np.random.default_rng([seed, epoch]).permutation(n_blocks) if shuffle else np.arange(n_blocks)
    return order[shard::num_shards]


def round_robin_skip(consumed: int, counts: Sequence[int]) -> tuple[list[int], int]:
    """Where a DataLoader (in order) over workers stands after yielding ``consumed`` batches.

    ``counts[w]`` = batches worker w yields in the epoch; the loader takes one from every worker
    that still has one, in worker order, round after round. Returns ``(done, next_worker)``:
    batches each worker had produced and the worker that yields the next batch (0 at the end).
    """
    done = [0] * len(counts)
    left, w = consumed, 0
    if consumed > sum(counts):
        raise ConfigError(f"position {consumed} is past the end of the epoch ({sum(counts)} batches)")
    while left > 0:
        if done[w] < counts[w]:
            done[w] += 1
            left -= 1
        w = (w + 1) % len(counts)
    for _ in range(len(counts)):  # the next worker with batches left, in cycle order
        if done[w] < counts[w]:
            return done, w
        w = (w + 1) % len(counts)
    return done, 0


# Coalesced reads: ranges closer than this are read in one call, runs at most MAX_RUN_ROWS long.
# A Zarr call costs ~0.4 ms plus a decode of every chunk it touches; random blocks of a group often
# share a 4096-frame chunk, which one call then decodes once instead of once per block.
MERGE_GAP_ROWS = 4096
MAX_RUN_ROWS = 4 * 4096


def coalesce_ranges(ranges: Sequence[tuple[int, int]], gap: int = MERGE_GAP_ROWS, max_run: int = MAX_RUN_ROWS
                    ) -> list[tuple[int, int, list[int]]]:
    """Group row ranges into read runs ``(start, stop, [range indices])``: sorted by start, a range
    joins the current run when it starts within ``gap`` rows of the run's end and the run stays
    within ``max_run`` rows (a single longer range is a run of its own)."""
    runs: list[tuple[int, int, list[int]]] = []
    for i in sorted(range(len(ranges)), key=lambda k: ranges[k][0]):
        a, b = ranges[i]
        if runs and a <= runs[-1][1] + gap and max(b, runs[-1][1]) - runs[-1][0] <= max_run:
            s0, s1, ids = runs[-1]
            runs[-1] = (s0, max(s1, b), ids + [i])
        else:
            runs.append((a, b, [i]))
    return runs


def read_coalesced(arr, ranges: Sequence[tuple[int, int]], out: np.ndarray, dst: Sequence[int]) -> None:
    """``out[dst[i]:dst[i] + b - a] = arr[a:b]`` for every range ``(a, b)``, one read per coalesced run."""
    for s0, s1, ids in coalesce_ranges(ranges):
        run = np.asarray(arr[s0:s1])
        for i in ids:
            a, b = ranges[i]
            out[dst[i]:dst[i] + b - a] = run[a - s0:b - s0]


def _perm_runs(perm) -> list[tuple[int, int, int]]:
    """A joint permutation as runs of consecutive joints: ``(dst_start, dst_stop, src_start)``."""
    perm = [int(p) for p in perm]
    runs, i = [], 0
    while i < len(perm):
        j = i
        while j + 1 < len(perm) and perm[j + 1] == perm[j] + 1:
            j += 1
        runs.append((i, j + 1, perm[i]))
        i = j + 1
    return runs


def _permute_joints(x: np.ndarray, runs, sign=None) -> np.ndarray:
    """``x[:, perm] * sign`` for ``x (R, J, ...)`` with slice copies (H36M's flip is 6 runs): no
    fancy-index temporaries, ~2x faster."""
    out = np.empty_like(x)
    for a, b, c in runs:
        out[:, a:b] = x[:, c:c + b - a]
    if sign is not None:
        out *= np.asarray(sign, x.dtype)
    return out


# ----------------------------------------------------------------------------------------------
# The stream
# ----------------------------------------------------------------------------------------------

def _open(source):
    if isinstance(source, str):
        from schemas.reader import open_corpus  # late: the reader lives in pipelines

        return open_corpus(source)
    return source


def _spec_of(reader) -> object:
    """A picklable ``"PATH@SNAPSHOT"`` for a corpus reader (the reader itself when it has no path)."""
    path, version = getattr(reader, "path", None), getattr(reader, "version_id", None)
    return f"{path}@{version}" if path is not None and version else reader


@dataclass
class _Group:
    """Resident data of one group of blocks: concatenated rows plus the group's sample order."""

    kp2d: torch.Tensor | None  # (R, J*2) normalised 2D, rows = frames (None: all samples per-window)
    j3d: torch.Tensor | None  # (R, J*3) root-relative camera-frame metres
    in_view: torch.Tensor | None  # (R, J)
    world: torch.Tensor | None  # (R, J*3) world metres (per-window cameras), rows aligned with the above
    kp2d_f: torch.Tensor | None  # the stored arrays left/right flipped (None: no flip or per-window only)
    j3d_f: torch.Tensor | None
    in_view_f: torch.Tensor | None
    row0: np.ndarray  # (K,) row of frame 0 of each sample's view in the group arrays (may be < 0)
    n_frames: np.ndarray  # (K,) frames of each sample's view
    view: np.ndarray  # (K,) global view index
    t: np.ndarray  # (K,) centre frame in its view
    s_in: np.ndarray  # (K,)
    shift: np.ndarray | None  # (K,) key-frame phase in output frames; None: aligned to global frames (eval)
    flipped: np.ndarray  # (K,) bool: mirrored sample (separate flipped copies)
    camera: np.ndarray | None  # (K,) camera index in the rig pool, -1: stored view
    pool: object = None  # (intrinsics (P, 11), extrinsics (P, 3, 4), centre_xy) of the per-window rig


class WindowStream(IterableDataset):
    """Batches of windows streamed from corpus versions. Use with ``DataLoader(ds, batch_size=None)``.

    ``sources``: corpus readers (``schemas.reader.CorpusReader``) or ``"PATH@VERSION"`` strings.
    Each yielded batch is a dict of tensors (B = batch size, N = n_out tokens, J = joints):
    ``keypoints_2d (B,N,J,2)`` normalised 2D input, ``joints_3d (B,N,J,3)`` root-relative camera-frame
    metres, ``valid (B,N)`` in-sequence mask, ``keyframe (B,N)`` 2D-input mask, ``in_view (B,N,J)``,
    ``s_in (B,)``, ``view (B,)`` global view index (see ``views``), ``frame (B,)`` centre frame,
    ``flipped (B,)``, ``camera (B,)`` index in the per-window rig pool (-1: the stored view).

    ``train=True``: shuffled, random s_in and phase, flip, drop_last per config.
    ``train=False``: every selected frame in corpus order, one fixed ``eval_s_in``, key frames aligned
    to global frame indices, no flip, last batch kept.
    """

    def __init__(self, sources: Sequence[object] | object, config: StreamConfig = StreamConfig(), *,
                 train: bool = True, eval_s_in: int | None = None, rank: int | None = None,
                 world_size: int | None = None, skeleton=H36M_17, **filters):
        super().__init__()
        if not isinstance(sources, (list, tuple)):
            sources = [sources]
        if not train:
            config = replace(config, flip=False, random_shift=False, drop_last=False)
            s = eval_s_in if eval_s_in is not None else config.s_in[0]
            config = replace(config, s_in=(s,))
        self.config = config
        self.train = train
        self.filters = filters
        self.skeleton = skeleton
        if rank is None or world_size is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank, world_size = 0, 1
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start_batch = 0  # batches (of the whole loader, all workers) already consumed this epoch
        self._shared = None  # (epoch, start_batch) shared with persistent workers, see share_position
        self._sources = list(sources)
        self._parts: list[_Part] | None = None
        self._build_parts()

    # -- pickling (DataLoader workers are spawned: Icechunk's runtime does not survive a fork) --

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_parts"] = [replace(p, source=_spec_of(p.source)) for p in self._parts]
        state["_sources"] = [_spec_of(_open(s)) if not isinstance(s, str) else s for s in self._sources]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._parts = [replace(p, source=_open(p.source)) for p in self._parts]

    # -- metadata --------------------------------------------------------------------------

    def _build_parts(self):
        parts, base = [], 0
        cfg = self.config
        for src in self._sources:
            reader = _open(src)
            views = select_views(reader.sequences, reader.views, **self.filters)
            seq_off = pw = rig = None
            if self.train and cfg.cameras == "per-window":
                views, seq_off, pw = _per_window_views(reader.sequences, views)
                rig = np.asarray(views["rig"].to_pylist(), object)
            off = views["offset"].to_numpy().astype(np.int64)
            n = views["n_frames"].to_numpy().astype(np.int64)
            parts.append(_Part(reader, views, off, n, base, _blocks_of(off, n, cfg.block_frames), seq_off, pw, rig))
            base += len(views)
        self._parts = parts
        self._block_ref = np.concatenate(
            [np.stack([np.full(len(p.blocks), i), p.blocks], 1) for i, p in enumerate(parts)]
            + [np.zeros((0, 2), np.int64)]).astype(np.int64)
        self._block_sizes = np.array(
            [_block_count(parts[i].offset, parts[i].n_frames, b, cfg.block_frames, cfg.frame_step)
             for i, b in self._block_ref], np.int64)

    @property
    def views(self) -> pa.Table:
        """All selected views across sources (row i = global view index i), with a ``source`` column."""
        tabs = [p.views.append_column("corpus", pa.array(np.full(len(p.views), i))) for i, p in
                enumerate(self._parts)]
        return pa.concat_tables(tabs)

    @property
    def num_windows(self) -> int:
        """Distinct window centres per epoch (all shards)."""
        return int(self._block_sizes.sum())

    def version_ids(self) -> list[str]:
        return [str(getattr(p.source, "version_id", "")) for p in self._parts]

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order; ``start_batch`` = loader batches already consumed (resume)."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)
        if self._shared is not None:
            self._shared[0], self._shared[1] = self.epoch, self.start_batch

    def share_position(self, ctx) -> None:
        """Keep (epoch, start_batch) in shared memory so that persistent workers see ``set_epoch``."""
        if self._shared is None:
            self._shared = ctx.RawArray("q", 2)
            self._shared[0], self._shared[1] = self.epoch, self.start_batch

    def _shard_info(self, num_workers: int, worker: int) -> tuple[int, int]:
        return self.rank * num_workers + worker, self.world_size * num_workers

    def _batch_count(self, shard: int, num_shards: int) -> int:
        blocks = shard_blocks(len(self._block_ref), self.config.seed, self.epoch, shard, num_shards,
                              shuffle=self.train)
        n = int(self._block_sizes[blocks].sum()) * self.config.copies
        b = self.config.base_per_batch
        return n // b if self.config.drop_last else -(-n // b)

    def batches_per_epoch(self, num_workers: int = 0) -> int:
        """Batches this rank's loader yields in the current epoch."""
        w = max(num_workers, 1)
        return sum(self._batch_count(*self._shard_info(w, i)) for i in range(w))

    # -- sample order (metadata only) ---------------------------------------------------------

    def _groups(self, shard: int, num_shards: int) -> list[np.ndarray]:
        blocks = shard_blocks(len(self._block_ref), self.config.seed, self.epoch, shard, num_shards,
                              shuffle=self.train)
        k = self.config.buffer_blocks
        return [blocks[i:i + k] for i in range(0, len(blocks), k)]

    def _load_group(self, blocks: np.ndarray, shard: int, gi: int) -> _Group:
        cfg = self.config
        J = self.skeleton.num_joints
        pw_mode = self.train and cfg.cameras == "per-window"
        # Every view per-window: the stored 2D/3D/in-view are never used, so never read.
        need_stored = not pw_mode or not all(
            self._parts[pi].per_window.all() for pi in np.unique(self._block_ref[blocks, 0]))
        rows, valid, view, ts, pwv, spans = [], [], [], [], [], []
        base = 0
        for bi in blocks:
            pi, b = self._block_ref[bi]
            part = self._parts[pi]
            v, t = block_centres(part.offset, part.n_frames, int(b), cfg.block_frames, cfg.frame_step)
            idx, ok = window_indices(t, part.n_frames[v], cfg.n_out, cfg.s_out)
            if len(t) == 0:
                continue
            # rows the block's windows reach: edge frames at most (copy padding), one read
            r0 = int((part.offset[v] + idx[:, 0]).min())
            r1 = int((part.offset[v] + idx[:, -1]).max()) + 1
            spans.append((int(pi), r0, r1, np.unique(v)))
            if pw_mode:
                pwv.append(part.per_window[v])
            rows.append(part.offset[v] - r0 + base)  # windows' rows = row0 + window_indices, per batch
            valid.append(part.n_frames[v])
            view.append(v + part.view_base)
            ts.append(t)
            base += r1 - r0
        # Group arrays allocated once and filled in place (no per-block copies, no concatenation).
        R = base
        dst = np.cumsum([0] + [sp[2] - sp[1] for sp in spans])[:-1]
        g_kp = np.empty((R, J, 2), np.float32) if need_stored else None
        g_j3 = np.empty((R, J, 3), np.float32) if need_stored else None
        g_iv = np.empty((R, J), bool) if need_stored else None
        g_wo = np.zeros((R, J, 3), np.float32) if pw_mode else None
        for pi in sorted({sp[0] for sp in spans}):  # reads coalesced per corpus (see read_coalesced)
            mine = [i for i, sp in enumerate(spans) if sp[0] == pi]
            src = self._parts[pi].source
            rng_ = [(spans[i][1], spans[i][2]) for i in mine]
            if need_stored:
                for out, spec in ((g_kp, KEYPOINTS_2D), (g_j3, JOINTS_CAM), (g_iv, IN_VIEW)):
                    read_coalesced(src.array(spec), rng_, out, dst[mine])
            if pw_mode:
                self._world_rows(self._parts[pi], [spans[i] for i in mine], g_wo, dst[mine])
        if need_stored:
            root = self.skeleton.root
            g_j3 -= g_j3[:, root:root + 1].copy()  # root-relative
        cat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))
        rows_a = cat(rows, (0,)).astype(np.int64)
        valid_a = cat(valid, (0,)).astype(np.int64)  # n_frames of each sample's view
        view_a, t_a = cat(view, (0,)).astype(np.int64), cat(ts, (0,)).astype(np.int64)
        pw_a = cat(pwv, (0,)).astype(bool) if pw_mode else np.zeros(len(t_a), bool)
        flipped = np.zeros(len(t_a), bool)
        if cfg.copies == 2:  # separate flipped copies: every window twice, shuffled together
            rows_a, valid_a, view_a, t_a, pw_a = (np.concatenate([x, x]) for x in (rows_a, valid_a, view_a, t_a, pw_a))
            flipped = np.r_[flipped, ~flipped]
        n = len(t_a)
        rng = np.random.default_rng([cfg.seed, self.epoch, shard, gi])
        if self.train:
            order = rng.permutation(n)
            rows_a, valid_a, view_a, t_a = rows_a[order], valid_a[order], view_a[order], t_a[order]
            pw_a, flipped = pw_a[order], flipped[order]
        if self.train and (len(cfg.s_in) > 1 or cfg.random_shift):
            s_in, shift = draw_keyframes(rng, n, cfg.s_in, cfg.s_out)
            if not cfg.random_shift:
                shift = np.zeros(n, np.int64)
        else:
            s_in = np.full(n, cfg.s_in[0], np.int64)
            shift = np.zeros(n, np.int64) if self.train else None
        camera, pool = None, None
        if pw_mode:  # drawn after the key frames: the precomputed path's draws are unchanged
            pool = self._pool(view_a[pw_a][:1])
            camera = np.where(pw_a, draw_cameras(rng, n, len(pool[0])), -1)
        # Row-flattened torch tensors: index_select copies whole rows (2x faster than np.take here).
        flat = (lambda x: torch.from_numpy(np.ascontiguousarray(x.reshape(len(x), -1))))
        flipped_arrays = (None,) * 3
        if need_stored and cfg.flip:  # flipped once per group: a batch then only gathers rows
            runs = _perm_runs(self.skeleton.flip_permutation)
            flipped_arrays = tuple(flat(_permute_joints(x, runs, sign)) for x, sign in
                                   ((g_kp, (-1.0, 1.0)), (g_j3, (-1.0, 1.0, 1.0)), (g_iv, None)))
        return _Group(*(flat(x) if x is not None else None for x in (g_kp, g_j3, g_iv, g_wo)), *flipped_arrays,
                      rows_a, valid_a, view_a, t_a, s_in, shift, flipped, camera, pool)

    def _world_rows(self, part: _Part, spans, out: np.ndarray, dst) -> None:
        """Fill ``out`` (zeros) with world joints aligned with the view rows of each block span
        ``(pi, r0, r1, views)`` written at ``dst``: view row r of view v is sequence row
        ``seq_offset[v] + r - offset[v]``; rows of other views stay zero."""
        targets, ranges = [], []
        for (_, r0, r1, views), d in zip(spans, dst):
            for v in views:
                a, b = max(r0, int(part.offset[v])), min(r1, int(part.offset[v] + part.n_frames[v]))
                if a < b and part.per_window[v]:
                    s0 = int(part.seq_offset[v]) + a - int(part.offset[v])
                    targets.append(int(d) + a - r0)
                    ranges.append((s0, s0 + b - a))
        read_coalesced(part.source.array(JOINTS_WORLD), ranges, out, targets)

    def _pool(self, some_views: np.ndarray):
        """The per-window camera pool: ``camera_rig``, else the rig of the (first) per-window view."""
        rig = self.config.camera_rig
        if rig is None:
            rig = "h36m"
            if len(some_views):
                gv = int(some_views[0])
                for p in self._parts:
                    if p.view_base <= gv < p.view_base + len(p.offset):
                        rig = str(p.rig[gv - p.view_base])
        return rig_pool(rig)

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        nw, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        if self._shared is not None:  # persistent worker: the main process's set_epoch
            self.epoch, self.start_batch = int(self._shared[0]), int(self._shared[1])
        shard, num_shards = self._shard_info(nw, wid)
        counts = [self._batch_count(*self._shard_info(nw, w)) for w in range(nw)]
        done, first = round_robin_skip(self.start_batch, counts)
        # On resume the loader starts again at its worker 0: rotate the shards so that worker 0
        # plays the shard that yields the next batch; the cyclic order then continues unchanged.
        role = (first + wid) % nw
        shard, num_shards = self._shard_info(nw, role)
        yield from self._iter_shard(shard, num_shards, done[role], counts[role])

    def iter_shard(self, shard: int, num_shards: int, skip: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Batches of one shard (for tests and custom launchers), skipping the first ``skip``."""
        yield from self._iter_shard(shard, num_shards, skip, self._batch_count(shard, num_shards))

    def _iter_shard(self, shard, num_shards, skip, n_batches):
        cfg = self.config
        groups = self._groups(shard, num_shards)
        sizes = [int(self._block_sizes[g].sum()) * cfg.copies for g in groups]
        bsz = cfg.base_per_batch
        pos = skip * bsz  # first sample (in shard order) still to emit
        end = n_batches * bsz if cfg.drop_last else sum(sizes)
        starts = np.cumsum([0] + sizes)
        resident: dict[int, _Group] = {}
        # The next group loads in a thread while this one is cut into batches (Zarr decoding and
        # numpy copies release the GIL): on 2 cores reading overlaps assembling. Loads are pure
        # functions of (blocks, seed, epoch, shard, group), so the order stays exact.
        # Not inside DataLoader workers: they already overlap reads with the trainer, and a prefetch
        # thread still loading when a worker is shut down aborts the worker ("terminate called...").
        in_worker = torch.utils.data.get_worker_info() is not None
        ahead = ThreadPoolExecutor(1, thread_name_prefix="group-prefetch") if cfg.prefetch_group and not in_worker else None
        futures: dict[int, Future] = {}
        try:
            yield from self._batches(groups, sizes, starts, pos, end, bsz, shard, resident, ahead, futures)
        finally:
            if ahead is not None:  # wait for a load in flight: never leave a reader running at exit
                ahead.shutdown(wait=True, cancel_futures=True)

    def _batches(self, groups, sizes, starts, pos, end, bsz, shard, resident, ahead, futures):
        while pos < end:
            stop = min(pos + bsz, end)
            pieces = []
            gi = int(np.searchsorted(starts, pos, side="right") - 1)
            p = pos
            while p < stop:
                while sizes[gi] == 0 or p >= starts[gi + 1]:
                    gi += 1
                if gi not in resident:
                    for old in [k for k in resident if k < gi]:
                        del resident[old]  # at most two groups resident (three while one loads ahead)
                    f = futures.pop(gi, None)
                    resident[gi] = f.result() if f is not None else self._load_group(groups[gi], shard, gi)
                    nxt = next((k for k in range(gi + 1, len(groups)) if sizes[k]), None)
                    if ahead is not None and nxt is not None and starts[nxt] < end and nxt not in futures:
                        futures[nxt] = ahead.submit(self._load_group, groups[nxt], shard, nxt)
                q = min(stop, int(starts[gi + 1]))
                pieces.append((resident[gi], p - int(starts[gi]), q - int(starts[gi])))
                p = q
            yield self._assemble(pieces, stop - pos)
            pos = stop

    def _assemble(self, pieces, n: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        J, N = self.skeleton.num_joints, cfg.n_out
        B = 2 * n if cfg.in_batch else n
        kp = torch.empty((B, N, J, 2), dtype=torch.float32)
        j3 = torch.empty((B, N, J, 3), dtype=torch.float32)
        iv = torch.empty((B, N, J), dtype=torch.bool)
        flat = [kp.view(B * N, -1), j3.view(B * N, -1), iv.view(B * N, -1)]
        valid = np.empty((B, N), bool)
        key = np.empty((B, N), bool)
        s_in = np.empty(B, np.int64)
        view = np.empty(B, np.int64)
        frame = np.empty(B, np.int64)
        flipped = np.zeros(B, bool)
        camera = np.full(B, -1, np.int64)
        perm = self.skeleton.flip_permutation
        root = self.skeleton.root
        o = 0
        for g, a, b in pieces:
            k = b - a
            idx, ok = window_indices(g.t[a:b], g.n_frames[a:b], N, cfg.s_out)
            rows2 = g.row0[a:b, None] + idx  # (k, N) rows in the group arrays
            r = torch.from_numpy(rows2.reshape(-1))
            fl = g.flipped[a:b]
            if g.kp2d is not None:
                for src, dst in zip((g.kp2d, g.j3d, g.in_view), flat):
                    torch.index_select(src, 0, r, out=dst[o * N:(o + k) * N])
                if cfg.in_batch:  # the flipped copies: rows of the group's flipped arrays
                    for src, dst in zip((g.kp2d_f, g.j3d_f, g.in_view_f), flat):
                        torch.index_select(src, 0, r, out=dst[(n + o) * N:(n + o + k) * N])
                if fl.any():  # separate flipped copies of stored views: rows of the flipped arrays
                    fi = np.flatnonzero(fl)
                    rf = torch.from_numpy(rows2[fi].reshape(-1))
                    sel = torch.from_numpy(fi + o)
                    for src, dst in zip((g.kp2d_f, g.j3d_f, g.in_view_f), (kp, j3, iv)):
                        dst[sel] = torch.index_select(src, 0, rf).view((len(fi),) + dst.shape[1:])
            if g.camera is not None:
                pw = g.camera[a:b] >= 0
                if pw.any():
                    pi_ = np.flatnonzero(pw)
                    rr = torch.from_numpy(rows2[pi_].reshape(-1))
                    world = torch.index_select(g.world, 0, rr).view(len(pi_), N, J, 3)
                    intr, extr, centre = g.pool
                    cam = torch.from_numpy(g.camera[a + pi_])
                    mirror = torch.from_numpy(fl[pi_])
                    if len(pi_) == k:  # all per-window: project straight into the batch
                        project_windows(world, intr[cam], extr[cam], mirror, centre, perm, root,
                                        out=(kp[o:o + k], j3[o:o + k], iv[o:o + k]))
                    else:
                        sel = torch.from_numpy(pi_ + o)
                        kp[sel], j3[sel], iv[sel] = project_windows(world, intr[cam], extr[cam], mirror, centre, perm, root)
                    if cfg.in_batch:  # the flipped copy: mirrored in world space, same camera
                        h = slice(n + o, n + o + k)
                        kpf, j3f, ivf = project_windows(world, intr[cam], extr[cam], torch.ones(len(pi_), dtype=torch.bool),
                                                        centre, perm, root,
                                                        out=(kp[h], j3[h], iv[h]) if len(pi_) == k else None)
            valid[o:o + k], s_in[o:o + k] = ok, g.s_in[a:b]
            if g.shift is None:  # evaluation: key frames aligned to global frame indices
                key[o:o + k] = keyframe_mask(N, cfg.s_out, g.s_in[a:b], 0, centre=g.t[a:b])
            else:
                key[o:o + k] = keyframe_mask(N, cfg.s_out, g.s_in[a:b], g.shift[a:b])
            view[o:o + k], frame[o:o + k], flipped[o:o + k] = g.view[a:b], g.t[a:b], fl
            if g.camera is not None:
                camera[o:o + k] = g.camera[a:b]
            if cfg.in_batch:
                if g.camera is not None and pw.any() and len(pi_) < k:
                    sel = torch.from_numpy(pi_ + n + o)
                    kp[sel], j3[sel], iv[sel] = kpf, j3f, ivf
            o += k
        if cfg.in_batch:
            for arr in (valid, key, s_in, view, frame, camera):
                arr[n:] = arr[:n]
            flipped[n:] = True
        out = dict(valid=valid, keyframe=key, s_in=s_in, view=view, frame=frame, flipped=flipped, camera=camera)
        out = {k: torch.from_numpy(v) for k, v in out.items()}
        return dict(keypoints_2d=kp, joints_3d=j3, in_view=iv, **out)


def _per_window_views(sequences: pa.Table, views: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """For per-window cameras: one view per AMASS sequence (its cameras are drawn per window instead;
    keeping all k views would repeat each window k times an epoch), every other view as it is.

    Returns ``(views, seq_offset (V,), per_window (V,) bool)``, views still sorted by offset.
    """
    amass = views["source"].to_numpy(zero_copy_only=False) == "amass" if "source" in views.column_names \
        else np.zeros(views.num_rows, bool)
    sid = views["sequence_id"].to_numpy()
    first = np.ones(views.num_rows, bool)
    order = np.lexsort((views["offset"].to_numpy(), sid))
    dup = np.r_[False, sid[order][1:] == sid[order][:-1]]
    first[order[dup]] = False
    keep = ~amass | first
    views = views.filter(pa.array(keep))
    seq_ids = sequences["sequence_id"].to_numpy()
    seq_off = sequences["offset"].to_numpy().astype(np.int64)
    pos = np.searchsorted(seq_ids, views["sequence_id"].to_numpy(), sorter=np.argsort(seq_ids))
    so = seq_off[np.argsort(seq_ids)[pos]]
    return views, so, amass[keep]


def _worker_init(_worker_id: int) -> None:
    # One intra-op thread per worker: the workers gather and project with numpy/torch, and k workers
    # with a thread per core each would fight the training process for the cores.
    torch.set_num_threads(1)


def make_loader(stream: WindowStream, num_workers: int = 0, pin_memory: bool = False, persistent: bool = False,
                prefetch_factor: int | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader over whole batches (the stream batches itself), in deterministic worker order.

    Workers are spawned, not forked: a forked child inherits Icechunk's async runtime without its
    threads and hangs on the first read. The stream pickles its corpora as ``PATH@SNAPSHOT``.
    ``persistent``: workers live across epochs (no re-spawn per epoch); ``set_epoch`` reaches them
    through shared memory, read at the start of each epoch's iteration. Call ``close_loader`` when
    done so that the workers exit cleanly instead of being killed at interpreter exit.
    """
    kw: dict = {}
    if num_workers:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        kw = dict(multiprocessing_context=ctx, worker_init_fn=_worker_init, persistent_workers=persistent,
                  prefetch_factor=prefetch_factor or 2)
        if persistent:
            stream.share_position(ctx)
    # Own generator: a loader iterator otherwise draws its base seed from the global torch RNG,
    # which would shift dropout / drop-path draws and break exact resume.
    return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                                       generator=torch.Generator().manual_seed(stream.config.seed), **kw)


def close_loader(loader: torch.utils.data.DataLoader) -> None:
    """Shut a (persistent) loader's workers down now."""
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    loader._iterator = None
