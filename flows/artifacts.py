"""What flows publish: markdown tables and Prefect artifacts (markdown, links, embedded images).

Outside a Prefect run every ``publish_*`` logs what it would have published instead. The tables are
also what the CLI prints for an evaluation (``table_rows``). Importing this module does not import
Prefect.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

log = logging.getLogger("flows")


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

    from schemas.errors import InputError
    from schemas.files import read_bounded

    mime = IMAGE_MIME.get(Path(path).suffix.lower())
    if mime is None:
        return None
    try:  # a regular file of at most MAX_EMBED_BYTES, read once
        data = read_bounded(path, MAX_EMBED_BYTES).data
    except InputError:
        return None
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


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
