"""A DataLoader over a ``WindowStream``: spawned workers, deterministic order, clean shutdown."""

from __future__ import annotations

import torch

from uplift.stream import WindowStream


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
