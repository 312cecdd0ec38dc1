"""How DataLoader workers hand batches to the main process: one reused shared-memory buffer a batch.

A tensor a worker yields travels as a shared-memory file descriptor, and each one costs a socket round
trip with an authentication handshake (``multiprocessing.resource_sharer``): ~0.35 ms a tensor, measured
here, 4 ms for a batch's 11 tensors against 0.5 ms for one. And fresh shared memory costs a page fault
a 4 KiB page on first write: ~8 ms of a worker's ~12 ms batch of 6.8 MB (N = 351, batch 512). So a
worker packs every tensor of a batch into one flat buffer (one descriptor), and keeps a ring of such
buffers, writing a batch into a slot again once the main process has released it:
``uplift.loader`` copies the batch out (one copy, or the pinned copy with ``pin_memory``) and then
marks the slot free in a flag array both sides share. A slot still held is never waited for and never
overwritten: that batch gets a fresh buffer.
"""

from __future__ import annotations

import math

import torch

PACKED_KEY = "_packed"  # uint8 (nbytes,): every tensor of the batch, in one shared buffer
LAYOUT_KEY = "_layout"  # ((name, dtype, shape, byte offset), ...) of the tensors in PACKED_KEY
SLOT_KEY = "_buffer_slot"  # the ring slot to release once copied (-1: a fresh buffer)
_ALIGN = 64

_installed: WorkerBuffers | None = None


def empty_shared(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor in shared memory (no copy into it, unlike ``share_memory_()``)."""
    numel = math.prod(shape)
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def packed_layout(layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> tuple[tuple, int]:
    """``(entries, nbytes)``: each tensor of ``layout`` (name -> (shape, dtype)) at a 64-byte aligned offset."""
    entries, off = [], 0
    for name, (shape, dtype) in layout.items():
        entries.append((name, dtype, tuple(shape), off))
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        off += -(-size // _ALIGN) * _ALIGN
    return tuple(entries), off


def unpack(flat: torch.Tensor, entries: tuple) -> dict[str, torch.Tensor]:
    """The tensors ``entries`` describes, as views of the uint8 buffer ``flat``."""
    storage = flat.untyped_storage()
    base = flat.storage_offset()
    out = {}
    for name, dtype, shape, off in entries:
        size = torch.empty((), dtype=dtype).element_size()
        out[name] = torch.empty(0, dtype=dtype, device=flat.device).set_(storage, (base + off) // size, shape)
    return out


class WorkerBuffers:
    """One worker's ring of ``ring`` packed batch buffers; ``flags[base + i]`` is 1 while slot i is free.

    ``flags`` is a shared byte array of ``num_workers * ring`` entries made by the loader; the worker
    clears a slot's flag when it fills the slot, the main process sets it again after copying the
    batch out of it. ``take`` gives the tensors to fill, ``seal`` the message to yield for them.
    """

    def __init__(self, flags, worker_id: int, ring: int):
        self.flags, self.ring, self.base = flags, ring, worker_id * ring
        self.slots: list[tuple[torch.Tensor, tuple] | None] = [None] * ring
        self.next = 0
        self.current: dict | None = None
        for i in range(ring):  # a new worker: nothing of its (new) buffers is held anywhere
            flags[self.base + i] = 1

    def take(self, layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, torch.Tensor]:
        """Tensors for one batch of ``layout`` (name -> (shape, dtype)), views of one shared buffer."""
        entries, nbytes = packed_layout(layout)
        i = self.next
        self.next = (i + 1) % self.ring
        if not self.flags[self.base + i]:  # the main process still holds this slot's batch
            flat, slot = empty_shared((nbytes,), torch.uint8), -1
        else:
            if self.slots[i] is None or self.slots[i][1] != entries:
                self.slots[i] = (empty_shared((nbytes,), torch.uint8), entries)
            flat, slot = self.slots[i][0], self.base + i
            self.flags[slot] = 0
        self.current = {PACKED_KEY: flat, LAYOUT_KEY: entries, SLOT_KEY: slot}
        return unpack(flat, entries)

    def seal(self, filled: dict[str, torch.Tensor]) -> dict:
        """What the worker yields for the batch just written into ``take``'s tensors: one buffer."""
        assert self.current is not None and set(filled) == {e[0] for e in self.current[LAYOUT_KEY]}
        message, self.current = self.current, None
        return message


def install(buffers: WorkerBuffers | None) -> None:
    """Make ``buffers`` this worker process's batch buffers (``uplift.loader``'s worker init)."""
    global _installed
    _installed = buffers


def installed() -> WorkerBuffers | None:
    """This process's batch buffers: None outside a worker started by ``uplift.loader.make_loader``."""
    return _installed
