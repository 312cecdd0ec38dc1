"""Malformed-input fuzzing: one malformed file against every loader of its kind, and the counts.

Shared by ``tests/reliability/test_fuzz_inputs.py`` (hypothesis draws the cases) and
``benchmarks/reliability_report.py`` (seeded draws, longer counts).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.support.malformed import WRITERS
from schemas.errors import InputError


def loaders(kind: str) -> list:
    if kind == "amass":
        from pipelines.amass import read_amass

        return [read_amass]
    if kind == "body_model":
        from pipelines.body_model import load_body_model

        return [load_body_model]
    if kind == "regressor":
        from pipelines.body_model import load_regressor

        return [load_regressor]
    from pipelines.h36m import load_positions_2d, load_positions_3d

    return [load_positions_3d, load_positions_2d]


@dataclass
class FuzzOutcome:
    typed_errors: int = 0
    loaded: int = 0
    escaped: list = field(default_factory=list)  # (description, exception repr)
    payload_ran: bool = False
    digest: str = ""  # sha256 of the case's bytes: distinct cases are counted by content
    reasons: list = field(default_factory=list)  # the typed errors' reasons, digits masked (which check fired)

    @property
    def valid(self) -> bool:
        """The mutation still gave a valid file: a loader accepted it (a VideoPose3D 3D file is valid
        for the 3D loader and refused by the 2D one)."""
        return self.loaded > 0 and not self.escaped


def content_digest(path: Path) -> str:
    if path.is_dir():
        return "directory"
    if not path.exists():
        return "missing"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _reason_kind(reason: str) -> str:
    return re.sub(r"[-+]?\d[\d.e+-]*", "#", reason)[:60]


def fuzz_case(kind: str, mutation: str, suffix: str, seed: int, workdir: Path, marker: Path) -> FuzzOutcome:
    """Write one malformed file, feed it to every loader of ``kind``, clean up; report what happened."""
    writer, _ = WRITERS[kind]
    path = workdir / f"case_{kind}_{mutation}_{seed}{suffix}"
    # this case's own marker (beside ``marker``): one executed payload marks one case, not every later one
    marker = marker.with_name(f"{marker.name}.{kind}.{mutation}.{seed}")
    marker.unlink(missing_ok=True)
    out = FuzzOutcome()
    what = writer(np.random.default_rng(seed), mutation, path, str(marker))
    out.digest = f"{suffix}:{content_digest(path)}"
    try:
        for load in loaders(kind):
            try:
                load(path)
                out.loaded += 1
            except InputError as exc:
                if not exc.reason or str(path) not in str(exc):
                    out.escaped.append((what, f"typed error without file/reason: {exc!r}"))
                out.typed_errors += 1
                out.reasons.append(_reason_kind(str(exc.reason)))
            except Exception as exc:  # noqa: BLE001 - exactly what must never happen
                out.escaped.append((f"{kind}/{mutation}: {what}", f"{type(exc).__name__}: {exc}"))
    finally:
        out.payload_ran = marker.exists()
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return out


@dataclass
class FuzzStats:
    """Per loader: cases, distinct (by content), typed errors, loaded valid, escaped, payloads, reasons."""
    cases: int = 0
    distinct: int = 0
    typed_errors: int = 0
    loaded_valid: int = 0
    escaped: int = 0
    payloads: int = 0
    reasons: set = field(default_factory=set)
    _seen: set = field(default_factory=set, repr=False)

    def add(self, out: FuzzOutcome) -> None:
        self.cases += 1
        if out.digest not in self._seen:
            self._seen.add(out.digest)
            self.distinct += 1
        self.typed_errors += out.typed_errors
        self.loaded_valid += out.valid
        self.escaped += len(out.escaped)
        self.payloads += out.payload_ran
        self.reasons.update(out.reasons)
