"""Named crash points for the reliability suite: ``MOCAP_CORPUS_FAULT=name[:n]`` SIGKILLs this process
the n-th time (default first) execution passes ``fault_point(name)``. Unset, it costs one dict lookup."""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "MOCAP_CORPUS_FAULT"
_passes: Counter = Counter()


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _passes[name] += 1
    if _passes[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
