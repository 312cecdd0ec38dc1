"""The AMASS corpus build: every source file through the per-sequence pipeline (``pipelines.sequence``),
fanned out on Dask (``pipelines.fanout``), written in key order into one corpus commit.

A rebuild recomputes only sources whose (sha256, config hash) changed and carries the others over from
the parent version (``pipelines.rebuild``); when nothing changed it commits nothing. The store layout
of a rebuild is exactly that of a fresh build of the same inputs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal

from pydantic import BaseModel, Field

from pipelines.build_result import BuildResult
from pipelines.fanout import fan_out
from pipelines.hashing import json_hash, sha256_file
from pipelines.rebuild import RebuildPlan, Source, body_model_hashes, list_sources, parent_reader, plan_rebuild
from pipelines.sequence import PIPELINE_VERSION, REGRESSOR_FILE, camera_pool, process_source, resolved_regressor
from schemas.errors import ConfigError, VersionConflictError
from schemas.faults import fault_point
from schemas.reader import CorpusReader
from schemas.records import Reject, SequenceData
from schemas.skeletons import H36M_17
from schemas.storage import CorpusLocation
from schemas.store import STORE_FORMAT

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 3  # builds started again on top of a version another build committed first

# progress(done, total, info): info has source_frames, elapsed_s, source_fps, rejects
Progress = Callable[[int, int, dict], None]


class BuildConfig(BaseModel):
    """Everything that decides what a build writes. Rendered as a form by the Prefect UI."""

    amass_root: Path = Field(description="AMASS root folder (<root>/<Dataset>/<Subject>/*.npz)")
    body_models: Path = Field(description="folder with smplh/{gender}/model.npz and dmpls/{gender}/model.npz")
    regressor: Path | None = Field(None, description="(N, 6890) joint regressor; default BODY_MODELS/J_regressor_h36m.npy")
    corpus: CorpusLocation = Field(description="corpus repository: a local folder or s3://bucket/prefix")
    tag: str | None = Field(None, description="tag for the committed version, e.g. amass-h36m-v1")
    rig: Literal["h36m", "3dhp"] = "h36m"
    placement: Literal["rig", "raw"] = Field(
        "rig", description="rig: each sequence turned (seeded yaw), moved into the rig's capture volume and cut "
                           "where no placement keeps it in view; raw: stored as the mocap world has it, uncut "
                           "(the authors' pre-training projects it so, see uplift placement 'raw')")
    calibration: Path | None = Field(None, description="MPI-INF-3DHP camera.calibration file (rig 3dhp): its "
                                                       "cameras replace the shipped 3DHP figures")
    cameras_per_sequence: int = Field(4, ge=1, le=14)
    fps: float = Field(50.0, gt=0)
    seed: int = 0
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="share of sequences put in the val split (by key hash)")
    scheduler: str | None = Field(None, description="Dask scheduler address; default: a LocalCluster")
    n_workers: int = Field(2, ge=1)
    regressor_order: Literal["auto", "as-is"] = Field(
        "auto", description="auto: check the regressor's left/right rows on the body model's template and "
                            "swap mismatched pairs; as-is: trust the file's row order")
    max_in_flight: int = Field(0, ge=0, description="futures in flight (0: 4 per worker)")

    def regressor_path(self) -> Path:
        return Path(self.regressor) if self.regressor else Path(self.body_models) / REGRESSOR_FILE

    def data_settings(self) -> dict:
        """The settings that shape per-sequence data (not where things live). ``placement`` appears only
        when not the default, so that versions built before it existed keep their config hash."""
        settings = {"rig": self.rig, "calibration": str(self.calibration) if self.calibration else None,
                    "cameras_per_sequence": self.cameras_per_sequence, "fps": self.fps,
                    "seed": self.seed, "val_fraction": self.val_fraction, "pipeline": PIPELINE_VERSION,
                    "store_format": STORE_FORMAT}
        if self.placement != "rig":
            settings["placement"] = self.placement
        return settings


@dataclass
class _Inputs:
    """The checked inputs of one build: what every source shares, fingerprinted."""

    regressor: Path
    reg_order: object  # pipelines.body_model.RegressorOrder
    model_shas: dict[str, str]
    settings: dict  # data_settings() (+ calibration_sha256) + regressor_order: what the workers get
    config_hash: str  # of everything that shapes the data


def build_amass(cfg: BuildConfig, progress: Progress | None = None) -> BuildResult:
    """Build (or incrementally rebuild) the AMASS corpus described by ``cfg``; one commit or none.

    When another build commits to the same corpus first, the build starts again on top of that new
    version (carrying over whatever it can), up to ``COMMIT_ATTEMPTS`` times, then reports the conflict.
    """
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return _build_once(cfg, progress)
        except VersionConflictError as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("build: %s; rebuilding on top of it (attempt %d of %d)", exc, attempt + 1, COMMIT_ATTEMPTS)
    raise AssertionError("unreachable")


def _check_inputs(cfg: BuildConfig) -> _Inputs:
    """Problems shared by every source fail here, before anything is computed or committed: the
    folders, the body models, the regressor and its left/right order (workers reuse the resolution)."""
    regressor = cfg.regressor_path()
    if not Path(cfg.amass_root).is_dir():
        raise ConfigError(f"{cfg.amass_root}: AMASS root is not a directory")
    if not regressor.is_file():
        raise ConfigError(f"{regressor}: joint regressor not found (pass --regressor)")
    if not Path(cfg.body_models).is_dir():
        raise ConfigError(f"{cfg.body_models}: body-model folder not found")
    _, reg_order = resolved_regressor(str(regressor), str(cfg.body_models), cfg.regressor_order)
    if reg_order.swapped_pairs:
        log.warning("build: %s: %s", regressor, reg_order.message)
    model_shas = body_model_hashes(cfg.body_models)
    settings = cfg.data_settings()
    if cfg.calibration is not None:
        if cfg.rig != "3dhp":
            raise ConfigError("--calibration is a 3dhp camera.calibration file: use it with --rig 3dhp")
        camera_pool(str(cfg.calibration))  # a malformed file fails the build here, with its reason
        settings["calibration_sha256"] = sha256_file(cfg.calibration)
    config_hash = json_hash({**settings, "regressor": reg_order.sha256, "regressor_perm": list(reg_order.perm),
                             "body_models": model_shas})
    # what the workers need besides; the applied permutation (in the hash) is what shapes the data
    settings = {**settings, "regressor_order": cfg.regressor_order}
    return _Inputs(regressor, reg_order, model_shas, settings, config_hash)


def build_info(cfg: BuildConfig, inputs: _Inputs, notes: list[str]) -> dict:
    """The version's ``build_info``: how it was built (the writer adds the store format, joint set,
    fps and package version). Read back by rebuilds (``config_hash``) and results (order, notes)."""
    return {"config": json.loads(cfg.model_dump_json()), "settings": inputs.settings,
            "config_hash": inputs.config_hash, "body_model_sha256": inputs.model_shas,
            "regressor_sha256": inputs.reg_order.sha256, "regressor_order": inputs.reg_order.as_dict(),
            "pipeline_version": PIPELINE_VERSION, "notes": list(notes)}


def _build_once(cfg: BuildConfig, progress: Progress | None) -> BuildResult:
    from pipelines.versions import tag_if_new
    from pipelines.writer import CorpusWriter

    t0 = time.perf_counter()
    inputs = _check_inputs(cfg)
    # A source's identity is its resolved path: ./amass, amass/ and /abs/amass name the same files.
    sources, unreadable = list_sources(Path(cfg.amass_root).resolve())
    parent = parent_reader(cfg.corpus)
    plan = plan_rebuild(sources, unreadable, parent, inputs.config_hash)
    if plan.up_to_date:
        if cfg.tag:
            tag_if_new(cfg.corpus, parent.version_id, cfg.tag)
        return BuildResult.from_reader(parent, corpus=cfg.corpus, n_sources=len(sources), up_to_date=True,
                                       elapsed_s=time.perf_counter() - t0, tag=cfg.tag,
                                       n_carried=parent.sequences.num_rows)

    log.info("build: %d sources, %d to compute, %d carried over", len(sources), len(plan.todo), len(plan.carried))
    writer = CorpusWriter(cfg.corpus, num_joints=H36M_17.num_joints, joint_set=H36M_17.name, fps=cfg.fps)
    stats = _Stats()
    results = _compute(cfg, inputs, plan.todo, progress, stats)
    try:
        _write_in_key_order(writer, sources, unreadable, plan, parent, results, stats)
        fault_point("commit")
        version = writer.commit(f"build-amass: {len(sources)} sources, {stats.recomputed} recomputed",
                                tag=cfg.tag, build_info=build_info(cfg, inputs, stats.notes))
    except BaseException:
        writer.abort()
        raise
    finally:
        results.close()  # stops the Dask cluster
    return BuildResult.from_reader(CorpusReader.open(cfg.corpus, version), corpus=cfg.corpus,
                                   n_sources=len(sources), up_to_date=False, elapsed_s=time.perf_counter() - t0,
                                   tag=cfg.tag, n_recomputed=stats.recomputed, n_carried=stats.carried,
                                   source_frames=stats.source_frames)


def _write_in_key_order(writer, sources: list[Source], unreadable: dict[str, Reject], plan: RebuildPlan,
                        parent: CorpusReader | None, results: Iterator, stats: "_Stats") -> None:
    """Recomputed, carried-over and known-bad sources in global key order: a rebuild lays out the
    store exactly as a fresh build would. ``results`` yields ``plan.todo``'s results in its order."""
    todo_keys = {s.key for s in plan.todo}
    for src in sorted(sources, key=lambda s: s.key):
        if src.path in unreadable:
            writer.reject(unreadable[src.path])
            stats.rejects.append(unreadable[src.path])
        elif src.path in plan.reused_rejects:
            writer.reject(plan.reused_rejects[src.path])
        elif src.key in todo_keys:
            result = next(results)
            if isinstance(result, Reject):
                writer.reject(result)
                stats.rejects.append(result)
                continue
            stats.notes.extend(result.notes)
            for seq in result:
                fault_point("write")
                writer.add(seq)
                stats.add(seq)
        elif src.key in plan.carried:
            for seg_key in plan.carried[src.key]:
                writer.add_from(parent, seg_key)
                stats.carried += 1


def _compute(cfg: BuildConfig, inputs: _Inputs, todo: list[Source], progress: Progress | None,
             stats: "_Stats") -> Iterator:
    """Yield per-source results in ``todo``'s order, computed on Dask, reporting progress as they come."""
    jobs = [(s.path, s.key, s.dataset, s.subject, s.name, s.sha256, str(cfg.body_models), str(inputs.regressor),
             inputs.settings, inputs.config_hash) for s in todo]
    t_start = time.perf_counter()
    results = fan_out(process_source, jobs, scheduler=cfg.scheduler, n_workers=cfg.n_workers,
                      max_in_flight=cfg.max_in_flight)
    try:
        for i, result in enumerate(results, 1):
            yield result
            if progress is not None or i % 50 == 0 or i == len(jobs):
                elapsed = time.perf_counter() - t_start
                info = {"source_frames": stats.source_frames, "elapsed_s": elapsed,
                        "source_fps": stats.source_frames / max(elapsed, 1e-9), "rejects": len(stats.rejects)}
                if progress is not None:
                    progress(i, len(jobs), info)
                if i % 50 == 0 or i == len(jobs):
                    log.info("build: %d/%d sources, %d source frames at %.0f frames/s, %d rejects",
                             i, len(jobs), info["source_frames"], info["source_fps"], info["rejects"])
    finally:
        results.close()


@dataclass
class _Stats:
    recomputed: int = 0
    carried: int = 0
    source_frames: int = 0
    rejects: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    _seen_sources: set = field(default_factory=set)

    def add(self, seq: SequenceData):
        if seq.source_path not in self._seen_sources:
            self._seen_sources.add(seq.source_path)
            self.recomputed += 1
            self.source_frames += int(seq.n_source_frames)
