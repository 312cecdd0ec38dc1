"""A DataLoader over a ``WindowStream``: spawned workers, deterministic order, clean shutdown."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch

from uplift import worker_buffers
from uplift.stream import WindowStream


def _worker_init(flags, ring: int, worker_id: int) -> None:
    # One intra-op thread per worker: the workers gather and project with numpy/torch, and k workers
    # with a thread per core each would fight the training process for the cores.
    torch.set_num_threads(1)
    if flags is not None:
        worker_buffers.install(worker_buffers.WorkerBuffers(flags, worker_id, ring))


class WindowLoader(torch.utils.data.DataLoader):
    """A DataLoader whose workers write batches into reused shared-memory buffers
    (``uplift.worker_buffers``). Each batch is copied out of its buffer (pinned, with ``pin_memory``)
    before the caller sees it, and the buffer is then released to its worker."""

    buffer_ring = 0  # batch buffers per worker (0: no workers)
    buffer_flags = None  # the flag array of the newest workers' rings

    def _get_iterator(self):
        # Called whenever a new set of workers starts: each set gets its own flags, so two live
        # iterators of one loader never release each other's slots.
        if self.num_workers and self.buffer_ring:
            self.buffer_flags = self.multiprocessing_context.RawArray("b", self.num_workers * self.buffer_ring)
            self.worker_init_fn = functools.partial(_worker_init, self.buffer_flags, self.buffer_ring)
        it = super()._get_iterator()
        it.buffer_flags = self.buffer_flags
        return it

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        it = super().__iter__()
        return _released(it, getattr(it, "buffer_flags", None))


def _released(messages, flags) -> Iterator[dict[str, torch.Tensor]]:
    for msg in messages:
        if worker_buffers.PACKED_KEY not in msg:
            yield msg
            continue
        flat = msg[worker_buffers.PACKED_KEY]
        if not flat.is_pinned():  # a pinned buffer (pin_memory with an accelerator) is a copy already
            flat = flat.clone()
        slot = msg[worker_buffers.SLOT_KEY]
        if slot >= 0:
            flags[slot] = 1  # after the copy: the worker may now write the next batch there
        yield worker_buffers.unpack(flat, msg[worker_buffers.LAYOUT_KEY])


def make_loader(stream: WindowStream, num_workers: int = 0, pin_memory: bool = False, persistent: bool = False,
                prefetch_factor: int | None = None) -> WindowLoader:
    """A DataLoader over whole batches (the stream batches itself), in deterministic worker order.

    Workers are spawned, not forked: a forked child inherits Icechunk's async runtime without its
    threads and hangs on the first read. The stream pickles its corpora as ``PATH@SNAPSHOT``.
    ``persistent``: workers live across epochs (no re-spawn per epoch); ``set_epoch`` reaches them
    through shared memory, read at the start of each epoch's iteration. Call ``close_loader`` when
    done so that the workers exit cleanly instead of being killed at interpreter exit.
    Each worker reuses a ring of ``prefetch_factor + 2`` batch buffers (``uplift.worker_buffers``).
    Without workers the stream runs in this process and is opened (``WindowStream.open``: the next
    group may load in a thread) until ``close_loader``.
    """
    kw: dict = {}
    if num_workers:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        prefetch = prefetch_factor or 2
        kw = dict(multiprocessing_context=ctx, persistent_workers=persistent, prefetch_factor=prefetch,
                  worker_init_fn=functools.partial(_worker_init, None, 0))  # the rings come with each iterator
        if persistent:
            stream.share_position(ctx)
    # Own generator: a loader iterator otherwise draws its base seed from the global torch RNG,
    # which would shift dropout / drop-path draws and break exact resume.
    loader = WindowLoader(stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                          generator=torch.Generator().manual_seed(stream.config.seed), **kw)
    # ring: the batches a worker has queued (prefetch_factor), the one being copied out, and one spare
    loader.buffer_ring = kw["prefetch_factor"] + 2 if num_workers else 0
    if not num_workers:
        stream.open()
    return loader


def close_loader(loader: torch.utils.data.DataLoader) -> None:
    """Shut a (persistent) loader's workers, or its in-process stream's prefetch thread, down now."""
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    loader._iterator = None
    if isinstance(loader.dataset, WindowStream):
        loader.dataset.close()
