"""Content hashes: of files (source identity) and of JSON-able settings (config identity)."""

from __future__ import annotations

import hashlib
import json
import os


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a regular file's bytes, read in 1 MiB blocks.

    Raises :class:`~schemas.errors.InputError` for anything but a regular file (a FIFO or a symlink
    to ``/dev/zero`` would block or never end), without opening it.
    """
    from pipelines.safe_files import sha256_regular

    return sha256_regular(path, block=block)


def json_hash(obj, length: int = 16) -> str:
    """Short hex SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]
