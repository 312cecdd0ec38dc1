"""Named crash points for the reliability suite.

``MOCAP_CORPUS_FAULT=name[:n]`` SIGKILLs this process the n-th time (default first) execution passes
``fault_point(name)``. ``MOCAP_CORPUS_TRACE=FILE`` appends every point passed (and ``kill:name`` just
before a planted kill) to FILE, so a trial can tell where a kill really landed. Unset, both cost one
environment lookup.

Points (where they are):
    write           build: before each sequence is handed to the writer
    chunk_write     writer: inside one flush of an array, after its resize and first half of the rows
    flush           writer: after a flush of an array completed (between flushes)
    commit          build: after the last sequence, before ``writer.commit``
    icechunk_commit writer: inside the Icechunk commit, after data, manifests and the snapshot are
                    written, before the branch moves
    tag             writer: after the branch moved, before the tag is created
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "MOCAP_CORPUS_FAULT"
TRACE_ENV = "MOCAP_CORPUS_TRACE"
_passes: Counter = Counter()


def armed(name: str) -> bool:
    """True when ``MOCAP_CORPUS_FAULT`` targets ``name`` (lets a writer split a step to kill inside it)."""
    spec = os.environ.get(ENV)
    return bool(spec) and spec.partition(":")[0] == name


def trace(event: str) -> None:
    """Append ``event`` to the trace file, if one is set (unbuffered: survives a SIGKILL right after)."""
    path = os.environ.get(TRACE_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event}\n".encode())
        finally:
            os.close(fd)


def fault_point(name: str) -> None:
    if TRACE_ENV in os.environ:
        trace(name)
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _passes[name] += 1
    if _passes[name] == int(nth or 1):
        trace(f"kill:{name}")
        os.kill(os.getpid(), signal.SIGKILL)
