"""What every build shares: one result type (AMASS, Human3.6M), read from the committed version's
reader plus the counts only the build itself knows (recomputed, carried over, elapsed); and one answer
to a version conflict (``on_top_of_conflicts``).

The CLI prints ``summary_rows()``, the flows publish the same fields; none of them needs to know
which build ran.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from schemas.errors import VersionConflictError
from schemas.reader import CorpusReader
from schemas.records import Reject

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 3  # builds started again on top of a version another build committed first
T = TypeVar("T")


def on_top_of_conflicts(build_once: Callable[[], T], attempts: int = COMMIT_ATTEMPTS) -> T:
    """``build_once()``; when another build committed to the same branch first (``VersionConflictError``,
    nothing of ours committed), start it again on top of that new version, up to ``attempts`` builds in
    all, then let the conflict through.

    The one layer that retries a version conflict: a build knows what it can carry over from the new
    version, and the CLI and the flows get the same behaviour (the flows' task retries only
    infrastructure failures, ``schemas.errors.is_transient``)."""
    for attempt in range(1, attempts + 1):
        try:
            return build_once()
        except VersionConflictError as exc:
            if attempt == attempts:
                raise
            log.warning("build: %s; rebuilding on top of it (attempt %d of %d)", exc, attempt + 1, attempts)
    raise AssertionError("unreachable")


@dataclass
class BuildResult:
    corpus: str
    version_id: str  # the committed snapshot (or the parent's, when up to date)
    up_to_date: bool = False  # nothing recomputed, nothing committed
    n_sources: int = 0  # source files (AMASS) or source entries (H36M subject/action/camera) seen
    n_sequences: int = 0
    n_frames: int = 0
    n_views: int = 0
    n_recomputed: int = 0  # sources computed by this build
    n_carried: int = 0  # sequences carried over from the parent version
    n_flagged: int = 0  # views that still leave joints out of view in some frame
    source_frames: int = 0  # source frames of recomputed sequences
    rejects: list[Reject] = field(default_factory=list)
    in_view_fraction: float = 1.0  # frames with every joint in view, over all views
    out_of_view_fraction: float = 0.0  # 2D joints outside the image, over all view frames
    elapsed_s: float = 0.0
    tag: str | None = None
    regressor_order: dict | None = None  # RegressorOrder.as_dict() of the AMASS build that wrote the version
    smplx_regressor_order: dict | None = None  # the same for its SMPL-X sequences (through the deformation transfer)
    body_models_used: dict = field(default_factory=dict)  # "family/gender" -> sequences, e.g. {"smplx/neutral": 2}
    notes: list[str] = field(default_factory=list)  # per-source notes, e.g. zero extra betas dropped
    n_trimmed_views: int = 0  # H36M: views whose 2D was longer than the 3D and was cut to it
    n_hashed: int = 0  # AMASS: source files read to hash them (0 when every file status was unchanged)
    recomputed_keys: list[str] | None = None  # sequences this build computed, when it carried others over
    timings: dict | None = None  # AMASS: where the time went (``pipelines.build_amass._Stats.timings``)
    n_status_refreshed: int = 0  # AMASS, up to date: sources re-hashed as unchanged whose new file status was committed

    @classmethod
    def from_reader(cls, reader: CorpusReader, *, corpus: str, n_sources: int, up_to_date: bool,
                    elapsed_s: float, tag: str | None, n_recomputed: int = 0, n_carried: int = 0,
                    source_frames: int = 0, n_trimmed_views: int = 0, n_hashed: int = 0,
                    recomputed_keys: list[str] | None = None, timings: dict | None = None,
                    n_status_refreshed: int = 0) -> "BuildResult":
        """The result for the version ``reader`` is pinned to; the regressor order and the notes are
        those its build recorded (``build_info``). Every figure comes from the manifests (the writer
        counted out-of-view joints as it wrote them): no array is read back."""
        return cls(
            corpus=str(corpus), version_id=reader.version_id, up_to_date=up_to_date, n_sources=n_sources,
            n_sequences=reader.sequences.num_rows, n_frames=reader.n_frames, n_views=reader.views.num_rows,
            n_recomputed=n_recomputed, n_carried=n_carried, n_flagged=reader.n_flagged_views(),
            source_frames=source_frames, rejects=reader.reject_records(),
            in_view_fraction=reader.in_view_fraction(), out_of_view_fraction=reader.out_of_view_fraction(),
            elapsed_s=elapsed_s, tag=tag, regressor_order=reader.build_info.get("regressor_order"),
            smplx_regressor_order=reader.build_info.get("smplx_regressor_order"),
            body_models_used=dict(reader.build_info.get("body_models_used") or {}),
            notes=list(reader.build_info.get("notes") or []), n_trimmed_views=n_trimmed_views, n_hashed=n_hashed,
            recomputed_keys=recomputed_keys, timings=timings, n_status_refreshed=n_status_refreshed)

    def _status(self) -> str:
        if not self.up_to_date:
            return "committed"
        if self.n_status_refreshed:
            return f"up to date (nothing recomputed; file status of {self.n_status_refreshed} sources committed)"
        return "up to date (nothing recomputed, nothing committed)"

    def summary_rows(self) -> list[tuple[str, str]]:
        """(field, value) rows for the CLI table and the flows' artifact."""
        rows = [("corpus", self.corpus), ("version", self.version_id),
                ("status", self._status()),
                ("sources", str(self.n_sources)), ("sequences", str(self.n_sequences)),
                ("frames", str(self.n_frames)), ("views", str(self.n_views)),
                ("recomputed / carried over", f"{self.n_recomputed} / {self.n_carried}"),
                ("flagged views (not fully in view)", str(self.n_flagged)),
                ("in-view fraction (frames)", str(round(self.in_view_fraction, 4))),
                ("out-of-view fraction (2D joints)", str(round(self.out_of_view_fraction, 6))),
                ("rejects", str(len(self.rejects))), ("elapsed", f"{self.elapsed_s:.1f} s")]
        if self.n_trimmed_views:
            rows.insert(-2, ("trimmed views (2D cut to the 3D length)", str(self.n_trimmed_views)))
        if self.regressor_order:
            rows.insert(-2, ("regressor rows", self.regressor_order.get("message", "")))
        if self.smplx_regressor_order:
            rows.insert(-2, ("regressor rows (SMPL-X)", self.smplx_regressor_order.get("message", "")))
        if self.body_models_used:
            rows.insert(-2, ("body models (sequences)", ", ".join(f"{k} {v}" for k, v in self.body_models_used.items())))
        if self.notes:
            rows.insert(-2, ("notes", str(len(self.notes))))
        if self.tag:
            rows.insert(2, ("tag", self.tag))
        return rows
