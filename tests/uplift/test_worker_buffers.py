"""Packed, reused worker batch buffers, in one process (the worker and the main side by hand)."""

from __future__ import annotations

import multiprocessing as mp

import torch

from uplift.batches import batch_layout
from uplift.loader import _released
from uplift.worker_buffers import LAYOUT_KEY, PACKED_KEY, SLOT_KEY, WorkerBuffers, unpack


def _fill(views, seed):
    g = torch.Generator().manual_seed(seed)
    for v in views.values():
        v.copy_(torch.randint(0, 2, v.shape, generator=g).to(v.dtype) if v.dtype == torch.bool
                else torch.randint(-99, 99, v.shape, generator=g).to(v.dtype))
    return {k: v.clone() for k, v in views.items()}


def test_one_buffer_a_batch_reused_after_release():
    flags = mp.get_context("spawn").RawArray("b", 2 * 3)
    buf = WorkerBuffers(flags, worker_id=1, ring=3)  # slots 3, 4, 5 of the flag array
    layout = batch_layout(4, 5, 17)
    msgs, want = [], []
    for i in range(3):
        views = buf.take(layout)
        want.append(_fill(views, i))
        msgs.append(buf.seal(views))
    assert [m[SLOT_KEY] for m in msgs] == [3, 4, 5] and list(flags) == [0, 0, 0, 0, 0, 0]  # worker 0 never started
    # every tensor of a batch is a view of one buffer: one descriptor to send
    assert all(set(m) == {PACKED_KEY, LAYOUT_KEY, SLOT_KEY} and m[PACKED_KEY].dtype == torch.uint8 for m in msgs)
    got = list(_released(iter(msgs[:1]), flags))  # the main process copies batch 0 out, releases slot 3
    assert list(flags) == [0, 0, 0, 1, 0, 0]
    assert list(got[0]) == list(layout) and all(torch.equal(got[0][k], want[0][k]) for k in layout)
    again = buf.take(layout)  # slot 3 again, same memory: the copy the caller holds is untouched
    assert buf.current[SLOT_KEY] == 3 and buf.current[PACKED_KEY].data_ptr() == msgs[0][PACKED_KEY].data_ptr()
    _fill(again, 99)
    assert all(torch.equal(got[0][k], want[0][k]) for k in layout)
    buf.seal(again)
    held = buf.take(layout)  # slot 4 was never released: a fresh buffer, slot 4 untouched
    assert buf.current[SLOT_KEY] == -1 and buf.current[PACKED_KEY].data_ptr() != msgs[1][PACKED_KEY].data_ptr()
    _fill(held, 7)
    assert all(torch.equal(unpack(msgs[1][PACKED_KEY], msgs[1][LAYOUT_KEY])[k], want[1][k]) for k in layout)


def test_unpack_takes_the_layout_as_pin_memory_returns_it():
    """pin_memory turns tuples into lists on its way to the main process."""
    flags = mp.get_context("spawn").RawArray("b", 2)
    buf = WorkerBuffers(flags, worker_id=0, ring=2)
    layout = batch_layout(3, 7, 17)
    want = _fill(buf.take(layout), 1)
    msg = buf.seal(want)
    as_lists = [list(e) for e in msg[LAYOUT_KEY]]
    got = unpack(msg[PACKED_KEY], as_lists)
    assert all(torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in layout)
    assert all(v.data_ptr() % 64 == 0 for v in got.values())  # aligned views
