"""Corpus versions: list, tag, resolve and diff the Icechunk snapshots of one corpus repository.

A *version* is a snapshot committed by ``CorpusWriter.commit`` (its commit metadata carries the
corpus totals, so listing never opens the data). Icechunk's own "Repository initialized" snapshot
is not a corpus version and is left out of ``list_versions``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import icechunk

from schemas.reader import CorpusReader
from schemas.repository import (COMMIT_META_KEY, DEFAULT_BRANCH, build_branch_started, check_tag_name, create_tag,
                                open_repository, repository_lock, resolve_snapshot)
from schemas.errors import CorpusError
from schemas.storage import is_url


@dataclass
class VersionInfo:
    id: str
    tags: list[str]
    time: datetime  # UTC
    message: str
    n_sequences: int
    n_frames: int  # total sequence frames
    n_views: int
    store_bytes: int | None  # Icechunk 1.1 has no cheap per-snapshot size: None


@dataclass
class VersionDiff:
    added: list[str]  # keys in v2 only
    removed: list[str]  # keys in v1 only
    changed: list[str]  # keys in both whose source_sha256, config_hash or n_frames differ
    unchanged: int


def _tags_by_snapshot(repo: icechunk.Repository) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in sorted(repo.list_tags()):
        out.setdefault(repo.lookup_tag(t), []).append(t)
    return out


def list_versions(path: str | os.PathLike, branch: str = DEFAULT_BRANCH) -> list[VersionInfo]:
    """Corpus versions on ``branch``, newest first."""
    repo = open_repository(path)
    if branch not in repo.list_branches():
        raise CorpusError(f"{path}: no branch {branch!r}")
    tags = _tags_by_snapshot(repo)
    out = []
    for snap in repo.ancestry(branch=branch):
        meta = snap.metadata or {}
        if COMMIT_META_KEY not in meta:
            continue
        t = snap.written_at
        t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
        out.append(VersionInfo(id=snap.id, tags=tags.get(snap.id, []), time=t, message=snap.message,
                               n_sequences=int(meta.get("n_sequences", 0)), n_frames=int(meta.get("n_frames", 0)),
                               n_views=int(meta.get("n_views", 0)), store_bytes=meta.get("store_bytes")))
    return out


def resolve_version(path: str | os.PathLike, version: str | None) -> str:
    """``version`` (tag | branch | snapshot id; None = tip of main) -> snapshot id; CorpusError if unknown."""
    return resolve_snapshot(open_repository(path), version, path)


def tag_version(path: str | os.PathLike, version: str | None, name: str) -> None:
    """Tag ``version`` as ``name``. Tags are immutable: an existing name raises CorpusError."""
    check_tag_name(path, name)
    repo = open_repository(path)
    snap = resolve_snapshot(repo, version, path)
    with repository_lock(path):
        create_tag(repo, path, name, snap)


def tag_if_new(path: str | os.PathLike, version: str, name: str) -> None:
    """Tag ``version`` as ``name`` unless that tag already names it (an up-to-date rebuild with the
    same tag); a tag naming another version raises CorpusError (tags are immutable)."""
    try:
        if resolve_version(path, name) == version:
            return
    except CorpusError:
        pass
    tag_version(path, version, name)


def diff_versions(path: str | os.PathLike, v1: str | None, v2: str | None) -> VersionDiff:
    """Sequence-level difference from ``v1`` to ``v2`` (by key)."""
    a = CorpusReader.open(path, v1).sequences
    b = CorpusReader.open(path, v2).sequences
    cols = ("source_sha256", "config_hash", "n_frames")

    def rows(t):
        return {r["key"]: tuple(r[c] for c in cols) for r in t.select(["key", *cols]).to_pylist()}

    ra, rb = rows(a), rows(b)
    added = sorted(rb.keys() - ra.keys())
    removed = sorted(ra.keys() - rb.keys())
    common = ra.keys() & rb.keys()
    changed = sorted(k for k in common if ra[k] != rb[k])
    return VersionDiff(added=added, removed=removed, changed=changed, unchanged=len(common) - len(changed))


# --------------------------------------------------------------------------------------------------
# Garbage collection


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


def store_bytes(path: str | os.PathLike) -> int | None:
    """Bytes of every file under the repository directory ``path`` (what ``du`` would count, roughly);
    None for object storage (listing a bucket to size it is the store's own job)."""
    if is_url(path):
        return None
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


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
    builds (Icechunk's ``garbage_collect``), only objects older than ``grace_s`` seconds.

    A build writes its chunks before it commits, so they are unreachable until then: the grace period
    keeps a running build's data (the commit lock is held, so no commit lands meanwhile). The branch
    of a build that started before the grace period (``schemas.repository.BUILD_BRANCH_PREFIX``: a
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
        if _refs(repo) != refs:  # never expected; say so loudly rather than hide it
            raise CorpusError(f"{path}: tags or branches changed during garbage collection: {refs} -> {_refs(repo)}")
        return GcReport(bytes_before=before, bytes_after=store_bytes(path), bytes_deleted=int(summary.bytes_deleted),
                        chunks_deleted=int(summary.chunks_deleted), manifests_deleted=int(summary.manifests_deleted),
                        snapshots_deleted=int(summary.snapshots_deleted),
                        transaction_logs_deleted=int(summary.transaction_logs_deleted),
                        expired_snapshots=len(expired), dry_run=dry_run)
