"""The AMASS corpus build: per-sequence pipeline (read -> regress -> resample -> place/project) and its
Dask fan-out into one corpus commit.

Sequences are submitted in sorted key order and consumed in that order through a bounded window of
in-flight futures, so the store layout is reproducible and memory stays bounded whatever the corpus
size. A rebuild recomputes only sources whose (sha256, config hash) changed and carries the others
over from the parent version; when nothing changed it commits nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal

import numpy as np
from pydantic import BaseModel, Field

from schemas.faults import fault_point
from pipelines.hashing import json_hash, sha256_file
from schemas.records import Reject, SequenceData
from schemas.errors import ConfigError, CorpusError, InputError, VersionConflictError
from schemas.skeletons import H36M_17
from schemas.storage import CorpusLocation, is_url
from schemas.store import STORE_FORMAT

log = logging.getLogger(__name__)

# Bump when the per-sequence math changes: it invalidates every cached sequence.
PIPELINE_VERSION = "amass-1"
REGRESSOR_FILE = "J_regressor_h36m.npy"


class BuildConfig(BaseModel):
    """Everything that decides what a build writes. Rendered as a form by the Prefect UI."""

    amass_root: Path = Field(description="AMASS root folder (<root>/<Dataset>/<Subject>/*.npz)")
    body_models: Path = Field(description="folder with smplh/{gender}/model.npz and dmpls/{gender}/model.npz")
    regressor: Path | None = Field(None, description="(N, 6890) joint regressor; default BODY_MODELS/J_regressor_h36m.npy")
    corpus: CorpusLocation = Field(description="corpus repository: a local folder or s3://bucket/prefix")
    tag: str | None = Field(None, description="tag for the committed version, e.g. amass-h36m-v1")
    rig: Literal["h36m", "3dhp"] = "h36m"
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
        """The settings that shape per-sequence data (not where things live)."""
        return {"rig": self.rig, "calibration": str(self.calibration) if self.calibration else None,
                "cameras_per_sequence": self.cameras_per_sequence, "fps": self.fps,
                "seed": self.seed, "val_fraction": self.val_fraction, "pipeline": PIPELINE_VERSION,
                "store_format": STORE_FORMAT}


@dataclass
class BuildReport:
    corpus: str
    version_id: str
    up_to_date: bool
    n_sources: int
    n_sequences: int
    n_frames: int
    n_views: int
    n_recomputed: int
    n_carried: int
    n_flagged: int  # views that still leave joints out of view in some frame
    source_frames: int  # source frames of recomputed sequences
    rejects: list[Reject] = field(default_factory=list)
    in_view_fraction: float = 1.0  # frames with every joint in view, over all views
    out_of_view_fraction: float = 0.0  # 2D joints outside the image, over all view frames
    elapsed_s: float = 0.0
    tag: str | None = None
    regressor_order: dict | None = None  # RegressorOrder.as_dict() of the build that wrote the version
    notes: list[str] = field(default_factory=list)  # per-source notes, e.g. zero extra betas dropped

    def summary_rows(self) -> list[tuple[str, str]]:
        rows = [("corpus", self.corpus), ("version", self.version_id),
                ("status", "up to date (nothing recomputed, nothing committed)" if self.up_to_date else "committed"),
                ("sources", str(self.n_sources)), ("sequences", str(self.n_sequences)),
                ("frames", str(self.n_frames)), ("views", str(self.n_views)),
                ("recomputed / carried over", f"{self.n_recomputed} / {self.n_carried}"),
                ("flagged views (not fully in view)", str(self.n_flagged)),
                ("in-view fraction (frames)", f"{self.in_view_fraction:.4f}"),
                ("out-of-view fraction (2D joints)", f"{self.out_of_view_fraction:.6f}"),
                ("rejects", str(len(self.rejects))), ("elapsed", f"{self.elapsed_s:.1f} s")]
        if self.regressor_order:
            rows.insert(-2, ("regressor rows", self.regressor_order.get("message", "")))
        if self.notes:
            rows.insert(-2, ("notes", str(len(self.notes))))
        if self.tag:
            rows.insert(2, ("tag", self.tag))
        return rows


# ---------------------------------------------------------------------------------------------
# Hashing


def _sequence_seed(seed: int, key: str) -> np.random.Generator:
    """A generator per sequence that depends on (seed, key) only, never on build order."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _split_for(key: str, val_fraction: float) -> str:
    if val_fraction <= 0:
        return "train"
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") / 2**32
    return "val" if u < val_fraction else "train"


# ---------------------------------------------------------------------------------------------
# Per-sequence pipeline (runs on Dask workers)


@functools.lru_cache(maxsize=8)
def _body_models(root: str, model_type: str):
    from pipelines.body_model import load_body_models

    return load_body_models(root, model_type=model_type)


@functools.lru_cache(maxsize=4)
def _camera_pool(calibration: str | None):
    from pipelines.calibration import parse_3dhp_calibration

    return parse_3dhp_calibration(calibration) if calibration else None


@functools.lru_cache(maxsize=4)
def _regressor(path: str):
    from pipelines.body_model import load_regressor

    return load_regressor(path)


def all_body_models(root: str | os.PathLike) -> list:
    """Every body model below ``root`` (smplh / smplx / smpl folders that exist); a broken file raises."""
    from schemas.errors import BodyModelError

    found = [mt for mt in ("smplh", "smplx", "smpl") if (Path(root) / mt).is_dir()]
    if not found:
        raise BodyModelError(root, "no smplh/, smplx/ or smpl/ body-model folder below this folder")
    return [m for mt in found for m in _body_models(str(root), mt).values()]


def resolved_regressor(path: str, body_models: str, order: str = "auto"):
    """(csr (17, V) in H36M_17 row order, RegressorOrder): the file's rows checked by geometry on
    every body model below ``body_models`` (``order="auto"``) or trusted (``"as-is"``)."""
    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)  # a rewritten file is read again
    except OSError:
        stamp = None  # load_regressor says what is wrong
    return _resolved_regressor(str(path), str(body_models), order, stamp)


@functools.lru_cache(maxsize=4)
def _resolved_regressor(path: str, body_models: str, order: str, stamp):
    from pipelines.body_model import load_regressor
    from pipelines.regressor_order import resolve_regressor_order

    return resolve_regressor_order(load_regressor(path), all_body_models(body_models), order=order, path=path,
                                   sha256=sha256_file(path))


def fit_betas(betas, model, path) -> tuple[np.ndarray, str | None]:
    """Betas (B,) cut to the model's S shape directions when the extra ones are all zero.

    Returns (betas, note or None); raises AmassFormatError when a non-zero beta would be dropped.
    """
    from schemas.errors import AmassFormatError

    b = np.asarray(betas, dtype=np.float64).ravel()
    S = model.num_betas
    if len(b) <= S:
        return b, None
    extra = b[S:]
    if not np.any(extra):
        return b[:S], (f"{path}: {len(b)} betas, the {len(b) - S} beyond the {model.model_type} model's {S} "
                       f"shape directions are all zero: used the first {S}")
    raise AmassFormatError(path, f"{len(b)} betas but the {model.model_type} model has {S} shape directions and "
                                 f"betas {S}..{len(b) - 1} are not zero (max |beta| {np.abs(extra).max():.3g})")


def body_model_for(root: str | os.PathLike, model_type: str, gender: str):
    from schemas.errors import BodyModelError

    try:
        models = _body_models(str(root), model_type)
    except BodyModelError:
        raise
    except FileNotFoundError as exc:
        raise BodyModelError(root, f"no {model_type} body models: {exc}") from None
    if gender not in models:
        raise BodyModelError(root, f"no {model_type} body model for gender {gender!r} (have {sorted(models)})")
    return models[gender]


def sequence_joints(seq, body_models: str | os.PathLike, regressor: str | os.PathLike, fps: float,
                    regressor_order: str = "auto", notes: list | None = None) -> np.ndarray:
    """Regressed joints of one AMASS sequence at ``fps``: (T', N, 3) float32 metres, world frame.

    The regressor's rows are put in H36M_17 order first (:func:`resolved_regressor`). Only the source
    frames that the linear resampling touches are regressed. Notes (dropped zero betas) go to ``notes``.
    """
    from pipelines.regress import JointRegressor
    from pipelines.resample import apply_plan, plan_resample

    reg, _ = resolved_regressor(str(regressor), str(body_models), regressor_order)
    model = body_model_for(body_models, seq.model_type, seq.gender)
    if reg.shape[1] != model.v_template.shape[0]:
        raise InputError(regressor, f"regressor has {reg.shape[1]} columns but the {seq.model_type} model "
                                    f"has {model.v_template.shape[0]} vertices")
    if seq.dmpls is not None and model.dmpldirs is None:
        from schemas.errors import BodyModelError

        raise BodyModelError(body_models, f"the {seq.model_type} {seq.gender} model has no DMPL basis "
                                          f"(dmpls/{seq.gender}/model.npz) but this file has 'dmpls'")
    betas, note = fit_betas(seq.betas, model, seq.path)
    if note and notes is not None:
        notes.append(note)
    plan = plan_resample(seq.n_frames, seq.fps, fps)
    joints = JointRegressor.from_model(model, reg, betas)(
        seq.poses[plan.needed], seq.trans[plan.needed],
        None if seq.dmpls is None else seq.dmpls[plan.needed])
    return apply_plan(plan, joints).astype(np.float32, copy=False)


class SourceResult(list):
    """The SequenceData of one source, plus ``notes`` (one line each) for the build report."""

    def __init__(self, items=(), notes=()):
        super().__init__(items)
        self.notes = list(notes)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def process_source(path: str, key: str, dataset: str, subject: str, name: str, sha256: str,
                   body_models: str, regressor: str, settings: dict, config_hash: str) -> list[SequenceData] | Reject:
    """Read -> regress -> resample -> place/project one source file. Whatever goes wrong with this
    one file (bad input or an unexpected error) returns a Reject with a one-line reason."""
    from pipelines.amass import read_amass
    from pipelines.placement import place_and_project

    notes: list[str] = []
    try:
        seq = read_amass(path)
        joints = sequence_joints(seq, body_models, regressor, settings["fps"],
                                 settings.get("regressor_order", "auto"), notes)
        segments = place_and_project(joints, rig=settings["rig"],
                                     cameras_per_sequence=settings["cameras_per_sequence"],
                                     rng=_sequence_seed(settings["seed"], key),
                                     camera_pool=_camera_pool(settings.get("calibration")))
    except InputError as exc:
        # an error about another file (the body model, the regressor) names that file in the reason
        reason = exc.reason if exc.path == path else f"{exc.path}: {exc.reason}"
        return Reject(source_path=path, reason=reason, kind=exc.kind, source_sha256=sha256)
    except Exception as exc:  # noqa: BLE001 - one source must never take the build down
        log.warning("build: %s failed: %s", path, _one_line(exc))
        return Reject(source_path=path, reason=f"failed while building: {_one_line(exc)}", kind="error",
                      source_sha256=sha256)
    out = SourceResult(notes=notes)
    for i, seg in enumerate(segments):
        seg_key = key if len(segments) == 1 else f"{key}#{i:03d}"
        out.append(SequenceData(
            key=seg_key, source="amass", joints_world=seg.joints_world, views=seg.views,
            dataset=dataset, subject=subject, name=name, action="", source_path=path,
            source_sha256=sha256, gender=seq.gender, betas=np.asarray(seq.betas, np.float32),
            source_fps=float(seq.fps), fps=float(settings["fps"]), n_source_frames=seq.n_frames,
            split=_split_for(key, settings["val_fraction"]), config_hash=config_hash))
    return out


# ---------------------------------------------------------------------------------------------
# Fan-out


@dataclass
class _Source:
    path: str
    key: str
    dataset: str
    subject: str
    name: str
    sha256: str


def _dask_client(scheduler: str | None, n_workers: int):
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="30s"), None
    # ":0": the scheduler's HTTP server (started even without a dashboard) takes a free port, so two
    # builds never compete for 8787 ("Port 8787 is already in use"); no Bokeh dashboard either way.
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                           silence_logs=logging.WARNING)
    return Client(cluster), cluster


def _ordered_results(client, fn, jobs: list[tuple], max_in_flight: int) -> Iterator:
    """Submit ``fn(*job)`` for each job and yield results in job order, with bounded futures in flight."""
    pending: deque = deque()
    it = iter(jobs)
    for job in it:
        pending.append(client.submit(fn, *job, pure=False))
        if len(pending) >= max_in_flight:
            break
    while pending:
        fut = pending.popleft()
        result = fut.result()
        fut.release()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(client.submit(fn, *nxt, pure=False))
        yield result


def _parent_reader(corpus: Path):
    from schemas.reader import CorpusReader

    if not is_url(corpus) and not Path(corpus).exists():
        return None
    try:
        return CorpusReader.open(corpus)
    except CorpusError:
        return None


COMMIT_ATTEMPTS = 3


def build_amass(cfg: BuildConfig, progress: Callable[[int, int, dict], None] | None = None) -> BuildReport:
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


def _build_once(cfg: BuildConfig, progress) -> BuildReport:
    from pipelines.writer import CorpusWriter

    t0 = time.perf_counter()
    regressor = cfg.regressor_path()
    if not Path(cfg.amass_root).is_dir():
        raise ConfigError(f"{cfg.amass_root}: AMASS root is not a directory")
    if not regressor.is_file():
        raise ConfigError(f"{regressor}: joint regressor not found (pass --regressor)")
    if not Path(cfg.body_models).is_dir():
        raise ConfigError(f"{cfg.body_models}: body-model folder not found")
    # Problems shared by every source fail here, before anything is computed or committed: the body
    # models, the regressor and its left/right order (workers reuse the same resolution).
    _, reg_order = resolved_regressor(str(regressor), str(cfg.body_models), cfg.regressor_order)
    if reg_order.swapped_pairs:
        log.warning("build: %s: %s", regressor, reg_order.message)

    # A source's identity is its resolved path: ./amass, amass/ and /abs/amass name the same files.
    sources, unreadable = _list_sources(Path(cfg.amass_root).resolve())
    reg_sha = reg_order.sha256
    model_shas = _body_model_hashes(cfg.body_models)
    settings = cfg.data_settings()
    if cfg.calibration is not None:
        if cfg.rig != "3dhp":
            raise ConfigError("--calibration is a 3dhp camera.calibration file: use it with --rig 3dhp")
        _camera_pool(str(cfg.calibration))  # a malformed file fails the build here, with its reason
        settings["calibration_sha256"] = sha256_file(cfg.calibration)
    config_hash = json_hash({**settings, "regressor": reg_sha, "regressor_perm": list(reg_order.perm),
                             "body_models": model_shas})
    # what the workers need besides; the applied permutation (in the hash) is what shapes the data
    settings = {**settings, "regressor_order": cfg.regressor_order}
    # the writer adds the store format, joint set, fps and package version itself
    build_info = {"config": json.loads(cfg.model_dump_json()), "settings": settings,
                  "config_hash": config_hash, "body_model_sha256": model_shas, "regressor_sha256": reg_sha,
                  "regressor_order": reg_order.as_dict(), "pipeline_version": PIPELINE_VERSION}

    parent = _parent_reader(cfg.corpus)
    carried, todo = _partition(sources, parent, config_hash)
    # An unchanged bad file fails the same way again: keep its reject row instead of re-reading it.
    old_rejects = _parent_rejects(parent) if parent_config(parent) == config_hash else {}
    reused_rejects = {s.path: old_rejects[s.path] for s in todo
                      if s.path in old_rejects and old_rejects[s.path].source_sha256 == s.sha256}
    todo = [s for s in todo if s.path not in reused_rejects and s.path not in unreadable]

    if parent is not None and not todo and _same_sources(parent, sources):
        if cfg.tag:
            _tag_if_new(cfg.corpus, parent.version_id, cfg.tag)
        return _report_from_reader(parent, cfg, len(sources), up_to_date=True, elapsed=time.perf_counter() - t0)

    log.info("build: %d sources, %d to compute, %d carried over", len(sources), len(todo), len(carried))
    writer = CorpusWriter(cfg.corpus, num_joints=H36M_17.num_joints, joint_set=H36M_17.name, fps=cfg.fps)
    stats = _Stats()
    try:
        results = _compute(cfg, todo, settings, config_hash, str(regressor), progress, stats)
        # Recomputed, carried-over and known-bad sources in global key order: a rebuild lays out
        # the store exactly as a fresh build would.
        todo_keys = {s.key for s in todo}
        for src in sorted(sources, key=lambda s: s.key):
            if src.path in unreadable:
                writer.reject(unreadable[src.path])
                stats.rejects.append(unreadable[src.path])
            elif src.path in reused_rejects:
                writer.reject(reused_rejects[src.path])
            elif src.key in todo_keys:
                result = next(results)
                if isinstance(result, Reject):
                    writer.reject(result)
                    stats.rejects.append(result)
                    continue
                stats.notes.extend(getattr(result, "notes", ()))
                for seq in result:
                    fault_point("write")
                    writer.add(seq)
                    stats.add(seq)
            elif src.key in carried:
                for seg_key in carried[src.key]:
                    writer.add_from(parent, seg_key)
                    stats.carried += 1
        fault_point("commit")
        build_info["notes"] = stats.notes
        version = writer.commit(f"build-amass: {len(sources)} sources, {stats.recomputed} recomputed",
                                tag=cfg.tag, build_info=build_info)
    except BaseException:
        writer.abort()
        raise
    reader = _reopen(cfg.corpus, version)
    report = _report_from_reader(reader, cfg, len(sources), up_to_date=False, elapsed=time.perf_counter() - t0)
    report.n_recomputed, report.n_carried, report.source_frames = stats.recomputed, stats.carried, stats.source_frames
    return report


def _list_sources(root: Path) -> tuple[list[_Source], dict[str, Reject]]:
    """Every motion file below ``root`` with its sha256; one that cannot be hashed (a directory named
    ``*.npz``, a FIFO or device, a dangling link or a link loop, no permission) is kept as a source
    with a Reject."""
    from pipelines.amass import iter_amass
    from pipelines.safe_files import check_regular

    sources, unreadable = [], {}
    for s in iter_amass(root):
        path = str(s.path)
        sha, reason = "", ""
        try:
            check_regular(path)  # stat only: a FIFO, a device or a directory is never opened
            sha = sha256_file(path)
        except InputError as exc:  # names what the path is (directory, FIFO, link loop...)
            reason = exc.reason
        except OSError as exc:
            reason = f"cannot be read: {exc.strerror or type(exc).__name__}"
        if reason:
            unreadable[path] = Reject(source_path=path, reason=reason, kind="amass", source_sha256="")
        sources.append(_Source(path, s.key, s.dataset, s.subject, s.name, sha))
    return sources, unreadable


def _compute(cfg: BuildConfig, todo: list[_Source], settings: dict, config_hash: str, regressor: str,
             progress, stats: "_Stats") -> Iterator:
    """Yield per-source results in ``todo``'s key order, computed on Dask."""
    todo = sorted(todo, key=lambda s: s.key)
    if not todo:
        return iter(())
    jobs = [(s.path, s.key, s.dataset, s.subject, s.name, s.sha256, str(cfg.body_models), regressor,
             settings, config_hash) for s in todo]

    def gen():
        client, cluster = _dask_client(cfg.scheduler, cfg.n_workers)
        try:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})) or cfg.n_workers)
            in_flight = cfg.max_in_flight or 4 * n_workers
            t_start = time.perf_counter()
            for i, result in enumerate(_ordered_results(client, process_source, jobs, in_flight), 1):
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
            client.close()
            if cluster is not None:
                cluster.close()

    return gen()


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


def _partition(sources: list[_Source], parent, config_hash: str) -> tuple[dict[str, list[str]], list[_Source]]:
    """Split sources into those whose sequences can be carried over from ``parent`` and those to compute."""
    if parent is None:
        return {}, list(sources)
    by_path = parent.source_index()
    carried, todo = {}, []
    for s in sources:
        rows = by_path.get(s.path, [])
        if rows and all(r["source_sha256"] == s.sha256 and r["config_hash"] == config_hash for r in rows):
            carried[s.key] = [r["key"] for r in rows]
        else:
            todo.append(s)
    return carried, todo


def parent_config(parent) -> str | None:
    return (parent.build_info or {}).get("config_hash") if parent is not None else None


def _parent_rejects(parent) -> dict[str, Reject]:
    if parent is None:
        return {}
    return {r.source_path: r for r in parent.reject_records()}


def _same_sources(parent, sources: list[_Source]) -> bool:
    """True when the parent holds exactly these source files (as sequences or rejects)."""
    return parent.source_paths() == {s.path for s in sources}


def _tag_if_new(corpus, version_id: str, tag: str) -> None:
    from pipelines.versions import resolve_version, tag_version

    try:
        if resolve_version(corpus, tag) == version_id:
            return
    except CorpusError:
        pass
    tag_version(corpus, version_id, tag)


def _reopen(corpus, version):
    from schemas.reader import CorpusReader

    return CorpusReader.open(corpus, version)


def _report_from_reader(reader, cfg: BuildConfig, n_sources: int, up_to_date: bool, elapsed: float) -> BuildReport:
    n_seq = reader.sequences.num_rows
    return BuildReport(
        corpus=str(cfg.corpus), version_id=reader.version_id, up_to_date=up_to_date, n_sources=n_sources,
        n_sequences=n_seq, n_frames=reader.n_frames, n_views=reader.views.num_rows, n_recomputed=0,
        n_carried=n_seq if up_to_date else 0, n_flagged=reader.n_flagged_views(), source_frames=0,
        rejects=reader.reject_records(), in_view_fraction=reader.in_view_fraction(),
        out_of_view_fraction=reader.out_of_view_fraction(), elapsed_s=elapsed, tag=cfg.tag,
        regressor_order=reader.build_info.get("regressor_order"), notes=list(reader.build_info.get("notes") or []))


def _body_model_hashes(root: Path) -> dict[str, str]:
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".npz", ".pkl"))
    return {str(p.relative_to(root)): sha256_file(p) for p in files}

