"""Streaming training/evaluation windows from one or more corpus versions, with bounded memory.

Modules: ``uplift.windows`` (window geometry, settings, sampling plans from metadata),
``uplift.blocks`` (reading a group of blocks), ``uplift.batches`` (cutting batches from resident
groups), this module (the ``IterableDataset``: shards, epochs, resume, prefetch) and
``uplift.loader`` (the DataLoader and its workers).

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
* A resident group keeps each block's frames in ``s_out`` lattice planes, so a window's N frames are
  contiguous and a batch copies whole windows (``uplift.blocks``, ``uplift.batches``).
* The stream yields whole batches (torch gathers, no per-sample Python); use it with
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

import os
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import IterableDataset, get_worker_info

from schemas.reader import open_corpus
from schemas.skeletons import H36M_17
from uplift import worker_buffers
from uplift.batches import assemble
from uplift.blocks import Group, Part, load_group
from uplift.windows import (StreamConfig, block_count, blocks_of, per_window_views, round_robin_skip,
                            select_views, shard_blocks)


def use_prefetch(cfg: StreamConfig) -> bool:
    """Whether the next group loads in a background thread while the stream is open (``with stream:``,
    ``WindowStream.open``): ``cfg.prefetch_group``, or when that is None, only where this process may
    run on more than two cores.

    Measured on 2 cores (``benchmarks/bench_loader.py``, ``ours_wps`` vs ``ours_1thread_prefetch_wps``
    in ``benchmarks/RESULTS.md``): a load overlapping the batch gathers slows them by ~1.4x (both are
    memory-heavy; the load's Zarr decoding also runs several threads), so loading in line and
    gathering on both cores (torch's intra-op threads) is faster than one gather thread beside a
    load thread. With more cores the thread hides the
    loads from a trainer in the same process, which would otherwise wait for each one.
    """
    if cfg.prefetch_group is not None:
        return cfg.prefetch_group
    return len(os.sched_getaffinity(0)) > 2 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) > 2


def _open(source):
    return open_corpus(source) if isinstance(source, str) else source


def _spec_of(reader) -> object:
    """A picklable ``"PATH@SNAPSHOT"`` for a corpus reader (the reader itself when it has no path)."""
    path, version = getattr(reader, "path", None), getattr(reader, "version_id", None)
    return f"{path}@{version}" if path is not None and version else reader


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

    Open (``with stream:``, or ``open()`` ... ``close()``; ``uplift.loader.make_loader`` opens it for
    an in-process loader and ``close_loader`` closes it), the stream may load the next group in a
    background thread while batches are cut (``use_prefetch``); ``close()`` waits for a load in flight
    and stops the thread. Not open, every group loads in line. So no load outlives the scope that
    opened the stream: at interpreter exit a load still reading would fail inside Zarr (whose decoding
    runs on a thread pool that concurrent.futures shuts down first) and could abort the interpreter
    from Icechunk's runtime.
    """

    def __init__(self, sources: Sequence[object] | object, config: StreamConfig = StreamConfig(), *,
                 train: bool = True, eval_s_in: int | None = None, rank: int | None = None,
                 world_size: int | None = None, skeleton=H36M_17, **filters):
        super().__init__()
        if not isinstance(sources, (list, tuple)):
            sources = [sources]
        if not train:
            s = eval_s_in if eval_s_in is not None else config.s_in[0]
            config = config.replace(flip=False, keyframe_random_shift=False, drop_last=False, s_in=(s,))
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
        self._parts: list[Part] | None = None
        self._build_parts()
        self._prefetch: ThreadPoolExecutor | None = None  # while open and use_prefetch: one loader thread
        self._close_prefetch = None  # weakref.finalize of that thread's shutdown

    # -- lifetime of the prefetch thread ------------------------------------------------------

    def open(self) -> "WindowStream":
        """Allow the next group to load in a background thread while this process iterates
        (``use_prefetch``). Never inside a DataLoader worker: workers overlap their reads with the
        trainer already, and a thread still loading when a worker shuts down aborts the worker."""
        if self._prefetch is None and use_prefetch(self.config) and get_worker_info() is None:
            self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="group-prefetch")
            # a stream dropped while open stops its thread too (after its iterations waited for their loads)
            self._close_prefetch = weakref.finalize(self, self._prefetch.shutdown, wait=True, cancel_futures=True)
        return self

    def close(self) -> None:
        """Wait for a group load in flight, drop queued ones and stop the prefetch thread; an iteration
        still going on loads its next groups in line."""
        executor, self._prefetch = self._prefetch, None
        if executor is not None:
            self._close_prefetch.detach()
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "WindowStream":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- pickling (DataLoader workers are spawned: Icechunk's runtime does not survive a fork) --

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_prefetch"] = state["_close_prefetch"] = None  # a copy (a DataLoader worker) loads in line
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
                views, seq_off, pw = per_window_views(reader.sequences, views)
                rig = np.asarray(views["rig"].to_pylist(), object)
            off = views["offset"].to_numpy().astype(np.int64)
            n = views["n_frames"].to_numpy().astype(np.int64)
            parts.append(Part(reader, views, off, n, base, blocks_of(off, n, cfg.block_frames), seq_off, pw, rig))
            base += len(views)
        self._parts = parts
        self._block_ref = np.concatenate(
            [np.stack([np.full(len(p.blocks), i), p.blocks], 1) for i, p in enumerate(parts)]
            + [np.zeros((0, 2), np.int64)]).astype(np.int64)
        self._block_sizes = np.array(
            [block_count(parts[i].offset, parts[i].n_frames, b, cfg.block_frames, cfg.frame_step)
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


    def _load_group(self, blocks: np.ndarray, shard: int, gi: int) -> Group:
        return load_group(self._parts, self._block_ref, blocks, self.config, self.skeleton, train=self.train,
                          epoch=self.epoch, shard=shard, gi=gi)

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

    def _iter_shard(self, shard, num_shards, skip, n_batches):
        cfg = self.config
        groups = self._groups(shard, num_shards)
        sizes = [int(self._block_sizes[g].sum()) * cfg.copies for g in groups]
        bsz = cfg.base_per_batch
        pos = skip * bsz  # first sample (in shard order) still to emit
        end = n_batches * bsz if cfg.drop_last else sum(sizes)
        starts = np.cumsum([0] + sizes)
        resident: dict[int, Group] = {}
        # While the stream is open, the next group may load in its thread while this one is cut into
        # batches (Zarr decoding and torch copies release the GIL). Loads are pure functions of (blocks,
        # seed, epoch, shard, group), so the order stays exact either way.
        futures: dict[int, Future] = {}
        try:
            yield from self._batches(groups, sizes, starts, pos, end, bsz, shard, resident, futures)
        finally:  # this iteration's loads: queued ones dropped, one in flight waited for
            for f in futures.values():
                f.cancel()
            wait(futures.values())

    def _prefetch_next(self, futures: dict[int, Future], groups, sizes, starts, end, shard, gi: int) -> None:
        """Submit the load of the group after ``gi`` that holds samples before ``end`` (while open)."""
        nxt = next((k for k in range(gi + 1, len(groups)) if sizes[k]), None)
        executor = self._prefetch
        if executor is not None and nxt is not None and starts[nxt] < end and nxt not in futures:
            futures[nxt] = executor.submit(self._load_group, groups[nxt], shard, nxt)

    def _batches(self, groups, sizes, starts, pos, end, bsz, shard, resident, futures):
        buffers = worker_buffers.installed()  # a worker of make_loader: reuse its ring of batch buffers
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
                    resident[gi] = f.result() if f is not None and not f.cancelled() else \
                        self._load_group(groups[gi], shard, gi)
                    self._prefetch_next(futures, groups, sizes, starts, end, shard, gi)
                q = min(stop, int(starts[gi + 1]))
                pieces.append((resident[gi], p - int(starts[gi]), q - int(starts[gi])))
                p = q
            if buffers is None:
                yield assemble(pieces, stop - pos, self.config, self.skeleton)
            else:
                yield buffers.seal(assemble(pieces, stop - pos, self.config, self.skeleton, buffers.take))
            pos = stop
