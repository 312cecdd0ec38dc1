"""Corpus versions, their one home: names, resolving, tags, listing and differences.

A *version* is a snapshot committed by ``CorpusWriter.commit``: its commit metadata carries the corpus
totals under ``COMMIT_META_KEY``, so listing never opens the data. Icechunk's own "Repository
initialized" snapshot and a build's layout snapshot are not versions.

* Names: every ``PATH@VERSION`` string goes through ``split_path_at_version``, every tag name through
  ``check_tag_name``; a cluster build's branch is named by ``build_branch_name``.
* Resolving: ``resolve_snapshot`` / ``resolve_version`` (tag | branch | snapshot id -> snapshot id),
  ``open_version`` (a read-only session of one), ``pin_version`` (``PATH@SNAPSHOT``: what a run reads),
  ``tag_exists``.
* Tags: ``create_tag`` (the one way a tag is made, under the commit lock), ``tag_version``,
  ``tag_if_new``. Tags are immutable.
* Listing and differences: ``list_versions``, ``diff_versions``.

Reclaiming what killed builds left is ``pipelines.gc``; opening a repository and its commit lock are
``schemas.repository``.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import icechunk
import zarr

from schemas.errors import CorpusError, one_line
from schemas.repository import open_repository, repository_lock
from schemas.storage import is_url, parse_location, repository_exists

DEFAULT_BRANCH = "main"
# Commit metadata key that marks an Icechunk snapshot as a corpus version (and carries its totals).
COMMIT_META_KEY = "mocap_corpus"
# A build on a cluster lays out its arrays in a snapshot on a branch of its own, forks its workers'
# sessions from there, and moves ``main`` to its one commit at the end (``pipelines.forked_writer``).
# Such a branch lives while its build runs; one left by a killed build is removed by ``gc``.
BUILD_BRANCH_PREFIX = "build-in-progress."
LAYOUT_META_KEY = "mocap_corpus_layout"  # commit metadata of a build's layout snapshot (not a version)

MAX_TAG_LENGTH = 100
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_SNAPSHOT_ID = re.compile(r"[0-9A-Z]{20}")  # Icechunk's ids: 20 characters of Crockford base32


# --------------------------------------------------------------------------------------------------
# Names


def split_path_at_version(spec: str | os.PathLike) -> tuple[str, str | None]:
    """``"PATH@VERSION"`` -> ``(PATH, VERSION)``; ``"PATH"`` -> ``(PATH, None)`` (the tip of main).

    The last ``@`` splits, and only when what follows it is a version name (non-empty, no ``/``): a
    local path that exists as spelt is a path even if it holds an ``@`` (``runs/a@b``).
    """
    s = str(spec)
    if "@" in s and (is_url(s) or not Path(s).exists()):
        head, _, tail = s.rpartition("@")
        if head and tail and "/" not in tail and os.sep not in tail:
            return head, tail
    return s, None


def check_tag_name(path: str | os.PathLike, name: str, branches=(DEFAULT_BRANCH,)) -> str:
    """``name`` if it can be a tag; CorpusError otherwise. Checked before anything is committed.

    A tag is 1-100 ASCII letters, digits, ``.``, ``_``, ``+`` or ``-``, starting with a letter or a
    digit: ``@`` would break ``PATH@TAG``, ``/`` the refs' layout, and a long name the file name it
    is stored under. It must not be a branch's name (``branches``, ``main`` at least) nor look like a
    snapshot id (a version name must mean one thing).
    """
    if not isinstance(name, str) or not _TAG.fullmatch(name) or len(name) > MAX_TAG_LENGTH:
        shown = name if not isinstance(name, str) or len(name) <= 60 else name[:57] + "..."
        raise CorpusError(f"{path}: invalid tag name {shown!r} (1-{MAX_TAG_LENGTH} ASCII letters, digits, '.', "
                          f"'_', '+' or '-', starting with a letter or digit)")
    if name in branches:
        raise CorpusError(f"{path}: invalid tag name {name!r}: it is a branch's name")
    if _SNAPSHOT_ID.fullmatch(name):
        raise CorpusError(f"{path}: invalid tag name {name!r}: it looks like a snapshot id")
    return name


def build_branch_name(now: datetime | None = None) -> str:
    """A fresh build branch name: the prefix, the UTC start time (seconds) and a random suffix."""
    now = now or datetime.now(timezone.utc)
    return f"{BUILD_BRANCH_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:8]}"


def build_branch_started(name: str) -> datetime | None:
    """When the build that owns branch ``name`` started; None when ``name`` is not a build branch."""
    if not name.startswith(BUILD_BRANCH_PREFIX):
        return None
    try:
        stamp = name[len(BUILD_BRANCH_PREFIX):].split(".")[0]
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Resolving


def resolve_snapshot(repo: icechunk.Repository, version: str | None, path: str | os.PathLike = "") -> str:
    """``version`` (tag | branch | snapshot id; None = tip of main) -> snapshot id, or CorpusError."""
    version = DEFAULT_BRANCH if version is None else str(version)
    # Tags first: they are the names people cite; a tag and a branch should not share a name anyway.
    if version in repo.list_tags():
        return repo.lookup_tag(version)
    if version in repo.list_branches():
        return repo.lookup_branch(version)
    try:
        return repo.lookup_snapshot(version).id
    except (icechunk.IcechunkError, ValueError) as e:
        raise CorpusError(f"{path}: no version {version!r} (not a tag, branch or snapshot id)") from e


def resolve_version(path: str | os.PathLike, version: str | None) -> str:
    """``version`` (tag | branch | snapshot id; None = tip of main) -> snapshot id; CorpusError if unknown."""
    return resolve_snapshot(open_repository(path), version, path)


def open_version(path: str | os.PathLike, version: str | None) -> tuple[str, zarr.Group, icechunk.Session]:
    """(snapshot id, root group, read-only session) of ``version`` of the corpus at ``path``."""
    repo = open_repository(path)
    snap = resolve_snapshot(repo, version, path)
    session = repo.readonly_session(snapshot_id=snap)
    try:
        root = zarr.open_group(session.store, mode="r")
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError) as e:
        raise CorpusError(f"{path}@{version or DEFAULT_BRANCH}: version {snap} holds no corpus") from e
    return snap, root, session


def pin_version(spec: str | os.PathLike) -> str:
    """``"PATH@VERSION"`` or ``"PATH"`` -> ``"PATH@<snapshot id>"``: the exact version a run will read,
    whatever lands on the branch later. CorpusError if the repository or the version is missing."""
    path, version = split_path_at_version(spec)
    path = parse_location(path)
    return f"{path}@{resolve_snapshot(open_repository(path), version, path)}"


def tag_exists(path: str | os.PathLike, name: str) -> bool:
    """Whether the corpus at ``path`` has a tag ``name`` (False when there is no corpus there)."""
    return repository_exists(path) and name in open_repository(path).list_tags()


# --------------------------------------------------------------------------------------------------
# Tags


def create_tag(repo: icechunk.Repository, path: str | os.PathLike, name: str, snapshot_id: str) -> None:
    """Tag ``snapshot_id`` as ``name``, the one way every tag is made. Call with the repository lock
    held. Tags are immutable: an existing tag (or a branch of that name) raises CorpusError."""
    check_tag_name(path, name, branches=(DEFAULT_BRANCH, *repo.list_branches()))
    if name in repo.list_tags():
        raise CorpusError(f"{path}: tag {name!r} already exists (points at {repo.lookup_tag(name)}); "
                          f"tags are immutable")
    if name in repo.list_branches():
        raise CorpusError(f"{path}: {name!r} is a branch name")
    try:
        repo.create_tag(name, snapshot_id)
    except icechunk.IcechunkError as e:  # e.g. a deleted tag's name cannot be reused
        raise CorpusError(f"{path}: cannot create tag {name!r}: {one_line(e, 200)}") from e


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


# --------------------------------------------------------------------------------------------------
# Listing and differences


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


def diff_versions(path: str | os.PathLike, v1: str | None, v2: str | None) -> VersionDiff:
    """Sequence-level difference from ``v1`` to ``v2`` (by key)."""
    from schemas.reader import CorpusReader  # the reader resolves versions here: imported when called

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
