"""What the command line prints: one-line errors, tables, JSON lines, corpus arguments.

Results go to stdout (``out``); errors and progress (``flows.progress``) to stderr (``console``), so a
script can pipe the results and still see why a command failed.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.progress import stderr_console as console
from schemas.errors import EXPECTED_ERRORS, one_line
from schemas.records import Reject

out = Console(soft_wrap=True)  # paths and ids stay on one line

# Besides the project's typed errors (``schemas.errors.EXPECTED_ERRORS``: one line, always), what a user
# can cause with a bad path or value on a command line: one line too, exit 1 (a traceback with -v).
USER_ERRORS = (OSError, ValueError, KeyError)
ONE_LINE_ERRORS = EXPECTED_ERRORS + USER_ERRORS
VERBOSE = {"on": False}  # set by ``flows.cli.configure_logging``
NO_MESSAGE = "failed without a message (-v shows the traceback)"

CORPUS_HELP = "corpus repository: a local folder or s3://bucket/prefix"


def error_line(exc: BaseException) -> str:
    """An ``error:`` line's text: ``schemas.errors.one_line``, never cut and never the exception's class
    name (typed errors read ``path: reason``; an OSError names its file)."""
    return one_line(exc, empty=NO_MESSAGE)


# Exit codes: 2 for a bad command line (an unknown option, a missing argument, an option value that is
# not a number, not one of its choices or out of its range: all checked before anything is read), 1 for
# bad input (a file, a corpus version, a value that does not fit the data).


def positive(value):
    """typer ``callback``: a number > 0 (None passes), else a usage error (exit 2)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be positive, got {value:g}")
    return value


def at_least(low):
    """typer ``callback`` factory: a number >= ``low`` (None passes), else a usage error (exit 2)."""
    def check(value):
        if value is not None and value < low:
            raise typer.BadParameter(f"must be at least {low}, got {value:g}")
        return value
    return check


def one_of(*choices):
    """typer ``callback`` factory: one of ``choices`` (strings or integers; None passes), else a usage
    error (exit 2)."""
    def check(value):
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value
    return check


def one_line_errors(fn):
    """Turn the project's typed errors (and bad paths / values) into one clear line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ONE_LINE_ERRORS as exc:
            if VERBOSE["on"] and not isinstance(exc, EXPECTED_ERRORS):
                raise
            console.print(f"[red]error:[/red] {error_line(exc)}", highlight=False, soft_wrap=True, markup=True)
            raise typer.Exit(1)

    return wrapper


def corpus_arg(value) -> "Path | str":
    """Every corpus argument goes through here: a local folder (Path) or ``s3://bucket/prefix`` (str).

    Typer's ``Path`` would turn ``s3://b/p`` into ``s3:/b/p``, so corpus options are typed ``str``.
    """
    from schemas.storage import parse_location

    return parse_location(value)


def corpus_spec(spec: str) -> str:
    """``PATH[@VERSION]`` with PATH checked by ``corpus_arg`` (a bad URL fails here, in one line)."""
    from schemas.versions import split_path_at_version

    corpus_arg(split_path_at_version(spec)[0])
    return spec


def table(title: str, rows, columns=("field", "value"), keep: tuple[str, ...] = ("id",)) -> Table:
    """A rich table; the ``keep`` columns (ids, paths) are never cut short, the others wrap."""
    t = Table(title=title, show_header=True)
    for c in columns:
        t.add_column(c, no_wrap=c in keep, overflow="fold")
    for row in rows:
        t.add_row(*[str(x) for x in row])
    return t


def json_line(obj: dict) -> None:
    """One JSON object on one stdout line (for scripts: no colour, no wrapping)."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def print_rejects(rejects: list[Reject], always: bool = False) -> None:
    """One block per rejected file: its full path, then the kind and reason (paths never cut)."""
    if not rejects and not always:
        return
    out.print(f"rejects ({len(rejects)}):")
    for r in rejects:
        out.print(f"  {r.source_path}\n    [{r.kind}] {r.reason}", highlight=False, markup=False)


def versions_lines(vs, width: int = 80) -> list[str]:
    """The version listing as lines that fit ``width`` columns: one line of figures per version (the id
    is never cut), tags after them or on their own line, then the message wrapped and indented. The
    store size is listed only when some version records it (Icechunk 1.1 has no cheap per-snapshot size)."""
    import textwrap

    sized = any(v.store_bytes is not None for v in vs)
    cols = [("id", [v.id for v in vs], "<"), ("time (UTC)", [v.time.strftime("%Y-%m-%d %H:%M") for v in vs], "<"),
            ("seqs", [str(v.n_sequences) for v in vs], ">"), ("frames", [str(v.n_frames) for v in vs], ">"),
            ("views", [str(v.n_views) for v in vs], ">")]
    if sized:
        cols.append(("MB", ["" if v.store_bytes is None else f"{v.store_bytes / 1e6:.1f}" for v in vs], ">"))
    widths = [max([len(h)] + [len(x) for x in vals]) for h, vals, _ in cols]

    def fmt(cells):
        return "  ".join(f"{c:{a}{w}}" for c, w, (_, _, a) in zip(cells, widths, cols))

    lines = [fmt([h for h, _, _ in cols]) + "  tags"]
    for i, v in enumerate(vs):
        head = fmt([vals[i] for _, vals, _ in cols])
        tags = ", ".join(v.tags)
        if tags and len(head) + 2 + len(tags) <= width:
            lines.append(f"{head}  {tags}")
        else:
            lines.append(head)
            if tags:
                lines += textwrap.wrap(f"tags: {tags}", width, initial_indent="  ", subsequent_indent="    ")
        if v.message:
            lines += textwrap.wrap(v.message, width, initial_indent="  ", subsequent_indent="  ")
    return lines
