"""Incremental-rebuild planning: which source files a build must compute and which it carries over.

A source's identity is its resolved path and its sha256. A sequence of the parent version is carried
over bit-identically when its source's sha256 and the build's config hash are unchanged; a source the
parent rejected with the same sha256 under the same config keeps its reject row (it would fail the
same way again).

File status first, as make and rsync do: a file whose size, mtime (ns) and inode are those the parent
recorded is unchanged, and its recorded sha256 is used without reading it; only a file whose status
changed (or a new one) is hashed. ``verify`` hashes every file. When nothing is left to compute and the parent holds exactly these sources, the
build is up to date and commits nothing. Everything about the parent is asked of its reader
(``source_index``, ``source_paths``, ``reject_records``), never read from its manifests here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipelines.hashing import sha256_file
from schemas.errors import CorpusError, InputError
from schemas.reader import CorpusReader
from schemas.records import Reject
from schemas.storage import is_url


@dataclass
class Source:
    """One motion file below the AMASS root; ``sha256`` is "" when the file cannot be read."""

    path: str
    key: str
    dataset: str
    subject: str
    name: str
    sha256: str
    status: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) when it is a regular file
    hashed: bool = False  # its bytes were read for the sha256 (False: the recorded one was trusted)

    @property
    def size(self) -> int:
        return self.status[0] if self.status else 0


def file_status(st) -> tuple[int, int, int]:
    """(size, mtime_ns, inode) of an ``os.stat_result``: what decides "unchanged" without reading."""
    return int(st.st_size), int(st.st_mtime_ns), int(st.st_ino)


@dataclass
class RebuildPlan:
    """What a build does with each source (every source is in exactly one of these, or carried)."""

    carried: dict[str, list[str]]  # source key -> the parent's sequence keys to carry over
    todo: list[Source]  # to compute, in key order
    reused_rejects: dict[str, Reject] = field(default_factory=dict)  # path -> the parent's reject row
    up_to_date: bool = False  # nothing to compute and the parent holds exactly these sources


def list_sources(root: Path, known: dict[str, tuple] | None = None,
                 hash_unknown: bool = True) -> tuple[list[Source], dict[str, Reject]]:
    """Every motion file below ``root`` with its sha256; one that cannot be hashed (a directory named
    ``*.npz``, a FIFO or device, a dangling link or a link loop, no permission, over the size limit)
    or must not be read (a link out of ``root``, a sequence key that collides with an earlier file's,
    ``pipelines.amass.refused_sources``) is kept as a source with a Reject (returned by path).
    ``known``: path -> (size, mtime_ns, inode, sha256) recorded by the parent version
    (``CorpusReader.source_status``); a file with that status is not read, one with another status is
    hashed. ``hash_unknown`` False: a file ``known`` has no record of is not hashed here either
    (sha256 ""): it is computed anyway, and hashed where it is read (a build worker)."""
    known = known or {}
    from pipelines.amass import iter_amass, refused_sources
    from schemas.files import check_regular

    files = list(iter_amass(root))
    refused = refused_sources(files, root)
    sources, unreadable = [], {}
    for s in files:
        path = str(s.path)
        sha, reason, status, hashed = "", refused.get(path, ""), None, False
        try:
            if not reason:
                status = file_status(check_regular(path))  # stat only: a FIFO, a device or a directory is never opened
                recorded = known.get(path)
                if recorded is not None and tuple(recorded[:3]) == status:
                    sha = recorded[3]
                elif recorded is not None or hash_unknown:
                    sha, hashed = sha256_file(path, kind="amass", root=root), True
        except InputError as exc:  # names what the path is (directory, FIFO, link loop...)
            reason = exc.reason
        except OSError as exc:
            reason = f"cannot be read: {exc.strerror or type(exc).__name__}"
        if reason:
            status = None
            unreadable[path] = Reject(source_path=path, reason=reason, kind="amass", source_sha256="")
        sources.append(Source(path, s.key, s.dataset, s.subject, s.name, sha, status, hashed))
    return sources, unreadable


def body_model_hashes(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every body-model file (.npz, .pkl) below ``root``."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".npz", ".pkl"))
    return {str(p.relative_to(root)): sha256_file(p, kind="body_model") for p in files}


def parent_reader(corpus) -> CorpusReader | None:
    """The tip of ``corpus``'s main branch, or None when there is no corpus version yet."""
    if not is_url(corpus) and not Path(corpus).exists():
        return None
    try:
        return CorpusReader.open(corpus)
    except CorpusError:
        return None


def _parent_config(parent: CorpusReader | None) -> str | None:
    """The config hash the parent version was built with (None: no parent or not an AMASS build)."""
    return (parent.build_info or {}).get("config_hash") if parent is not None else None


def plan_rebuild(sources: list[Source], unreadable: dict[str, Reject], parent: CorpusReader | None,
                 config_hash: str) -> RebuildPlan:
    """Split ``sources`` into carried over, known-bad (reused reject rows) and to compute."""
    carried, todo = _partition(sources, parent, config_hash)
    # An unchanged bad file fails the same way again: keep its reject row instead of re-reading it.
    old_rejects = ({r.source_path: r for r in parent.reject_records()}
                   if parent is not None and _parent_config(parent) == config_hash else {})
    reused = {s.path: old_rejects[s.path] for s in todo
              if s.path in old_rejects and old_rejects[s.path].source_sha256 == s.sha256}
    todo = sorted((s for s in todo if s.path not in reused and s.path not in unreadable), key=lambda s: s.key)
    up_to_date = parent is not None and not todo and parent.source_paths() == {s.path for s in sources}
    return RebuildPlan(carried=carried, todo=todo, reused_rejects=reused, up_to_date=up_to_date)


def _partition(sources: list[Source], parent: CorpusReader | None,
               config_hash: str) -> tuple[dict[str, list[str]], list[Source]]:
    """Split sources into those whose sequences can be carried over from ``parent`` and those to compute."""
    if parent is None:
        return {}, list(sources)
    by_path = parent.source_index()
    carried, todo = {}, []
    for s in sources:
        rows = by_path.get(s.path, [])
        if rows and all(r["source_sha256"] == s.sha256 and r["config_hash"] == config_hash for r in rows):
            carried[s.key] = [r["key"] for r in rows]
        else:
            todo.append(s)
    return carried, todo
