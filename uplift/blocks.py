"""The block buffer: one group of blocks read from the corpora into resident arrays.

A group is ``buffer_blocks`` blocks of a shard (see ``uplift.stream``). ``load_group`` reads each
block's rows plus the halo its windows reach (coalesced: one Zarr call per run of nearby blocks),
makes the 3D root-relative, precomputes the left/right flipped arrays once, and fixes the group's
sample order (a permutation and the key-frame / camera draws of a generator seeded by
``(seed, epoch, shard, group)``), so that a batch only gathers rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from schemas.store import IN_VIEW, JOINTS_CAM, JOINTS_WORLD, KEYPOINTS_2D
from uplift.keyframes import draw_keyframes, draw_keyframes_coupled
from uplift.views import draw_cameras, rig_pool
from uplift.windows import StreamConfig, block_centres


@dataclass
class Part:
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


@dataclass
class Group:
    """Resident data of one group of blocks: the blocks' frames plus the group's sample order.

    Frames are laid out in lattice planes (see ``load_group``): the frames of a window at stride
    ``s_out`` are consecutive positions, ``centre + (idx - t) // s_out`` for ``window_indices`` idx.
    """

    kp2d: torch.Tensor | None  # (R, J*2) normalised 2D, one position a frame (None: all samples per-window)
    j3d: torch.Tensor | None  # (R, J*3) root-relative camera-frame metres
    in_view: torch.Tensor | None  # (R, J)
    world: torch.Tensor | None  # (R, J*3) world metres (per-window cameras), positions as above
    kp2d_f: torch.Tensor | None  # the stored arrays left/right flipped (None: no flip or per-window only)
    j3d_f: torch.Tensor | None
    in_view_f: torch.Tensor | None
    centre: np.ndarray  # (K,) position of each sample's centre frame in the group arrays
    n_frames: np.ndarray  # (K,) frames of each sample's view
    view: np.ndarray  # (K,) global view index
    t: np.ndarray  # (K,) centre frame in its view
    s_in: np.ndarray  # (K,)
    shift: np.ndarray | None  # (K,) key-frame phase in output frames; None: aligned to global frames (eval)
    flipped: np.ndarray  # (K,) bool: mirrored sample (separate flipped copies)
    camera: np.ndarray | None  # (K,) camera index in the rig pool, -1: stored view
    pool: object = None  # (intrinsics (P, 11), extrinsics (P, 3, 4), centre_xy) of the per-window rig


@dataclass
class Placed:
    """A group's window centres placed in its arrays, before any read (K samples, one a centre).

    The group arrays hold each block's row span ``(part, r0, r1, views)`` (its rows plus the halo its
    windows reach) in ``s_out`` lattice planes, spans one after the other: ``rows`` positions in all.
    """

    centre: np.ndarray  # (K,) int64 position of each sample's centre frame in the group arrays
    n_frames: np.ndarray  # (K,) int64 frames of each sample's view
    view: np.ndarray  # (K,) int64 global view index
    t: np.ndarray  # (K,) int64 centre frame in its view
    per_window: np.ndarray  # (K,) bool: the sample's view is re-projected per window
    spans: list  # [(part, r0, r1, views (V_i,))] one a non-empty block, in group order
    rows: int  # R, positions of the group arrays (each span padded to a multiple of s_out)


def load_group(parts: Sequence[Part], block_ref: np.ndarray, blocks: np.ndarray, cfg: StreamConfig, skeleton, *,
               train: bool, epoch: int, shard: int, gi: int) -> Group:
    """Read the blocks ``block_ref[blocks]`` (``(part, block)`` pairs) and fix their sample order.

    Places the blocks' window centres (``place_blocks``), reads the stored 2D / 3D / in-view rows
    (``read_stored``) unless every view is re-projected per window, and the world joints of those that
    are (``read_world``), then draws the group's sample order, key frames and cameras from one generator
    seeded by ``(seed, epoch, shard, gi)`` (``sample_order``) and flips the stored arrays once.
    """
    pw_mode = train and cfg.cameras == "per-window"
    # Every view per-window: the stored 2D/3D/in-view are never used, so never read.
    need_stored = not pw_mode or not all(
        parts[pi].per_window.all() for pi in np.unique(block_ref[blocks, 0]))
    placed = place_blocks(parts, block_ref, blocks, cfg, pw_mode)
    spans, dst = placed.spans, span_starts(placed.spans, cfg.s_out)
    relayout = torch.from_numpy(plane_order(dst, padded_lengths(spans, cfg.s_out), cfg.s_out))
    scratch = np.empty(placed.rows * skeleton.num_joints * 3 * 4, np.uint8)  # the largest array, reused by each
    stored = read_stored(parts, spans, dst, relayout, scratch, skeleton, cfg.s_out) if need_stored else {}
    world = read_world(parts, spans, dst, relayout, scratch, skeleton.num_joints) if pw_mode else None
    del scratch  # before the flipped copies: peak memory
    rng = np.random.default_rng([cfg.seed, epoch, shard, gi])
    order = sample_order(placed, cfg, train, rng)
    per_window = order.pop("per_window")
    s_in, shift = draw_group_keyframes(len(per_window), cfg, train, rng)
    camera, pool = None, None
    if pw_mode:  # drawn after the key frames: the precomputed path's draws are unchanged
        pool = pool_of(parts, order["view"][per_window][:1], cfg.camera_rig)
        camera = np.where(per_window, draw_cameras(rng, len(per_window), len(pool[0])), -1)
    flipped = (None,) * 3
    if need_stored and cfg.flip:  # flipped once per group: a batch then only gathers rows
        flipped = tuple(flip_rows(stored[spec], skeleton.flip_permutation, c, neg_x)
                        for spec, c, neg_x in ((KEYPOINTS_2D, 2, True), (JOINTS_CAM, 3, True), (IN_VIEW, 1, False)))
    return Group(kp2d=stored.get(KEYPOINTS_2D), j3d=stored.get(JOINTS_CAM), in_view=stored.get(IN_VIEW), world=world,
                 kp2d_f=flipped[0], j3d_f=flipped[1], in_view_f=flipped[2], s_in=s_in, shift=shift, camera=camera,
                 pool=pool, **order)


def place_blocks(parts: Sequence[Part], block_ref: np.ndarray, blocks: np.ndarray, cfg: StreamConfig,
                 pw_mode: bool) -> Placed:
    """Each block's window centres (``block_centres``) and the row span its windows reach (edge frames
    at most, copy padding: one read), the spans laid out one after the other in ``s_out`` lattice planes
    (``plane`` rows a plane), so a centre's position is ``base + (local % s_out) * plane + local // s_out``
    for its row ``local`` inside the span. Blocks without a centre get no span."""
    S = cfg.s_out
    pos, n_frames, view, ts, pwv, spans = [], [], [], [], [], []
    base = 0
    for bi in blocks:
        pi, b = block_ref[bi]
        part = parts[pi]
        v, t = block_centres(part.offset, part.n_frames, int(b), cfg.block_frames, cfg.frame_step)
        if len(t) == 0:
            continue
        first, last = window_edges(t, part.n_frames[v], cfg.n_out, S)
        r0 = int((part.offset[v] + first).min())
        r1 = int((part.offset[v] + last).max()) + 1
        plane = -(-(r1 - r0) // S)  # rows of each of the span's S lattice planes
        spans.append((int(pi), r0, r1, np.unique(v)))
        if pw_mode:
            pwv.append(part.per_window[v])
        local = part.offset[v] + t - r0  # centre row inside the span
        pos.append(base + (local % S) * plane + local // S)
        n_frames.append(part.n_frames[v])
        view.append(v + part.view_base)
        ts.append(t)
        base += plane * S
    t_all = _concat(ts, np.int64)
    per_window = _concat(pwv, bool) if pw_mode else np.zeros(len(t_all), bool)
    return Placed(centre=_concat(pos, np.int64), n_frames=_concat(n_frames, np.int64), view=_concat(view, np.int64),
                  t=t_all, per_window=per_window, spans=spans, rows=base)


def _concat(xs: list[np.ndarray], dtype) -> np.ndarray:
    """``xs`` end to end as ``dtype`` (``(0,)`` for none)."""
    return (np.concatenate(xs) if xs else np.zeros((0,))).astype(dtype)


def padded_lengths(spans, s: int) -> np.ndarray:
    """``(n_spans,)`` rows of each span ``(part, r0, r1, views)`` rounded up to a multiple of ``s``."""
    lens = np.array([sp[2] - sp[1] for sp in spans], np.int64)
    return -(-lens // s) * s


def span_starts(spans, s: int) -> np.ndarray:
    """``(n_spans,)`` first position of each span in the group arrays (spans padded to multiples of ``s``)."""
    return np.cumsum(np.r_[0, padded_lengths(spans, s)])[:-1]


def read_stored(parts: Sequence[Part], spans, dst: np.ndarray, relayout: torch.Tensor, scratch: np.ndarray,
                skeleton, s: int) -> dict:
    """The stored arrays of the group's spans in the plane layout: ``{KEYPOINTS_2D: (R, J*2) float32,
    JOINTS_CAM: (R, J*3) float32 root-relative, IN_VIEW: (R, J) bool}``.

    Each array is read row-ordered into ``scratch`` (coalesced reads per corpus), its padding rows
    zeroed, then laid out by one gather (``relayout``: ``plane_order``)."""
    J = skeleton.num_joints
    R = len(relayout)
    lens = np.array([sp[2] - sp[1] for sp in spans], np.int64)
    pad_rows = np.concatenate([np.arange(d + n, d + p) for d, n, p in zip(dst, lens, padded_lengths(spans, s))]
                              + [np.zeros(0, np.int64)])
    stored = {}
    for spec, dtype, c in ((KEYPOINTS_2D, np.float32, 2), (JOINTS_CAM, np.float32, 3), (IN_VIEW, np.bool_, 0)):
        rows = scratch[:R * J * max(c, 1) * np.dtype(dtype).itemsize].view(dtype).reshape((R, J, c) if c else (R, J))
        for pi, mine in _spans_by_part(spans):  # reads coalesced per corpus (see read_coalesced)
            read_coalesced(parts[pi].source.array(spec), [spans[i][1:3] for i in mine], rows, dst[mine])
        rows[pad_rows] = 0  # never gathered; zeros keep the arithmetic below clean
        if spec == JOINTS_CAM:
            root = skeleton.root
            rows -= rows[:, root:root + 1].copy()  # root-relative
        stored[spec] = torch.index_select(torch.from_numpy(rows.reshape(R, -1)), 0, relayout)
    return stored


def read_world(parts: Sequence[Part], spans, dst: np.ndarray, relayout: torch.Tensor, scratch: np.ndarray,
               num_joints: int) -> torch.Tensor:
    """``(R, J*3)`` float32 world joints of the per-window views in the plane layout (rows of stored
    views zero), read row-ordered into ``scratch`` (``world_rows``) and laid out by one gather."""
    R = len(relayout)
    rows = scratch[:R * num_joints * 3 * 4].view(np.float32).reshape(R, num_joints, 3)
    rows[:] = 0  # rows of stored views stay zero
    for pi, mine in _spans_by_part(spans):
        world_rows(parts[pi], [spans[i] for i in mine], rows, dst[mine])
    return torch.index_select(torch.from_numpy(rows.reshape(R, -1)), 0, relayout)


def _spans_by_part(spans) -> list[tuple[int, list[int]]]:
    """``[(part, [span indices])]`` for each part the spans read from, parts ascending."""
    return [(pi, [i for i, sp in enumerate(spans) if sp[0] == pi]) for pi in sorted({sp[0] for sp in spans})]


def sample_order(placed: Placed, cfg: StreamConfig, train: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The group's samples in the order batches take them: ``centre, n_frames, view, t, per_window,
    flipped``, each ``(K',)``. With separate flipped copies (``cfg.copies == 2``) every centre appears
    twice (``K' = 2K``, the second ``flipped``); in training the samples are permuted (``rng``'s first
    draw), in evaluation they stay in corpus order."""
    cols = {"centre": placed.centre, "n_frames": placed.n_frames, "view": placed.view, "t": placed.t,
            "per_window": placed.per_window}
    flipped = np.zeros(len(placed.t), bool)
    if cfg.copies == 2:  # separate flipped copies: every window twice, shuffled together
        cols = {k: np.concatenate([x, x]) for k, x in cols.items()}
        flipped = np.r_[flipped, ~flipped]
    cols["flipped"] = flipped
    if train:
        order = rng.permutation(len(flipped))
        cols = {k: x[order] for k, x in cols.items()}
    return cols


def draw_group_keyframes(n: int, cfg: StreamConfig, train: bool, rng: np.random.Generator
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(s_in (n,), shift (n,))`` of the group's samples: drawn in training when there is a choice
    (several ``s_in`` or a random phase; ``cfg.keyframe_draw``), else the first ``s_in`` and phase 0;
    in evaluation ``shift`` is None (key frames aligned to global frame indices)."""
    if train and (len(cfg.s_in) > 1 or cfg.keyframe_random_shift):
        if cfg.keyframe_draw == "coupled":  # the released generators, seeded once a group
            s_in, shift = draw_keyframes_coupled(int(rng.integers(2**63)), n, cfg.s_in, cfg.s_out)
        else:
            s_in, shift = draw_keyframes(rng, n, cfg.s_in, cfg.s_out)
        if not cfg.keyframe_random_shift:
            shift = np.zeros(n, np.int64)
        return s_in, shift
    return np.full(n, cfg.s_in[0], np.int64), (np.zeros(n, np.int64) if train else None)


def window_edges(t: np.ndarray, n_frames: np.ndarray, n_out: int, s_out: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last frame ``(K,)`` that windows centred on ``t`` read: ``window_indices``' first and
    last column, without the ``(K, n_out)`` arrays."""
    left = t - (n_out // 2) * s_out
    right = t + (n_out - 1 - n_out // 2) * s_out
    first = np.where(left < 0, t % s_out, left)
    last = np.where(right >= n_frames, t + ((n_frames - 1 - t) // s_out) * s_out, right)
    return first, last


def plane_order(dst: np.ndarray, padded: np.ndarray, s: int) -> np.ndarray:
    """``(R,)`` row-ordered index of each position of the plane layout: span i (rows ``dst[i]`` ..
    ``dst[i] + padded[i]``, ``padded`` a multiple of ``s``) holds its rows ``rho, rho + s, ...`` for
    ``rho = 0 .. s-1`` in turn."""
    span = np.repeat(np.arange(len(dst)), padded)
    local = np.arange(int(padded.sum()), dtype=np.int64) - np.repeat(dst, padded)
    plane = (padded // s)[span]
    return np.repeat(dst, padded) + (local % plane) * s + local // plane


def world_rows(part: Part, spans, out: np.ndarray, dst) -> None:
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


def pool_of(parts: Sequence[Part], some_views: np.ndarray, rig: str | None):
    """The per-window camera pool: ``camera_rig``, else the rig of the (first) per-window view."""
    if rig is None:
        rig = "h36m"
        if len(some_views):
            gv = int(some_views[0])
            for p in parts:
                if p.view_base <= gv < p.view_base + len(p.offset):
                    rig = str(p.rig[gv - p.view_base])
    return rig_pool(rig)


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


def flip_rows(x: torch.Tensor, perm, channels: int, neg_x: bool) -> torch.Tensor:
    """Left/right flip of rows ``x (R, J*channels)``: joints permuted by ``perm``, x negated if
    ``neg_x``. One column gather (torch's runs on the intra-op threads and copies ~3x faster than
    ``np.take``, which was ~4x faster than per-joint slice copies)."""
    cols = torch.as_tensor((np.asarray(perm, np.int64)[:, None] * channels + np.arange(channels)).reshape(-1))
    out = torch.index_select(x, 1, cols)
    if neg_x:
        out[:, 0::channels].neg_()
    return out
