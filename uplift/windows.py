"""Window geometry and sampling plans (metadata only, no array reads).

* ``window_indices``: which frames a window of ``n_out`` tokens at stride ``s_out`` centred on frame t
  reads, with the official "copy" padding at sequence edges.
* ``StreamConfig``: the window and loader settings of ``uplift.stream.WindowStream``.
* Plans: which views a stream selects (``select_views``, ``per_window_views``), the blocks of
  ``block_frames`` rows those views touch (``blocks_of``), the window centres inside a block
  (``block_centres``), which blocks a shard reads in an epoch (``shard_blocks``), and where a
  DataLoader over several workers stands after k batches (``round_robin_skip``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from schemas.errors import ConfigError
from uplift.config import (Bool, CameraMode, CameraRig, Config, Int, KeyframeDraw, Mirror, Placement, UpliftConfig,
                           check_s_in, items_of, window_problem, window_tokens, within)

if TYPE_CHECKING:
    from uplift.run_config import RunConfig


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


class StreamConfig(Config):
    """Window and loader settings. Defaults are the published N=351, s_out=5, s_in in {5,10,20}.

    A window spans ``seq_len`` (N) frames at the full rate and holds ``n_out = (N-1)/s_out + 1``
    tokens (71 for the published setting), as ``uplift.config.ModelConfig`` counts them. A training
    run's stream is ``StreamConfig.for_training``: each setting is the run's setting of the same name.
    """

    seq_len: Int = Field(351, ge=1)
    s_out: Int = Field(5, ge=1)
    s_in: items_of(within(Int, 1, 4096), min_length=1) = (5, 10, 20)
    batch_size: Int = Field(512, ge=1)  # windows per batch, flipped copies included
    flip: Bool = True  # mirrored copies (left/right)
    in_batch_flip: Bool = True  # True: second half of each batch = flipped first half; False: separate samples
    keyframe_random_shift: Bool = True  # random key-frame phase (training); evaluation aligns to global frames
    frame_step: Int = Field(1, ge=1)  # every frame_step-th frame is a window centre
    block_frames: Int = Field(256, ge=1)  # small blocks, many of them in a group: batches mix the corpus
    buffer_blocks: Int = Field(512, ge=1)  # blocks shuffled together; bounds memory
    drop_last: Bool = True
    seed: Int = 0
    cameras: CameraMode = "precomputed"  # or "per-window" (AMASS views, see uplift.views)
    prefetch_group: Bool | None = None  # load the next group in a background thread; None: where > 2 cores
    camera_rig: CameraRig | None = None  # per-window pool: "h36m" | "3dhp"; None: each view's own rig
    # Recipe items (uplift.config.RECIPE_ITEMS): how (s_in, phase) are drawn; per-window cameras:
    # centre the window's root path or project it as stored, and the mirror plane of the flips.
    keyframe_draw: KeyframeDraw = "uniform"
    placement: Placement = "centred"
    mirror: Mirror = "volume-centre"

    @model_validator(mode="after")
    def _consistent(self):
        problem = window_problem(self.seq_len, self.s_out)
        if problem:
            raise ConfigError(problem)
        check_s_in(self.s_in, self.s_out)
        if self.in_batch and self.batch_size % 2:
            raise ConfigError(f"batch_size must be even with flip, got {self.batch_size}")
        return self

    # Settings of the stream alone; every other one is set by a training run (``for_training``).
    STREAM_ONLY: ClassVar[tuple[str, ...]] = ("flip", "frame_step", "drop_last", "prefetch_group")

    @classmethod
    def for_training(cls, run: "RunConfig", uplift: UpliftConfig) -> "StreamConfig":
        """The training stream of a run: every setting but ``STREAM_ONLY`` takes the value of the run's
        setting of the same name, from the model and training settings, the run's own, its resolved
        recipe items and camera mode (``uplift.config``, ``uplift.run_config``: one name per setting)."""
        named = {**dict(uplift.model), **dict(uplift.train), **dict(run), **run.recipe_items(),
                 "cameras": run.camera_mode}
        return cls(**{k: named[k] for k in cls.model_fields if k not in cls.STREAM_ONLY})

    @property
    def n_out(self) -> int:
        """Tokens per window."""
        return window_tokens(self.seq_len, self.s_out)

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


def blocks_of(offset: np.ndarray, n_frames: np.ndarray, block_frames: int) -> np.ndarray:
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


def block_count(offset, n_frames, block, block_frames, frame_step) -> int:
    """Window centres inside one block (see ``block_centres``)."""
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


def per_window_views(sequences: pa.Table, views: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
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
