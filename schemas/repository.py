"""One corpus repository: opening it, and the lock that serialises its commits.

A corpus is one Icechunk repository (a local folder or ``s3://bucket/prefix``, ``schemas.storage``).
Everything that opens one (the reader, the writer, versions, validation) goes through
:func:`open_repository`. Its versions (names, tags, resolving, listing) are ``schemas.versions``; its
Parquet manifests are read by ``schemas.manifests.read_manifest``.

Concurrency policy: Icechunk's local-filesystem storage is not safe for concurrent commits, so every
commit, tag and repository creation runs under a file lock at ``<PATH>.lock``. Object storage has no
lock: Icechunk's commit is a conditional write of the branch ref, so of two racing commits one fails.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import filelock
import icechunk

from schemas.errors import CorpusError, one_line
from schemas.storage import is_url, repository_exists, storage_for

LOCK_TIMEOUT_S = 600.0

# Icechunk warns on every open that local storage is unsafe for concurrent commits; commits are
# serialised with a file lock (module docstring), so keep that one warning quiet unless the user
# configured Icechunk logging explicitly.
if "ICECHUNK_LOG" not in os.environ:
    icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")


def open_repository(path: str | os.PathLike, *, create: bool = False) -> icechunk.Repository:
    """Open (or, with ``create``, open-or-create under the lock) the Icechunk repository at ``path``.

    ``path``: a local folder or ``s3://bucket/prefix`` (``schemas.storage``). CorpusError if there is
    none or it cannot be reached.
    """
    try:
        storage = storage_for(path)
        if create:
            with repository_lock(path):
                return icechunk.Repository.open_or_create(storage)
        if not repository_exists(path):
            raise CorpusError(f"{path}: no corpus repository here")
        return icechunk.Repository.open(storage)
    except (icechunk.IcechunkError, ValueError) as e:  # e.g. unreachable endpoint, bad credentials
        raise CorpusError(f"{path}: cannot open corpus repository: {one_line(e, 300)}") from e


def lock_path(path: str | os.PathLike) -> Path:
    """The file lock that serialises commits to the repository at ``path``."""
    p = Path(path).resolve()
    return p.with_name(p.name + ".lock")


def commit_lock(path: str | os.PathLike, timeout: float = LOCK_TIMEOUT_S) -> filelock.FileLock:
    """A (re-entrant per instance) inter-process lock for commits, tags and creation at ``path``."""
    lp = lock_path(path)
    lp.parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(lp), timeout=timeout)


@contextmanager
def repository_lock(path):
    """Hold the commit lock of the repository at ``path``; CorpusError if it cannot be taken in time.

    Object storage has no lock (Icechunk's conditional ref updates detect conflicting commits).
    """
    if is_url(path):
        yield
        return
    lock = commit_lock(path)
    try:
        lock.acquire()
    except filelock.Timeout as e:
        raise CorpusError(f"{path}: could not take the commit lock {lock_path(path)} within "
                          f"{LOCK_TIMEOUT_S:.0f} s") from e
    try:
        yield
    finally:
        lock.release()
