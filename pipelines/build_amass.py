"""The AMASS corpus build: every source file through the per-sequence pipeline (``pipelines.sequence``),
fanned out on Dask (``pipelines.fanout``), written into one corpus commit.

Sources, in key order, are cut into shards of about ``shard_mb`` of source bytes. A worker computes a
shard (or carries its sequences over from the parent version) and keeps it; the driver gets a summary
(manifest rows, cameras, counts), gives the shard its chunk-aligned rows, and the worker writes the
frames there through a fork of the build's Icechunk session (``pipelines.forked_writer``); the driver
merges the forks and commits once. Frames never pass through the driver.

A rebuild recomputes only sources whose (sha256, config hash) changed and carries the others over from
the parent version (``pipelines.rebuild``); when nothing changed it commits nothing, and it finds that
out from file status alone (size, mtime, inode of sources and input files), reading no source byte
(``verify``: hash everything). The store layout of a rebuild is exactly that of a fresh build of the
same inputs.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field

from pipelines.build_result import BuildResult, on_top_of_conflicts
from pipelines.fanout import dask_cluster, held_results, n_workers_of
from pipelines.hashing import json_hash
from pipelines.rebuild import (RebuildPlan, Source, body_model_hashes, file_status, list_sources, parent_reader,
                               plan_rebuild)
from pipelines.sequence import (PIPELINE_VERSION, REGRESSOR_FILE, WorkerSettings, default_deftrafo, model_families,
                                process_source, resolved_regressor, resolved_smplx_regressor, smplx_regressor_missing)
from schemas import manifests as M
from schemas.bounds import TARGET_FPS
from schemas.errors import ConfigError, RegressorError
from schemas.reader import CorpusReader
from schemas.records import Reject
from schemas.versions import check_tag_name, tag_if_new
from schemas.skeletons import H36M_17
from schemas.storage import CorpusLocation
from schemas.store import STORE_FORMAT

log = logging.getLogger(__name__)

# progress(done, total, info): info has source_frames, elapsed_s, source_fps, rejects
ProgressCallback = Callable[[int, int, dict], None]


class BuildConfig(BaseModel):
    """Everything that decides what a build writes. Rendered as a form by the Prefect UI."""

    amass_root: Path = Field(description="AMASS root folder (<root>/<Dataset>/<Subject>/*.npz)")
    body_models: Path = Field(description="folder with smplh/{gender}/model.npz, dmpls/{gender}/model.npz and/or "
                                          "smplx/{gender}/model.npz")
    regressor: Path | None = Field(None, description="(N, 6890) joint regressor; default BODY_MODELS/J_regressor_h36m.npy")
    deftrafo: Path | None = Field(None, description="SMPL-X -> SMPL deformation transfer (smplx2smpl_deftrafo_setup.pkl) "
                                                    "for SMPL-X sequences; default BODY_MODELS/transfer/"
                                                    "smplx2smpl_deftrafo_setup.pkl when present")
    smplx_regressor: Path | None = Field(None, description="ready (17, 10475) H36M regressor for SMPL-X meshes "
                                                           "(instead of the regressor composed with the transfer)")
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
    fps: float = Field(50.0, ge=TARGET_FPS[0], le=TARGET_FPS[1], description="target frame rate, Hz")
    seed: int = 0
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="share of sequences put in the val split (by key hash)")
    scheduler: str | None = Field(None, description="Dask scheduler address; default: a LocalCluster")
    n_workers: int = Field(2, ge=1, le=1024)
    regressor_order: Literal["auto", "as-is"] = Field(
        "auto", description="auto: check the regressor's left/right rows on the body model's template and "
                            "swap mismatched pairs; as-is: trust the file's row order")
    max_in_flight: int = Field(0, ge=0, le=100_000, description="shards computed and held at a time (0: 2 per worker)")
    shard_mb: float = Field(64.0, gt=0, le=1e7, description="source megabytes per worker task (a shard); shards "
                                                              "start on a chunk boundary, so fewer, bigger shards pad less")
    verify: bool = Field(False, description="hash every source and input file instead of trusting an "
                                            "unchanged file status (size, mtime, inode)")

    def regressor_path(self) -> Path:
        return Path(self.regressor) if self.regressor else Path(self.body_models) / REGRESSOR_FILE

    def deftrafo_path(self) -> Path | None:
        """The deformation transfer: the one given, else the body-model folder's when it has one, else None."""
        if self.deftrafo:
            return Path(self.deftrafo)
        found = default_deftrafo(self.body_models)
        return Path(found) if found else None

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
    reg_order: object  # pipelines.regressor_order.RegressorOrder of SMPL+H sequences, None without SMPL+H models
    model_shas: dict[str, str]
    settings: WorkerSettings  # what the workers get (and build_info records)
    config_hash: str  # of everything that shapes the data
    smplx_order: object = None  # RegressorOrder of SMPL-X sequences (through the deformation transfer), or None
    smplx_missing: str | None = None  # why SMPL-X sequences cannot be regressed (they become reject rows)


def build_amass(cfg: BuildConfig, progress: ProgressCallback | None = None) -> BuildResult:
    """Build (or incrementally rebuild) the AMASS corpus described by ``cfg``; one commit or none.

    When another build commits to the same corpus first, the build starts again on top of that new
    version (carrying over whatever it can), up to ``COMMIT_ATTEMPTS`` builds, then reports the conflict
    (``pipelines.build_result.on_top_of_conflicts``).
    """
    return on_top_of_conflicts(lambda: _build_once(cfg, progress))


def _check_inputs(cfg: BuildConfig) -> _Inputs:
    """Problems shared by every source fail here, before anything is computed or committed: the
    folders, the body models, the regressors and their left/right order (workers reuse the resolution).

    Per family found below the body-model folder: SMPL+H sequences use the (17, 6890) regressor checked
    on the SMPL+H templates; SMPL-X sequences the same regressor composed with the deformation transfer
    (checked: shape, finite, row sums; then its sides on the SMPL-X templates), or a ready (17, 10475)
    ``smplx_regressor``. A family whose inputs are missing leaves its sequences as reject rows that
    say what is missing; a bad file refuses the whole build.
    """
    regressor = cfg.regressor_path()
    if not Path(cfg.amass_root).is_dir():
        raise ConfigError(f"{cfg.amass_root}: AMASS root is not a directory")
    if not Path(cfg.body_models).is_dir():
        raise ConfigError(f"{cfg.body_models}: body-model folder not found")
    for name, given in (("--deftrafo", cfg.deftrafo), ("--smplx-regressor", cfg.smplx_regressor)):
        if given is not None and not Path(given).is_file():
            raise ConfigError(f"{given}: {name} file not found")
    families = model_families(cfg.body_models)
    if not families:
        raise ConfigError(f"{cfg.body_models}: no body models (smplh/{{male,female,neutral}}/model.npz or "
                          "smplx/{male,female,neutral}/model.npz) below this folder")
    deftrafo = cfg.deftrafo_path()
    uses_file = "smplh" in families or "smpl" in families or ("smplx" in families and cfg.smplx_regressor is None
                                                             and deftrafo is not None)
    if uses_file and not regressor.is_file():
        raise ConfigError(f"{regressor}: joint regressor not found (pass --regressor)")
    reg_order = smplx_order = smplx_missing = None
    if "smplh" in families or "smpl" in families:
        _, reg_order = resolved_regressor(str(regressor), str(cfg.body_models), cfg.regressor_order)
        if reg_order.swapped_pairs:
            log.info("build: %s: %s", regressor, reg_order.message)  # reported once, in the result
    if "smplx" in families:
        if cfg.smplx_regressor is None and deftrafo is None:
            smplx_missing = smplx_regressor_missing(cfg.body_models)
            log.info("build: %s", smplx_missing)  # each such file is a reject row
        else:
            _, smplx_order = resolved_smplx_regressor(cfg.body_models, regressor, cfg.regressor_order, deftrafo,
                                                      cfg.smplx_regressor)
            if (reg_order is not None and cfg.smplx_regressor is None and cfg.regressor_order == "auto"
                    and smplx_order.perm != reg_order.perm):
                raise RegressorError(regressor, "the SMPL+H and SMPL-X templates disagree on which rows are left "
                                                f"and right ({reg_order.message}; SMPL-X: {smplx_order.message})")
    model_shas = body_model_hashes(cfg.body_models)
    settings = cfg.data_settings()
    if cfg.calibration is not None:
        if cfg.rig != "3dhp":
            raise ConfigError("--calibration is a 3dhp camera.calibration file: use it with --rig 3dhp")
        from pipelines.calibration import read_3dhp_calibration

        # a malformed file fails the build here, with its reason; the hash is of the bytes parsed
        settings["calibration_sha256"] = read_3dhp_calibration(cfg.calibration)[1]
    smplx = None if smplx_order is None else {"regressor": smplx_order.sha256, "perm": list(smplx_order.perm),
                                              "deftrafo": smplx_order.deftrafo_sha256}
    config_hash = json_hash({**settings, "regressor": reg_order.sha256 if reg_order else None,
                             "regressor_perm": list(reg_order.perm) if reg_order else None,
                             "smplx_regressor": smplx, "body_models": model_shas})
    # what the workers need besides; the applied permutations and file hashes (in the hash) shape the data
    perms = {fam: list(o.perm) for fam, o in (("smplh", reg_order), ("smplx", smplx_order)) if o is not None}
    worker = WorkerSettings(
        **settings, regressor_order=cfg.regressor_order, perms=perms,
        deftrafo=None if smplx_order is None or cfg.smplx_regressor is not None else str(deftrafo),
        smplx_regressor=None if cfg.smplx_regressor is None else str(cfg.smplx_regressor),
        source_root=str(Path(cfg.amass_root).resolve()))
    return _Inputs(regressor, reg_order, model_shas, worker, config_hash, smplx_order, smplx_missing)


def build_info(cfg: BuildConfig, inputs: _Inputs, notes: list[str], body_models_used: dict | None = None) -> dict:
    """The version's ``build_info``: how it was built (the writer adds the store format, joint set,
    fps and package version). Read back by rebuilds (``config_hash``) and results (order, notes).
    ``body_models_used``: sequences per "family/gender" (e.g. ``{"smplx/neutral": 3}``)."""
    reg, smplx = inputs.reg_order, inputs.smplx_order
    return {"config": json.loads(cfg.model_dump_json()), "settings": inputs.settings.record(),
            "config_hash": inputs.config_hash, "body_model_sha256": inputs.model_shas,
            "regressor_sha256": reg.sha256 if reg else None, "regressor_order": reg.as_dict() if reg else None,
            "smplx_regressor_order": smplx.as_dict() if smplx else None, "smplx_unavailable": inputs.smplx_missing,
            "body_models_used": dict(sorted((body_models_used or {}).items())),
            "pipeline_version": PIPELINE_VERSION, "notes": list(notes)}


def input_fingerprint(cfg: BuildConfig) -> str:
    """A hash of what the config hash is computed from, taken from file status alone: the data
    settings and the (resolved path, size, mtime_ns, inode) of the regressor, every body-model file
    (the deformation transfer below it included), and the calibration, transfer and SMPL-X regressor
    files given. Equal to the parent version's: its config hash holds, nothing is read."""
    files = [cfg.regressor_path(), *sorted(p for p in Path(cfg.body_models).rglob("*")
                                            if p.suffix in (".npz", ".pkl") and p.is_file())]
    files += [Path(p) for p in (cfg.calibration, cfg.deftrafo, cfg.smplx_regressor) if p is not None]
    status = {}
    for f in files:
        try:
            status[str(f.resolve())] = file_status(f.stat())
        except OSError:
            status[str(f)] = None
    return json_hash({"settings": {**cfg.data_settings(), "regressor_order": cfg.regressor_order},
                      "files": status}, length=32)


def _build_once(cfg: BuildConfig, progress: ProgressCallback | None) -> BuildResult:
    t0 = time.perf_counter()
    if cfg.tag is not None:
        check_tag_name(cfg.corpus, cfg.tag)  # before any work (the writer checks the branches again)
    if not Path(cfg.amass_root).is_dir():
        raise ConfigError(f"{cfg.amass_root}: AMASS root is not a directory")
    parent = parent_reader(cfg.corpus)
    fingerprint = input_fingerprint(cfg)
    inputs = None
    if parent is not None and not cfg.verify and parent.build_info.get("input_fingerprint") == fingerprint:
        config_hash = parent.build_info["config_hash"]  # the inputs are unchanged: so is their hash
    else:
        inputs = _check_inputs(cfg)
        config_hash = inputs.config_hash
    # A source's identity is its resolved path: ./amass, amass/ and /abs/amass name the same files.
    known = parent.source_status() if parent is not None and not cfg.verify else {}
    # files the parent has no record of are computed whatever their hash: hashed on the workers
    sources, unreadable = list_sources(Path(cfg.amass_root).resolve(), known, hash_unknown=cfg.verify)
    plan = plan_rebuild(sources, unreadable, parent, config_hash)
    hashed = sum(s.hashed for s in sources)
    if plan.up_to_date:
        version, refreshed = parent.version_id, _stale_status(parent, sources)
        if refreshed:  # re-hashed and unchanged: record their status, so the next rebuild reads nothing
            version = _refresh_status(parent, sources, cfg.tag, len(refreshed))
        elif cfg.tag:
            tag_if_new(cfg.corpus, parent.version_id, cfg.tag)
        log.info("build: up to date (%d sources, %d hashed, status of %d recorded anew)", len(sources), hashed,
                 len(refreshed))
        reader = parent if version == parent.version_id else CorpusReader.open(cfg.corpus, version)
        return BuildResult.from_reader(reader, corpus=cfg.corpus, n_sources=len(sources), up_to_date=True,
                                       elapsed_s=time.perf_counter() - t0, tag=cfg.tag,
                                       n_carried=parent.sequences.num_rows, n_hashed=hashed,
                                       n_status_refreshed=len(refreshed))
    if inputs is None:
        inputs = _check_inputs(cfg)  # something to compute: the workers need the resolved inputs
        if inputs.config_hash != config_hash:  # a file changed without changing its status: trust the bytes
            plan = plan_rebuild(sources, unreadable, parent, inputs.config_hash)
    log.info("build: %d sources (%d hashed), %d to compute, %d carried over", len(sources), hashed,
             len(plan.todo), len(plan.carried))
    stats = _Stats(parent_models=_Stats.models_of(parent) if plan.carried else {})
    version = _write_shards(cfg, inputs, sources, unreadable, plan, parent, fingerprint, stats, progress, t0)
    return BuildResult.from_reader(CorpusReader.open(cfg.corpus, version), corpus=cfg.corpus,
                                   n_sources=len(sources), up_to_date=False, elapsed_s=time.perf_counter() - t0,
                                   tag=cfg.tag, n_recomputed=stats.recomputed, n_carried=stats.carried,
                                   source_frames=stats.source_frames, n_hashed=hashed,
                                   recomputed_keys=stats.recomputed_keys if stats.carried else None,
                                   timings=stats.timings(time.perf_counter() - t0))


def _stale_status(parent: CorpusReader, sources: list[Source]) -> list[str]:
    """Paths whose file status differs from (or is missing in) what ``parent`` recorded."""
    recorded = parent.source_status()
    return [s.path for s in sources if s.status is not None
            and (s.path not in recorded or tuple(recorded[s.path][:3]) != s.status)]


def _refresh_status(parent: CorpusReader, sources: list[Source], tag: str | None, n: int) -> str:
    """Commit ``parent``'s data again with the sources' current file status in its manifests (arrays
    untouched: a metadata-only version). Returns the new version."""
    from pipelines.writer import ManifestRewriter

    status = {s.path: s.status for s in sources}
    with ManifestRewriter(parent) as w:
        for row in (*w.seq_rows, *w.reject_rows):
            row.update(zip(M.SOURCE_STATUS, status.get(row["source_path"]) or (None,) * 3))
        return w.commit(f"build-amass: file status of {n} unchanged sources recorded", tag=tag,
                        build_info=parent.build_info)


# --------------------------------------------------------------------------------------------------
# Shards: what one worker task computes (or carries over) and writes


@dataclass
class _Item:
    """One source in a shard: computed, carried over (``carry``: the parent's sequence keys) or a reject
    known before any work (``reject``)."""

    source: Source
    carry: list[str] | None = None
    reject: Reject | None = None
    unreadable: bool = False  # the reject is new (this build could not read the file), not the parent's


def shard_sources(sources: list[Source], shard_bytes: float) -> list[list[Source]]:
    """``sources`` in key order, cut into consecutive shards of about ``shard_bytes`` source bytes
    (a source bigger than that is a shard of its own). Depends on the sources alone, so a rebuild
    shards (and lays out) exactly as a fresh build of the same files."""
    shards: list[list[Source]] = [[]]
    size = 0
    for s in sorted(sources, key=lambda s: s.key):
        if shards[-1] and size + s.size > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(s)
        size += s.size
    return [sh for sh in shards if sh]


def _items(shard: list[Source], unreadable: dict[str, Reject], plan: RebuildPlan) -> list[_Item]:
    out = []
    for s in shard:
        reject = unreadable.get(s.path) or plan.reused_rejects.get(s.path)
        out.append(_Item(s, carry=None if reject else plan.carried.get(s.key), reject=reject,
                         unreadable=s.path in unreadable))
    return out


@dataclass
class _ShardResult:
    """What a worker holds for one shard: the checked sequences, and per item what became of it."""

    shard: object  # pipelines.forked_writer.Shard
    outcomes: list  # per item: Reject | ("computed", keys, n_source_frames, notes) | ("carried", n) | None
    compute_s: float = 0.0  # worker seconds spent computing (or carrying over) and checking it


def process_source_shard(items: list[_Item], parent_spec: str | None, body_models: str, regressor: str,
                         settings: WorkerSettings, config_hash: str, num_joints: int) -> _ShardResult:
    """Compute (or carry over) every source of one shard, in order. Runs on a worker; a source that
    fails becomes its Reject, as in ``process_source``."""
    from pipelines.forked_writer import Shard
    from pipelines.writer import carried_parts, sequence_parts
    from schemas import store as S

    t0 = time.perf_counter()
    specs = S.ARRAYS
    parts, outcomes = [], []
    for it in items:
        s = it.source
        if it.reject is not None:
            outcomes.append(None)
        elif it.carry is not None:
            reader = _open_parent(parent_spec)
            parts += [carried_parts(reader, k, specs, num_joints) for k in it.carry]
            outcomes.append(("carried", len(it.carry)))
        else:
            # the sha256 recorded is that of the bytes process_source parses (s.sha256: the listing's, if any)
            result = process_source(s.path, s.key, s.dataset, s.subject, s.name, s.sha256,
                                    body_models, regressor, settings, config_hash)
            if isinstance(result, Reject):
                outcomes.append(result)
                continue
            parts += [sequence_parts(seq, specs) for seq in result]
            model = (result[0].body_model, result[0].gender) if result else ("", "")
            outcomes.append(("computed", [seq.key for seq in result],
                             int(result[0].n_source_frames) if result else 0, list(result.notes), model))
    shard = Shard(parts, num_joints)
    return _ShardResult(shard, outcomes, time.perf_counter() - t0)


@functools.lru_cache(maxsize=2)
def _open_parent(spec: str) -> CorpusReader:
    """The parent version (``PATH@SNAPSHOT``), opened once per worker process."""
    from schemas.reader import open_corpus

    return open_corpus(spec)


def shard_summary(result: _ShardResult):
    """(ShardSummary, outcomes, compute seconds): what the driver needs of a held shard (runs on its worker)."""
    return result.shard.summary(), result.outcomes, result.compute_s


def write_source_shard(result: _ShardResult, fork, starts: dict):
    """Write a held shard's frames into ``fork`` at ``starts``; returns (the fork, seconds) (runs on its worker)."""
    from pipelines.forked_writer import write_shard

    t = time.perf_counter()
    fork = write_shard(fork, result.shard, starts)
    return fork, time.perf_counter() - t


def _write_shards(cfg: BuildConfig, inputs: _Inputs, sources: list[Source], unreadable: dict[str, Reject],
                  plan: RebuildPlan, parent: CorpusReader | None, fingerprint: str, stats: "_Stats",
                  progress: ProgressCallback | None, t0: float) -> str:
    """Run the shards on Dask, give each its rows in key order, merge the forks, commit once."""
    from pipelines.forked_writer import ForkedCorpusWriter

    shards = [_items(sh, unreadable, plan) for sh in shard_sources(sources, cfg.shard_mb * 1e6)]
    status = {s.path: s.status for s in sources}
    parent_spec = parent.spec if parent is not None else None
    jobs = [(items, parent_spec, str(cfg.body_models), str(inputs.regressor), inputs.settings, inputs.config_hash,
             H36M_17.num_joints) for items in shards]
    writer = ForkedCorpusWriter(cfg.corpus, num_joints=H36M_17.num_joints, joint_set=H36M_17.name, fps=cfg.fps)
    done = 0

    def place(i: int, summary) -> tuple:
        nonlocal done
        t = time.perf_counter()
        shard_summary_, outcomes, compute_s = summary
        stats.worker_s += compute_s
        for it, outcome in zip(shards[i], outcomes):
            stats.take(it, outcome, writer, status)
        for row in shard_summary_.rows:  # the status the file had when its sha256 was taken (or trusted)
            row.update(zip(M.SOURCE_STATUS, status.get(row["source_path"]) or (None, None, None)))
        starts = writer.add_shard(shard_summary_)
        fork = writer.fork()
        stats.driver_s += time.perf_counter() - t
        done += len(shards[i])
        _report(progress, done, len(sources), stats, t0)
        return fork, starts

    try:
        t = time.perf_counter()
        with dask_cluster(cfg.scheduler, cfg.n_workers) as client:
            stats.clock["cluster_s"] = time.perf_counter() - t  # starting a LocalCluster (not with --scheduler)
            in_flight = cfg.max_in_flight or 2 * n_workers_of(client, cfg.n_workers)
            for _, (fork, write_s) in held_results(client, process_source_shard, jobs, summarize=shard_summary,
                                                   place=place, follow_up=write_source_shard,
                                                   max_in_flight=in_flight, clock=stats.clock):
                t = time.perf_counter()
                writer.merge(fork)
                stats.driver_s += time.perf_counter() - t
                stats.worker_s += write_s
            t = time.perf_counter()
        stats.clock["cluster_s"] += time.perf_counter() - t  # and closing it
        t = time.perf_counter()
        version = writer.commit(f"build-amass: {len(sources)} sources, {stats.recomputed} recomputed",
                                tag=cfg.tag, build_info={**build_info(cfg, inputs, stats.notes, stats.body_models),
                                                         "input_fingerprint": fingerprint})
        stats.driver_s += time.perf_counter() - t
        return version
    except BaseException:
        writer.abort()
        raise


def _report(progress: ProgressCallback | None, done: int, total: int, stats: "_Stats", t0: float) -> None:
    elapsed = time.perf_counter() - t0
    info = {"source_frames": stats.source_frames, "elapsed_s": elapsed,
            "source_fps": stats.source_frames / max(elapsed, 1e-9), "rejects": len(stats.rejects)}
    if progress is not None:
        progress(done, total, info)
    log.info("build: %d/%d sources, %d source frames at %.0f frames/s, %d rejects",
             done, total, info["source_frames"], info["source_fps"], info["rejects"])


@dataclass
class _Stats:
    recomputed: int = 0
    carried: int = 0
    source_frames: int = 0
    rejects: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    body_models: dict = field(default_factory=dict)  # "family/gender" -> sequences written
    parent_models: dict = field(default_factory=dict)  # carried key -> (body_model, gender) in the parent
    recomputed_keys: list = field(default_factory=list)
    driver_s: float = 0.0  # time the driver spent on shards (summaries, rows, forks, merges, commit)
    worker_s: float = 0.0  # time workers spent on shards (computing, carrying over, writing)
    clock: dict = field(default_factory=lambda: {"cluster_s": 0.0, "waited_s": 0.0})

    def timings(self, elapsed_s: float) -> dict:
        """Where a build's time went. ``driver_busy_s``: the driver not waiting for workers, nor starting
        or stopping a LocalCluster (listing, hashing, placing shards, merging, committing): the part
        that does not shrink with more workers."""
        return {"elapsed_s": elapsed_s, "cluster_s": self.clock["cluster_s"], "waited_s": self.clock["waited_s"],
                "driver_shard_s": self.driver_s, "worker_s": self.worker_s,
                "driver_busy_s": elapsed_s - self.clock["cluster_s"] - self.clock["waited_s"]}

    def take(self, item: _Item, outcome, writer, status: dict) -> None:
        """Count one source's outcome; its reject row (if any) goes to ``writer`` in key order."""
        src = item.source
        if item.reject is not None:
            writer.reject(item.reject, status.get(src.path))
            if item.unreadable:
                self.rejects.append(item.reject)
        elif isinstance(outcome, Reject):
            writer.reject(outcome, status.get(src.path))
            self.rejects.append(outcome)
        elif outcome[0] == "carried":
            self.carried += outcome[1]
            for key in item.carry:
                self.count_model(*self.parent_models.get(key, ("", "")))
        else:
            _, keys, n_source_frames, notes, (family, gender) = outcome
            self.notes += notes
            for _ in keys:
                self.count_model(family, gender)
            if keys:
                self.recomputed += 1
                self.source_frames += n_source_frames
                self.recomputed_keys += keys

    def count_model(self, family: str | None, gender: str | None) -> None:
        if family:
            name = f"{family}/{gender}"
            self.body_models[name] = self.body_models.get(name, 0) + 1

    @staticmethod
    def models_of(parent: CorpusReader | None) -> dict:
        """key -> (body_model, gender) of ``parent``'s sequences (older versions: family unknown)."""
        if parent is None:
            return {}
        table = parent.sequences.select(["key", "body_model", "gender"])
        return {r["key"]: (r["body_model"], r["gender"]) for r in table.to_pylist()}
