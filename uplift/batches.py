"""Cutting one batch out of resident groups: gathers of whole rows, no per-window Python.

A batch's samples are consecutive in the shard's shuffled order, so they are one or two slices of
resident groups (``uplift.blocks.Group``). A window's frames are consecutive positions of the group
arrays (lattice planes), so most windows are one contiguous copy; the flipped copies gather the same
positions of the group's flipped arrays, and per-window-camera samples
gather world joints and project them (``uplift.views.project_windows``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from uplift.blocks import Group
from uplift.keyframes import keyframe_mask
from uplift.views import project_windows
from uplift.windows import StreamConfig, window_indices
from uplift.worker_buffers import empty_shared


def batch_layout(B: int, N: int, J: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor of a batch, in the order ``WindowStream`` yields them."""
    return {"keypoints_2d": ((B, N, J, 2), torch.float32), "joints_3d": ((B, N, J, 3), torch.float32),
            "in_view": ((B, N, J), torch.bool), "valid": ((B, N), torch.bool), "keyframe": ((B, N), torch.bool),
            "s_in": ((B,), torch.int64), "view": ((B,), torch.int64), "frame": ((B,), torch.int64),
            "flipped": ((B,), torch.bool), "camera": ((B,), torch.int64)}


def new_batch(layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, torch.Tensor]:
    """Uninitialised tensors of ``layout``; in a DataLoader worker, in shared memory (sending the batch
    to the main process then passes a handle instead of copying it into a new segment)."""
    in_worker = torch.utils.data.get_worker_info() is not None
    return {k: empty_shared(s, d) if in_worker else torch.empty(s, dtype=d) for k, (s, d) in layout.items()}


def assemble(pieces: Sequence[tuple[Group, int, int]], n: int, cfg: StreamConfig, skeleton,
             alloc: Callable[[dict], dict[str, torch.Tensor]] = new_batch) -> dict[str, torch.Tensor]:
    """One batch from ``n`` samples: ``pieces`` = ``(group, a, b)``, samples ``a:b`` of a resident group
    in order. Returns the dict of tensors ``WindowStream`` yields (``B = 2n`` with in-batch flips),
    written into ``alloc(batch_layout(...))`` (every element is written: a reused buffer is fine)."""
    J, N = skeleton.num_joints, cfg.n_out
    B = 2 * n if cfg.in_batch else n
    out = alloc(batch_layout(B, N, J))
    kp, j3, iv = out["keypoints_2d"], out["joints_3d"], out["in_view"]
    outs = [kp.view(B, N, -1), j3.view(B, N, -1), iv.view(B, N, -1)]
    valid, key, s_in, view, frame, flipped, camera = (
        out[k].numpy() for k in ("valid", "keyframe", "s_in", "view", "frame", "flipped", "camera"))
    flipped[:] = False
    camera[:] = -1
    perm = skeleton.flip_permutation
    root = skeleton.root
    o = 0
    for g, a, b in pieces:
        k = b - a
        t = g.t[a:b]
        idx, ok = window_indices(t, g.n_frames[a:b], N, cfg.s_out)
        pos = g.centre[a:b, None] + (idx - t[:, None]) // cfg.s_out  # (k, N) positions in the group arrays
        plan = _plan(pos, ok, N, len(g.kp2d)) if g.kp2d is not None else None
        fl = g.flipped[a:b]
        if g.kp2d is not None:
            for src, dst in zip((g.kp2d, g.j3d, g.in_view), outs):
                _gather(src, plan, dst[o:o + k])
            if cfg.in_batch:  # the flipped copies: the same windows of the group's flipped arrays
                for src, dst in zip((g.kp2d_f, g.j3d_f, g.in_view_f), outs):
                    _gather(src, plan, dst[n + o:n + o + k])
            if fl.any():  # separate flipped copies of stored views: rows of the flipped arrays
                fi = np.flatnonzero(fl)
                rf = torch.from_numpy(pos[fi].reshape(-1))
                sel = torch.from_numpy(fi + o)
                for src, dst in zip((g.kp2d_f, g.j3d_f, g.in_view_f), (kp, j3, iv)):
                    dst[sel] = torch.index_select(src, 0, rf).view((len(fi),) + dst.shape[1:])
        if g.camera is not None:
            pw = g.camera[a:b] >= 0
            if pw.any():
                pi_ = np.flatnonzero(pw)
                rr = torch.from_numpy(pos[pi_].reshape(-1))
                world = torch.index_select(g.world, 0, rr).view(len(pi_), N, J, 3)
                intr, extr, centre = g.pool
                cam = torch.from_numpy(g.camera[a + pi_])
                mirror = torch.from_numpy(fl[pi_])
                how = {"centre_path": cfg.placement == "centred", "mirror_x": 0.0 if cfg.mirror == "x0" else None}
                if len(pi_) == k:  # all per-window: project straight into the batch
                    project_windows(world, intr[cam], extr[cam], mirror, centre, perm, root,
                                    out=(kp[o:o + k], j3[o:o + k], iv[o:o + k]), **how)
                else:
                    sel = torch.from_numpy(pi_ + o)
                    kp[sel], j3[sel], iv[sel] = project_windows(world, intr[cam], extr[cam], mirror, centre, perm, root,
                                                                **how)
                if cfg.in_batch:  # the flipped copy: mirrored in world space, same camera
                    h = slice(n + o, n + o + k)
                    kpf, j3f, ivf = project_windows(world, intr[cam], extr[cam], torch.ones(len(pi_), dtype=torch.bool),
                                                    centre, perm, root,
                                                    out=(kp[h], j3[h], iv[h]) if len(pi_) == k else None, **how)
        valid[o:o + k], s_in[o:o + k] = ok, g.s_in[a:b]
        if g.shift is None:  # evaluation: key frames aligned to global frame indices
            key[o:o + k] = keyframe_mask(N, cfg.s_out, g.s_in[a:b], 0, centre=g.t[a:b])
        else:
            key[o:o + k] = keyframe_mask(N, cfg.s_out, g.s_in[a:b], g.shift[a:b])
        view[o:o + k], frame[o:o + k], flipped[o:o + k] = g.view[a:b], t, fl
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
    return out


def _plan(pos: np.ndarray, ok: np.ndarray, n_out: int, n_rows: int):
    """How ``_gather`` copies windows with positions ``pos (k, N)`` from ``n_rows`` group rows.

    A window's in-sequence frames are the consecutive positions ``start + i`` (``start = pos[:, mid]
    - mid``); its padded frames repeat an edge frame. Returns ``(start (k,), fix (f,), fix_pos (f,))``:
    copy ``N`` rows from every start, then put ``pos`` back at the flat ``(k * N)`` entries ``fix``
    (padded frames, and whole windows whose start falls outside the group arrays)."""
    mid = n_out // 2
    start = pos[:, mid] - mid
    outside = (start < 0) | (start > n_rows - n_out)
    fix = np.flatnonzero(~ok | outside[:, None])
    return (torch.from_numpy(np.clip(start, 0, max(n_rows - n_out, 0))), torch.from_numpy(fix),
            torch.from_numpy(pos.reshape(-1)[fix]))


def _gather(src: torch.Tensor, plan, out: torch.Tensor) -> None:
    """``out[i] = src[pos[i]]`` for ``src (R, W)``, ``out (k, N, W)``: a window is the ``N * W``
    contiguous values from its start, one row of an overlapping ``(R - N + 1, N * W)`` view (one row
    copy instead of N), then the padded frames row by row."""
    start, fix, fix_pos = plan
    (R, W), (k, N) = src.shape, out.shape[:2]
    if R >= N:  # else every window is fixed row by row (a group smaller than a window)
        torch.index_select(src.as_strided((R - N + 1, N * W), (W, 1)), 0, start, out=out.view(k, N * W))
    if len(fix):
        out.view(k * N, W).index_copy_(0, fix, torch.index_select(src, 0, fix_pos))
