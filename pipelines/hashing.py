"""Content hashes, one function per job: the bytes of files (source identity), JSON-able settings
(config identity) and a corpus version's data (content identity, independent of version ids).

Every sha256 the project records comes from here or from ``schemas.files`` (whose bounded reads
return the hash of the very bytes a parser gets); nothing else calls ``hashlib`` on files.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from schemas.errors import InputError
from schemas.files import hash_bounded
from schemas.store import ARRAYS


def sha256_file(*paths: str | os.PathLike, error: type[InputError] = InputError, kind: str | int = "any",
                block: int = 1 << 20, root: str | os.PathLike | None = None) -> str:
    """Hex SHA-256 of the bytes of one regular file (or of several, concatenated), read in 1 MiB blocks.

    Anything but a regular file (a FIFO or a symlink to ``/dev/zero`` would block or never end), and a
    file over ``kind``'s byte limit (``schemas.files.FILE_LIMITS``; a sparse 4 TiB file holds nothing on
    disk but would take hours to hash), raises ``error`` naming it, without being read. A file that is
    also parsed is hashed from the bytes parsed instead (``schemas.files.read_bounded``).
    """
    return hash_bounded(*paths, kind=kind, error=error, block=block)


def json_hash(obj, length: int = 16) -> str:
    """Short hex SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def corpus_checksums(reader) -> dict[str, str]:
    """sha256 per manifest (as rows) and per array (dtype, shape and bytes, read chunk by chunk).

    Public on purpose: two versions (a rebuild, a version after ``gc``, a build on a cluster) hold
    the same data exactly when their checksums are equal; the tests and the reliability report use it.
    ``reader``: a :class:`schemas.reader.CorpusReader`.
    """
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
