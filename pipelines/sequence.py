"""One AMASS source file through the per-sequence pipeline: read -> regress -> resample -> place/project.

This is the part of the AMASS build that runs on Dask workers (:func:`process_source`), and the
joint regression the CLI's ``joints`` command uses on its own (:func:`sequence_joints`). Body models,
the regressor and camera pools are loaded once per worker process (``lru_cache``); the regressor's
rows are put in H36M_17 order by geometry before any joint is computed (:func:`resolved_regressor`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from pipelines.hashing import sha256_file
from schemas.errors import AmassFormatError, BodyModelError, InputError
from schemas.records import Reject, SequenceData

log = logging.getLogger(__name__)

# Bump when the per-sequence math changes: it invalidates every cached sequence.
PIPELINE_VERSION = "amass-1"
REGRESSOR_FILE = "J_regressor_h36m.npy"  # looked for in the body-model folder when no regressor is given


# ---------------------------------------------------------------------------------------------
# Per-sequence randomness and split: functions of (seed, key) only, never of build order


def _sequence_rng(seed: int, key: str) -> np.random.Generator:
    """A generator per sequence that depends on (seed, key) only, never on build order."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _split_for(key: str, val_fraction: float) -> str:
    """"val" for a ``val_fraction`` share of keys (by key hash), else "train"."""
    if val_fraction <= 0:
        return "train"
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") / 2**32
    return "val" if u < val_fraction else "train"


# ---------------------------------------------------------------------------------------------
# Body models, regressor and cameras (cached per process)


@functools.lru_cache(maxsize=8)
def _body_models(root: str, model_type: str):
    from pipelines.body_model import load_body_models

    return load_body_models(root, model_type=model_type)


@functools.lru_cache(maxsize=4)
def camera_pool(calibration: str | None):
    """The cameras of a 3DHP ``camera.calibration`` file (None: the rig's shipped cameras)."""
    from pipelines.calibration import parse_3dhp_calibration

    return parse_3dhp_calibration(calibration) if calibration else None


def all_body_models(root: str | os.PathLike) -> list:
    """Every body model below ``root`` (smplh / smplx / smpl folders that exist); a broken file raises."""
    found = [mt for mt in ("smplh", "smplx", "smpl") if (Path(root) / mt).is_dir()]
    if not found:
        raise BodyModelError(root, "no smplh/, smplx/ or smpl/ body-model folder below this folder")
    return [m for mt in found for m in _body_models(str(root), mt).values()]


def body_model_for(root: str | os.PathLike, model_type: str, gender: str):
    """The ``model_type`` body model of ``gender`` below ``root``; BodyModelError names what is missing."""
    try:
        models = _body_models(str(root), model_type)
    except BodyModelError:
        raise
    except FileNotFoundError as exc:
        raise BodyModelError(root, f"no {model_type} body models: {exc}") from None
    if gender not in models:
        raise BodyModelError(root, f"no {model_type} body model for gender {gender!r} (have {sorted(models)})")
    return models[gender]


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


# ---------------------------------------------------------------------------------------------
# Joints of one sequence


def fit_betas(betas, model, path) -> tuple[np.ndarray, str | None]:
    """Betas (B,) cut to the model's S shape directions when the extra ones are all zero.

    Returns (betas, note or None); raises AmassFormatError when a non-zero beta would be dropped.
    """
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


# ---------------------------------------------------------------------------------------------
# One source file (runs on Dask workers)


class SourceResult(list):
    """The SequenceData of one source, plus ``notes`` (one line each) for the build report."""

    def __init__(self, items=(), notes=()):
        super().__init__(items)
        self.notes = list(notes)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def process_source(path: str, key: str, dataset: str, subject: str, name: str, sha256: str,
                   body_models: str, regressor: str, settings: dict, config_hash: str) -> SourceResult | Reject:
    """Read -> regress -> resample -> place/project one source file. Whatever goes wrong with this
    one file (bad input or an unexpected error) returns a Reject with a one-line reason.

    ``settings``: ``BuildConfig.data_settings()`` plus ``regressor_order``. One source may give
    several sequences (a motion that no camera placement fits whole is cut: keys ``KEY#000``, ...).
    """
    # imported here, not at the top: tests replace pipelines.placement.place_and_project
    from pipelines.amass import read_amass
    from pipelines.placement import place_and_project, project_in_place

    notes: list[str] = []
    try:
        seq = read_amass(path)
        joints = sequence_joints(seq, body_models, regressor, settings["fps"],
                                 settings.get("regressor_order", "auto"), notes)
        place = project_in_place if settings.get("placement", "rig") == "raw" else place_and_project
        segments = place(joints, rig=settings["rig"],
                                     cameras_per_sequence=settings["cameras_per_sequence"],
                                     rng=_sequence_rng(settings["seed"], key),
                                     camera_pool=camera_pool(settings.get("calibration")))
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
