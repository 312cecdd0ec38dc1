"""Content checksums of a corpus version: manifests and every array, independent of version ids."""

from __future__ import annotations

import hashlib

import numpy as np

from schemas.store import ARRAYS


def corpus_checksums(reader) -> dict[str, str]:
    """sha256 per manifest (as rows) and per array (dtype, shape and bytes, read chunk by chunk)."""
    sums = {}
    for name in ("sequences", "views", "rejects"):
        table = getattr(reader, name)
        sums[f"manifest:{name}"] = hashlib.sha256(repr(table.to_pylist()).encode()).hexdigest()
    for spec in ARRAYS:
        arr = reader.array(spec)
        h = hashlib.sha256(f"{arr.dtype}{arr.shape}".encode())
        step = max(1, arr.chunks[0])
        for a in range(0, arr.shape[0], step):
            h.update(np.ascontiguousarray(arr[a:a + step]).tobytes())
        sums[f"array:{spec.path}"] = h.hexdigest()
    return sums
