"""One corpus repository: opening it, naming its versions, and the lock that serialises its commits.

A corpus is one Icechunk repository (a local folder or ``s3://bucket/prefix``, ``schemas.storage``).
Everything that opens one (the reader, the writer, versions, validation) goes through
:func:`open_repository`; every ``PATH@VERSION`` string goes through :func:`split_path_at_version`;
every tag name goes through :func:`check_tag_name`.

Concurrency policy: Icechunk's local-filesystem storage is not safe for concurrent commits, so every
commit, tag and repository creation runs under a file lock at ``<PATH>.lock``. Object storage has no
lock: Icechunk's commit is a conditional write of the branch ref, so of two racing commits one fails.
"""

from __future__ import annotations

import io
import os
import re
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import filelock
import icechunk
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from schemas import store as S
from schemas.errors import CorpusError
from schemas.storage import is_url, repository_exists, storage_for

DEFAULT_BRANCH = "main"
LOCK_TIMEOUT_S = 600.0
# Commit metadata key that marks an Icechunk snapshot as a corpus version (and carries its totals).
COMMIT_META_KEY = "mocap_corpus"
# A build on a cluster lays out its arrays in a snapshot on a branch of its own, forks its workers'
# sessions from there, and moves ``main`` to its one commit at the end (``pipelines.forked_writer``).
# Such a branch lives while its build runs; one left by a killed build is removed by ``gc``.
BUILD_BRANCH_PREFIX = "build-in-progress."
LAYOUT_META_KEY = "mocap_corpus_layout"  # commit metadata of a build's layout snapshot (not a version)

# Icechunk warns on every open that local storage is unsafe for concurrent commits; commits are
# serialised with a file lock (module docstring), so keep that one warning quiet unless the user
# configured Icechunk logging explicitly.
if "ICECHUNK_LOG" not in os.environ:
    icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, at most ``limit`` characters."""
    return " ".join(str(e).split())[:limit]


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


MAX_TAG_LENGTH = 100
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_SNAPSHOT_ID = re.compile(r"[0-9A-Z]{20}")  # Icechunk's ids: 20 characters of Crockford base32


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
# Opening


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
        raise CorpusError(f"{path}: cannot open corpus repository: {one_line(e)}") from e


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
    from schemas.storage import parse_location

    path, version = split_path_at_version(spec)
    path = parse_location(path)
    return f"{path}@{resolve_snapshot(open_repository(path), version, path)}"


def read_manifest(group: zarr.Group, name: str) -> pa.Table:
    """The Parquet manifest ``name`` stored as a 1-D uint8 array in ``group`` (a corpus root).

    ValueError when the array is not Parquet bytes (validation reports it as a finding).
    """
    arr = group[f"{S.MANIFESTS_GROUP}/{name}"]
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(f"manifest array {name} is {arr.dtype} {arr.shape}, expected 1-D uint8 Parquet bytes")
    return pq.read_table(io.BytesIO(np.asarray(arr[:]).tobytes()))


# --------------------------------------------------------------------------------------------------
# Locking


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
