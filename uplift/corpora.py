"""The corpora a run reads: ``"PATH@VERSION"`` specs (or readers already open) -> readers.

Training and evaluation open each corpus once here and hand the readers to the window stream, so
they can read ground truth from the same versions the stream cuts windows from.
"""

from __future__ import annotations

import os

from schemas.reader import CorpusReader, open_corpus


def open_corpora(specs) -> list[CorpusReader]:
    """A spec, a reader, or a list of them -> readers in the same order (None -> [])."""
    if specs is None:
        return []
    specs = specs if isinstance(specs, (list, tuple)) else [specs]
    return [open_corpus(s) if isinstance(s, (str, os.PathLike)) else s for s in specs]
