"""Small pieces every flow shares: retry policy, tables, artifacts, progress, file identities, failures.

No numerics here: flows only call the pipelines and the trainer and report what they did.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import time
import typing
from pathlib import Path
from typing import Any, Iterable, Sequence

log = logging.getLogger("flows")

# Transient: worth a retry. Bad input or bad config fails the same way again, so never retried.
_NEVER_RETRY = ("InputError", "ConfigError", "FileNotFoundError", "NotADirectoryError", "IsADirectoryError",
                "PermissionError", "ValidationError", "ValueError", "TypeError", "KeyError")
_TRANSIENT = ("VersionConflictError", "KilledWorker", "CommClosedError", "TimeoutError", "ConnectionError",
              "BrokenPipeError", "OSError")


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry can cure (lost Dask worker, network, commit race, I/O hiccup)."""
    names = [c.__name__ for c in type(exc).__mro__]
    if any(n in _NEVER_RETRY for n in names):
        return False
    return any(n in _TRANSIENT for n in names)


def retry_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as e:  # a result we cannot read: be conservative
            exc = e
    return isinstance(exc, BaseException) and is_transient(exc)


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a run (shows in the UI), the module logger outside one."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:
        return log


def md_escape(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """A GitHub-style markdown table; cells are escaped so a ``|`` in a reason cannot break it."""
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def table_rows(table) -> tuple[list[str], list[list]]:
    """(header, rows) of an evaluation table (``uplift.evaluate.evaluate``'s rows: dicts whose keys may
    differ between rows, or a pyarrow table of them): floats to 2 decimals, missing cells empty.
    The ``evaluate`` flow's markdown and ``mocap-corpus evaluate``'s table both show it."""
    import pyarrow as pa

    rows = table.to_pylist() if isinstance(table, pa.Table) else list(table)
    header = list(dict.fromkeys(k for r in rows for k in r))
    return header, [[_fmt_cell(r.get(h, "")) for h in header] for r in rows]


def _fmt_cell(v):
    return f"{v:.2f}" if isinstance(v, float) else v


def rejects_markdown(rejects: Sequence[Any], limit: int = 200) -> str:
    """Rejects (objects with source_path, kind, reason) as a markdown section; says so when there are none."""
    if not rejects:
        return "### Rejects\n\nNone: every source file was used."
    rows = [(r.source_path, r.kind, r.reason) for r in rejects[:limit]]
    more = f"\n\n... and {len(rejects) - limit} more." if len(rejects) > limit else ""
    return f"### Rejects ({len(rejects)})\n\n" + markdown_table(rows, ["source file", "kind", "reason"]) + more


def file_url(path: str | os.PathLike) -> str:
    return Path(path).resolve().as_uri()


def artifact_key(*parts: str) -> str:
    """Artifact keys may hold only lowercase letters, digits and dashes."""
    raw = "-".join(parts).lower()
    key = "".join(c if (c.isalnum() and c.isascii()) else "-" for c in raw)
    while "--" in key:
        key = key.replace("--", "-")
    return key.strip("-")[:100] or "artifact"


def publish_markdown(markdown: str, key: str, description: str = "") -> None:
    """Create a markdown artifact when inside a Prefect run; log it otherwise."""
    try:
        from prefect.artifacts import create_markdown_artifact
        from prefect.context import get_run_context

        get_run_context()
    except Exception:
        log.info("%s\n%s", description, markdown)
        return
    create_markdown_artifact(markdown=markdown, key=artifact_key(key), description=description)


def publish_link(path_or_url: str | os.PathLike, key: str, text: str, description: str = "") -> None:
    try:
        from prefect.artifacts import create_link_artifact
        from prefect.context import get_run_context

        get_run_context()
    except Exception:
        log.info("%s: %s", text, path_or_url)
        return
    link = str(path_or_url)
    if "://" not in link:
        link = file_url(link)
    create_link_artifact(link=link, link_text=text, key=artifact_key(key), description=description)


# Browsers refuse file:// images inside an http:// page, so an image artifact that points at a local file
# shows a broken-image icon. Both of Prefect's UIs render a markdown artifact's data:image/... sources
# (the React UI allows exactly that scheme for <img>), so images travel inside the artifact. The
# server emits an event carrying the artifact and refuses events over 1.5 MB; base64 adds a third.
MAX_EMBED_BYTES = 700_000
IMAGE_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def image_data_uri(path: str | os.PathLike) -> str | None:
    """``data:image/...;base64,...`` of a PNG/GIF/JPEG file up to ``MAX_EMBED_BYTES``; None otherwise."""
    import base64

    p = Path(path)
    mime = IMAGE_MIME.get(p.suffix.lower())
    if mime is None or not p.is_file() or p.stat().st_size > MAX_EMBED_BYTES:
        return None
    return f"data:{mime};base64," + base64.b64encode(p.read_bytes()).decode("ascii")


def image_markdown(path: str | os.PathLike, title: str) -> str:
    """A markdown artifact's text that shows the image in the Prefect UI by itself (embedded as a data
    URI: no file server, no browser file:// rule, still there when the run is browsed later), then the
    file's path. A file too large to embed, or not an image (.mp4), is named with its size instead."""
    p = Path(path).resolve()
    uri = image_data_uri(p)
    alt = md_escape(title).replace("[", "(").replace("]", ")")
    if uri is None:
        size = p.stat().st_size if p.is_file() else 0
        shown = f"_Not embedded ({size / 1e6:.1f} MB, or not a PNG/GIF/JPEG image): open the file._"
    else:
        shown = f"![{alt}]({uri})"
    return f"**{md_escape(title)}**\n\n{shown}\n\nFile: `{p}`"


def publish_image(path: str | os.PathLike, key: str, description: str = "") -> None:
    """Publish an image file as a markdown artifact that embeds it (``image_markdown``), or log its path
    outside a run."""
    try:
        from prefect.artifacts import create_markdown_artifact
        from prefect.context import get_run_context

        get_run_context()
    except Exception:
        log.info("%s: %s", description or key, path)
        return
    create_markdown_artifact(markdown=image_markdown(path, description or Path(path).name), key=artifact_key(key),
                             description=description or str(path))


class Progress:
    """``progress(done, total, info)`` callback: log lines with counts and rates, a Prefect progress
    artifact in the UI, and a rich progress bar when stderr is a terminal.

    Logs the first call, then whenever ``every_s`` seconds or ``every_pct`` percent have passed since the
    last line, and always the call that reaches ``total`` (so the logs and the artifact end at 100 %).
    ``restart()`` begins another pass (the next evaluation) with the same artifact.
    """

    def __init__(self, what: str, every_s: float = 5.0, every_pct: float = 10.0, artifact: bool = True):
        self.what = what
        self.description = what  # the progress artifact's, for every pass
        self.every_s = every_s
        self.every_pct = every_pct
        self.t0 = time.perf_counter()
        self._last_t = -1e9
        self._last_pct = -1e9
        self._artifact_id = None
        self._want_artifact = artifact
        self._bar = None
        self._bar_task = None
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TimeRemainingColumn

            self._bar = RichProgress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), transient=False)

    def __call__(self, done: int, total: int, info: dict | None = None) -> None:
        info = info or {}
        now = time.perf_counter()
        pct = 100.0 * done / max(total, 1)
        if self._bar is not None:
            if self._bar_task is None:
                self._bar.start()
                self._bar_task = self._bar.add_task(self.what, total=total)
            self._bar.update(self._bar_task, completed=done, total=total)
        finished = done >= total
        if not finished and now - self._last_t < self.every_s and pct - self._last_pct < self.every_pct:
            return
        self._last_t, self._last_pct = now, pct
        elapsed = max(now - self.t0, 1e-9)
        extra = "".join(f", {k}={_fmt(v)}" for k, v in info.items() if k != "elapsed_s")
        run_logger().info("%s: %d/%d (%.0f%%) at %s/s, %.0f s elapsed%s", self.what, done, total, pct,
                          _rate(done / elapsed), elapsed, extra)
        self._update_artifact(pct)
        if finished:
            self.close()

    def restart(self, what: str | None = None, since: float | None = None) -> None:
        """Count a new pass from 0 (its own first and last lines), keeping the progress artifact.
        ``since``: when the pass began (``time.perf_counter()``; default now), for its rates."""
        self.what = what or self.what
        self.t0 = time.perf_counter() if since is None else since
        self._last_t = self._last_pct = -1e9

    def _update_artifact(self, pct: float) -> None:
        if not self._want_artifact:
            return
        try:
            from prefect.artifacts import create_progress_artifact, update_progress_artifact
            from prefect.context import get_run_context

            get_run_context()
            if self._artifact_id is None:
                self._artifact_id = create_progress_artifact(pct, description=self.description)
            else:
                update_progress_artifact(self._artifact_id, pct)
        except Exception:
            self._want_artifact = False  # outside a run, or the API said no: logs are enough

    def close(self) -> None:
        if self._bar is not None and self._bar_task is not None:
            self._bar.stop()
            self._bar_task = None


def _rate(x: float) -> str:
    """A rate that never reads 0.0 while work is being done: 3 significant digits."""
    return f"{x:.3g}" if x < 100 else f"{x:,.0f}"


def _fmt(v: Any) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


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


# --- paths in parameters ---------------------------------------------------------------------------
# A deployment run has no caller's directory (the UI form has none, and `prefect deployment run` does
# not send it): relative paths resolve against the directory the deployments are served from (where
# `python -m flows up` / `flows serve` was started; its runs inherit it). Each flow resolves its path
# parameters first and logs what they became, so every error names the absolute path.


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
    from schemas.repository import split_path_at_version

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


# --- failures that say why ------------------------------------------------------------------------


class ExpectedFailure(Exception):
    """A failure the flow expected and can state in one line (e.g. a build that rejected every file,
    a committed version that failed validation): the run ends Failed with this line, no traceback."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that end a run Failed with their one-line reason: the project's typed errors (bad input,
    bad config, corpus problems), ``ExpectedFailure``, and a task that already failed that way."""
    from prefect.exceptions import FailedRun

    from schemas.errors import MocapCorpusError

    return (MocapCorpusError, ExpectedFailure, FailedRun)


def one_line(exc: BaseException, limit: int | None = 1000) -> str:
    """``str(exc)`` on one line, at most ``limit`` characters (typed errors already read ``path: reason``;
    a KeyError's message without the quotes ``str(KeyError)`` adds). The flows' state messages and the
    CLI's ``error:`` lines both go through here."""
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    text = " ".join(str(msg).split()) or type(exc).__name__
    return text[:limit]


def fail_with_reason(fn):
    """Decorator under ``@flow`` / ``@task``: an expected error ends the run in ``Failed`` with its
    one-line reason as the state message (shown by ``prefect deployment run --watch``, ``prefect
    flow-run inspect`` and the UI) and one error log line, without a traceback. Unexpected errors
    propagate unchanged, so Prefect logs them with their traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except expected_errors() as exc:
            from prefect.states import Failed

            msg = one_line(exc)
            run_logger().error(msg)
            _send_logs_now()  # before the Failed state: `--watch` stops streaming logs at the final state
            return Failed(message=msg)

    # Prefect builds its parameter model from the signature: give it resolved types (the string
    # annotations of ``from __future__ import annotations`` would be looked up in this module).
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)
    wrapper.__annotations__ = typing.get_type_hints(fn)
    return wrapper


def _send_logs_now(timeout_s: float = 5.0) -> None:
    try:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - logs are best effort; the state message still says why
        pass


class _FailedRunWithoutTraceback(logging.Filter):
    """Prefect's deployment engine re-raises a run's final ``Failed`` state as ``FailedRun`` and logs it
    with a traceback of its own internals. That state came from ``fail_with_reason`` (its reason is the
    state message and was logged); an unexpected error's final state holds the error itself, which is
    re-raised as such and keeps its traceback. So drop only the engine traceback of a ``FailedRun``."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "FailedRun":
            record.msg, record.args = f"Flow run failed: {one_line(exc)}", ()
            record.exc_info, record.exc_text = None, None
        return True


def _install_failed_run_filter() -> None:
    logger = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(f, _FailedRunWithoutTraceback) for f in logger.filters):
        logger.addFilter(_FailedRunWithoutTraceback())


_install_failed_run_filter()
