"""Reclaiming space: what killed or aborted builds left in a corpus repository, and (opt-in) old
untagged versions. Every version a tag or a branch reaches is kept.

Versions themselves (names, tags, listing) are ``schemas.versions``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import icechunk

from schemas.errors import CorpusError
from schemas.repository import open_repository, repository_lock
from schemas.storage import is_url
from schemas.versions import build_branch_started


@dataclass
class GcReport:
    bytes_before: int | None  # bytes on disk under the repository before (None: object storage)
    bytes_after: int | None
    bytes_deleted: int  # as Icechunk counted them
    chunks_deleted: int
    manifests_deleted: int
    snapshots_deleted: int
    transaction_logs_deleted: int
    expired_snapshots: int  # dropped from branch history by the (opt-in) expiry
    dry_run: bool
    half_written_deleted: int = 0  # staging files of object writes a kill interrupted (local stores)
    half_written_bytes: int = 0


def store_bytes(path: str | os.PathLike) -> int | None:
    """Bytes of every file under the repository directory ``path`` (what ``du`` would count, roughly);
    None for object storage (listing a bucket to size it is the store's own job)."""
    if is_url(path):
        return None
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# A local repository's objects are written to "NAME#N" and renamed into place (the object store's
# staging); a process killed mid-write leaves that file behind, and no Icechunk listing names it.
_STAGING_SUFFIX = re.compile(r"#\d+$")


def half_written_files(path: str | os.PathLike, older_than: datetime) -> list[Path]:
    """Staging files of interrupted object writes under the local repository ``path`` last modified
    before ``older_than`` (a running build's write in flight is younger); none for object storage."""
    if is_url(path):
        return []
    limit = older_than.timestamp()
    return [p for p in Path(path).rglob("*#*") if _STAGING_SUFFIX.search(p.name) and p.is_file()
            and p.stat().st_mtime < limit]


def _refs(repo: icechunk.Repository) -> dict[str, str]:
    return {**{f"tag:{t}": repo.lookup_tag(t) for t in repo.list_tags()},
            **{f"branch:{b}": repo.lookup_branch(b) for b in repo.list_branches()}}


def drop_stale_build_branches(repo: icechunk.Repository, grace_s: float, dry_run: bool = False) -> list[str]:
    """Delete the branches of builds that started more than ``grace_s`` seconds ago (a killed build's;
    a running build deletes its own when it ends): what only they reach becomes garbage. Call with
    the repository lock held."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=max(0.0, grace_s))
    stale = [b for b in repo.list_branches() if (build_branch_started(b) or cutoff) < cutoff]
    for b in stale if not dry_run else ():
        repo.delete_branch(b)
    return stale


def collect_garbage(path: str | os.PathLike, *, grace_s: float = 3600.0, expire_older_than: datetime | None = None,
                    dry_run: bool = False) -> GcReport:
    """Delete what no tag or branch reaches: chunks, manifests and snapshots left by killed or aborted
    builds (Icechunk's ``garbage_collect``, then the staging files of writes a kill interrupted:
    ``half_written_files``), only objects older than ``grace_s`` seconds.

    A build writes its chunks before it commits, so they are unreachable until then: the grace period
    keeps a running build's data (the commit lock is held, so no commit lands meanwhile). The branch
    of a build that started before the grace period (``schemas.versions.BUILD_BRANCH_PREFIX``: a
    killed build's) is deleted first. Every version
    a tag or a branch's history reaches is kept. Only with ``expire_older_than`` does Icechunk's snapshot
    expiry first drop *untagged* versions older than that from branch histories (tags and branch tips
    are never expired or moved); their data then becomes garbage too.
    """
    repo = open_repository(path)
    with repository_lock(path):
        before = store_bytes(path)
        drop_stale_build_branches(repo, grace_s, dry_run)
        refs = _refs(repo)
        expired: set = set()
        if expire_older_than is not None and not dry_run:
            expired = repo.expire_snapshots(expire_older_than, delete_expired_branches=False,
                                            delete_expired_tags=False)
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=max(0.0, grace_s))
        summary = repo.garbage_collect(cutoff, dry_run=dry_run)
        half_written = half_written_files(path, cutoff)
        half_bytes = sum(f.stat().st_size for f in half_written)
        for f in half_written if not dry_run else ():
            f.unlink()
        if _refs(repo) != refs:  # never expected; say so loudly rather than hide it
            raise CorpusError(f"{path}: tags or branches changed during garbage collection: {refs} -> {_refs(repo)}")
        return GcReport(bytes_before=before, bytes_after=store_bytes(path), bytes_deleted=int(summary.bytes_deleted),
                        chunks_deleted=int(summary.chunks_deleted), manifests_deleted=int(summary.manifests_deleted),
                        snapshots_deleted=int(summary.snapshots_deleted),
                        transaction_logs_deleted=int(summary.transaction_logs_deleted),
                        expired_snapshots=len(expired), dry_run=dry_run,
                        half_written_deleted=len(half_written), half_written_bytes=half_bytes)
