"""Named crash points for the reliability suite.

``MOCAP_CORPUS_FAULT=name[:n]`` SIGKILLs this process the n-th time (default first) execution passes
``fault_point(name)``. ``MOCAP_CORPUS_TRACE=FILE`` appends every point passed (and ``kill:name`` just
before a planted kill) to FILE, so a trial can tell where a kill really landed. Unset, both cost one
environment lookup.

A point passed in a Dask worker of a build kills the build too: the build exports its pid as
``MOCAP_CORPUS_FAULT_BUILD_PID`` to the workers it starts while a fault is armed, so a planted kill
inside a worker's chunk write takes the whole build down, as a dying machine would.

Points (where they are):
    write           build worker: before each sequence of its shard is written
    chunk_write     writer (a build worker): inside one flush of an array, after the first half of the rows
    flush           writer (a build worker): after a flush of an array completed (between flushes)
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
BUILD_PID_ENV = "MOCAP_CORPUS_FAULT_BUILD_PID"
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
        build = int(os.environ.get(BUILD_PID_ENV) or 0)
        if build and build != os.getpid():
            try:
                os.kill(build, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.kill(os.getpid(), signal.SIGKILL)


def export_build_pid() -> None:
    """Called by a build before it starts its workers: while a fault is armed, they kill it too."""
    if os.environ.get(ENV):
        os.environ[BUILD_PID_ENV] = str(os.getpid())
