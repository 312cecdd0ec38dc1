"""Batch buffers that DataLoader workers reuse instead of fresh shared memory for every batch.

A batch a worker yields reaches the main process as shared memory (a handle, not a copy of 6.8 MB at
N = 351, batch 512). Fresh shared memory costs a page fault for every 4 KiB page on first write; on
the 2-core test machine that was ~8 ms of a worker's ~12 ms per batch. So each worker keeps a ring of
batch buffers in shared memory and writes a batch into a slot again once the main process has
released it: ``uplift.loader`` copies the batch out (or pins it) and then marks the slot free in a
flag array both sides share. A slot still held is never waited for and never overwritten: that
batch gets a fresh buffer, as without the ring.
"""

from __future__ import annotations

import math

import torch

SLOT_KEY = "_buffer_slot"  # batch entry naming the ring slot (int64 scalar, -1: a fresh buffer); the loader pops it

_installed: WorkerBuffers | None = None


def empty_shared(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor in shared memory (no copy into it, unlike ``share_memory_()``)."""
    numel = math.prod(shape)
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


class WorkerBuffers:
    """One worker's ring of ``ring`` batch buffers; ``flags[base + i]`` is 1 while slot i is free.

    ``flags`` is a shared byte array of ``num_workers * ring`` entries made by the loader; the worker
    clears a slot's flag when it fills the slot, the main process sets it again after copying the
    batch out of it.
    """

    def __init__(self, flags, worker_id: int, ring: int):
        self.flags, self.ring, self.base = flags, ring, worker_id * ring
        self.slots: list[dict[str, torch.Tensor] | None] = [None] * ring
        self.next = 0
        for i in range(ring):  # a new worker: nothing of its (new) buffers is held anywhere
            flags[self.base + i] = 1

    def take(self, layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, torch.Tensor]:
        """Tensors for one batch of ``layout`` (name -> (shape, dtype)) plus ``SLOT_KEY``."""
        i = self.next
        self.next = (i + 1) % self.ring
        if not self.flags[self.base + i]:  # the main process still holds this slot's batch
            out = {k: empty_shared(s, d) for k, (s, d) in layout.items()}
            out[SLOT_KEY] = torch.tensor(-1)
            return out
        slot = self.slots[i]
        if slot is None or any(slot[k].shape != s or slot[k].dtype != d for k, (s, d) in layout.items()):
            slot = self.slots[i] = {k: empty_shared(s, d) for k, (s, d) in layout.items()}
        self.flags[self.base + i] = 0
        return {**slot, SLOT_KEY: torch.tensor(self.base + i)}


def install(buffers: WorkerBuffers | None) -> None:
    """Make ``buffers`` this worker process's batch buffers (``uplift.loader``'s worker init)."""
    global _installed
    _installed = buffers


def installed() -> WorkerBuffers | None:
    """This process's batch buffers: None outside a worker started by ``uplift.loader.make_loader``."""
    return _installed
