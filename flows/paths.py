"""Paths in a flow's parameters: made absolute against the directory the deployments are served from,
logged when they change, and a cheap identity of a file for cache keys.

A deployment run has no caller's directory (the UI form has none, and ``prefect deployment run`` does
not send it): relative paths resolve against the directory the deployments are served from (where
``python -m flows up`` / ``flows serve`` was started; its runs inherit it). Each flow resolves its path
parameters first and logs what they became, so every error names the absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from flows.logs import run_logger
from schemas.versions import split_path_at_version


def file_stat_fingerprint(path: str | os.PathLike | None) -> str | None:
    """Cheap identity of a file (resolved path, size, mtime): changes when the file is rewritten."""
    if path is None:
        return None
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return f"missing:{p}"
    return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def serve_root() -> Path:
    """The directory relative paths in a flow run's parameters resolve against (the serving process's)."""
    return Path.cwd()


def resolve_path(p):
    """A local path made absolute against ``serve_root()`` (``~`` expanded); URLs (``s3://...``) and
    None unchanged. Returns a ``Path`` for a path, the string for a URL."""
    if p is None or (isinstance(p, str) and "://" in p):
        return p
    path = Path(p).expanduser()
    return path if path.is_absolute() else serve_root() / path


def resolve_spec(spec: str) -> str:
    """``PATH@VERSION`` with PATH made absolute (``resolve_path``); the version unchanged."""
    path, version = split_path_at_version(spec)
    resolved = str(resolve_path(path))
    return resolved if version is None else f"{resolved}@{version}"


def log_resolved(pairs: Iterable[tuple[Any, Any]]) -> None:
    """One log line naming each relative path parameter and the absolute path it became."""
    changed = [f"{a} -> {b}" for a, b in pairs if a is not None and str(a) != str(b)]
    if changed:
        run_logger().info("relative paths resolve against %s (where the deployments are served): %s",
                          serve_root(), "; ".join(changed))


def resolve_config_paths(config, fields: Sequence[str]):
    """A pydantic config with its path ``fields`` resolved (``resolve_path``), the change logged."""
    resolved = {f: resolve_path(getattr(config, f)) for f in fields}
    log_resolved((getattr(config, f), v) for f, v in resolved.items())
    return config.model_copy(update=resolved)
