"""Corpus versions: list, tag, resolve and diff the Icechunk snapshots of one corpus repository.

A *version* is a snapshot committed by ``CorpusWriter.commit`` (its commit metadata carries the
corpus totals, so listing never opens the data). Icechunk's own "Repository initialized" snapshot
is not a corpus version and is left out of ``list_versions``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone

import icechunk

from pipelines.corpus import (COMMIT_META_KEY, DEFAULT_BRANCH, CorpusReader, repository_lock, open_repository,
                              resolve_snapshot)
from schemas.errors import CorpusError


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
    repo = open_repository(path)
    snap = resolve_snapshot(repo, version, path)
    if not name or "@" in name or "/" in name:
        raise CorpusError(f"{path}: invalid tag name {name!r} (empty, or holds '@' or '/')")
    with repository_lock(path):
        if name in repo.list_tags():
            raise CorpusError(f"{path}: tag {name!r} already exists (points at {repo.lookup_tag(name)}); "
                              f"tags are immutable")
        if name in repo.list_branches():
            raise CorpusError(f"{path}: {name!r} is a branch name")
        try:
            repo.create_tag(name, snap)
        except icechunk.IcechunkError as e:  # e.g. a deleted tag's name cannot be reused
            raise CorpusError(f"{path}: cannot create tag {name!r}: {' '.join(str(e).split())[:200]}") from e


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
