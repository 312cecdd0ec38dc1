"""The window-read benchmark runs at corpus scale (a ~1M-frame view array in an Icechunk store)."""

from __future__ import annotations

import json
import time

from benchmarks.corpus_window_reads import block_windows_per_s, make_view_array, window_reads_per_s


def test_window_read_throughput(tmp_path):
    """Measure (print, not assert) random 351-frame window reads from a ~1M-frame view array."""
    n = 1_000_000
    t0 = time.perf_counter()
    make_view_array(tmp_path / "bench", n)
    write_s = time.perf_counter() - t0
    one = window_reads_per_s(tmp_path / "bench", 500)
    block = block_windows_per_s(tmp_path / "bench", 20)
    print(json.dumps({"frames": n, "write_s": round(write_s, 2), "one_window_per_call_per_s": round(one),
                      "block_read_windows_per_s": round(block)}))
    assert one > 0 and block > 0
