"""One AMASS source file through the per-sequence pipeline: read -> regress -> resample -> place/project.

This is the part of the AMASS build that runs on Dask workers (:func:`process_source`), and the
joint regression the CLI's ``joints`` command uses on its own (:func:`sequence_joints`). Each file
gets the body model of its own family (SMPL+H or SMPL-X, from its layout) and gender. Body models,
the regressors and camera pools are loaded once per worker process (``lru_cache``); a regressor's
rows are put in H36M_17 order by geometry before any joint is computed (:func:`resolved_regressor`;
for SMPL-X, on the SMPL-X templates through the regressor composed with the deformation transfer,
:func:`resolved_smplx_regressor`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse
from pydantic import BaseModel, ConfigDict

from pipelines.amass import read_amass
from pipelines.hashing import sha256_file
from pipelines.placement import place_and_project, project_in_place
from schemas.bounds import (MAX_POSITION_M, MAX_RESAMPLED_FRAMES, TARGET_FPS, beyond, out_of_range, range_text,
                            record_problem)
from schemas.errors import (AmassFormatError, BodyModelError, ConfigError, DeformationTransferError, InputError,
                            RegressorError, one_line)
from schemas.records import Reject, SequenceData
from schemas.skeletons import GENDERS

log = logging.getLogger(__name__)

# Bump when the per-sequence math changes: it invalidates every cached sequence.
PIPELINE_VERSION = "amass-2"  # 2: SMPL-X sequences; the body_model manifest column
REGRESSOR_FILE = "J_regressor_h36m.npy"  # looked for in the body-model folder when no regressor is given


class WorkerSettings(BaseModel):
    """What every build worker gets, in the order a version's ``build_info["settings"]`` records it: the
    data settings (``BuildConfig.data_settings()``, the config hash's input; ``placement`` only when not
    "rig", ``calibration_sha256`` only with a calibration), then what the driver resolved for the workers
    (``regressor_order``, the row orders ``perms`` it decided per family, the SMPL-X inputs, the AMASS root)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rig: Literal["h36m", "3dhp"]
    calibration: str | None = None  # an MPI-INF-3DHP camera.calibration replacing the rig's cameras
    cameras_per_sequence: int
    fps: float  # target frame rate
    seed: int
    val_fraction: float
    pipeline: str = PIPELINE_VERSION
    store_format: str | None = None
    placement: Literal["rig", "raw"] = "rig"
    calibration_sha256: str | None = None  # the calibration's bytes when the build started
    regressor_order: Literal["auto", "as-is"] = "auto"
    perms: dict[str, list[int]] | None = None  # family -> regressor row order (None: each worker decides)
    deftrafo: str | None = None
    smplx_regressor: str | None = None
    source_root: str | None = None  # the resolved AMASS root: a source's real path must stay inside it

    def record(self) -> dict:
        """``build_info["settings"]``: the settings as the driver gave them (defaults it left out stay out)."""
        return self.model_dump(mode="json", exclude_unset=True)


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
# Body models, regressors and cameras (cached per process)


@functools.lru_cache(maxsize=12)
def _gendered_model(root: str, model_type: str, gender: str):
    """One model file (a worker loads only the genders and families its sequences use)."""
    from pipelines.body_model import load_gendered_model

    return load_gendered_model(root, model_type, gender)


def _body_models(root: str, model_type: str) -> dict:
    """gender -> BodyModel for every ``root/{model_type}/{gender}/model.npz`` there is."""
    from pipelines.body_model import model_file

    found = {g: _gendered_model(str(root), model_type, g) for g in GENDERS
             if model_file(root, model_type, g).exists()}
    if not found:
        raise BodyModelError(root, f"no {model_type}/{{male,female,neutral}}/model.npz below this folder")
    return found


@functools.lru_cache(maxsize=4)
def camera_pool(calibration: str | None, sha256: str | None = None):
    """The cameras of a 3DHP ``camera.calibration`` file (None: the rig's shipped cameras).

    ``sha256``: the hash the build recorded for the file; a file that no longer has it (changed since
    the build started) raises CameraError instead of giving other cameras than those recorded.
    """
    from pipelines.calibration import read_3dhp_calibration
    from schemas.errors import CameraError

    if not calibration:
        return None
    cams, sha = read_3dhp_calibration(calibration)
    if sha256 is not None and sha != sha256:
        raise CameraError(calibration, "changed since the build started (its sha256 differs from the one recorded)")
    return cams


def model_families(root: str | os.PathLike) -> list[str]:
    """The body-model families below ``root`` with at least one gendered model file (smplh, smplx, smpl)."""
    from pipelines.body_model import model_file

    return [mt for mt in ("smplh", "smplx", "smpl") if any(model_file(root, mt, g).exists() for g in GENDERS)]


def body_model_for(root: str | os.PathLike, model_type: str, gender: str):
    """The ``model_type`` body model of ``gender`` below ``root``; BodyModelError names the missing file."""
    from pipelines.body_model import model_file

    path = model_file(root, model_type, gender)
    if not path.exists():
        raise BodyModelError(path, f"no {model_type} body model for gender {gender!r} (file not found)")
    return _gendered_model(str(root), model_type, gender)


def _stamp(path: str | None):
    """(mtime, size) of a file, so that a rewritten file is read again; None when it cannot be stat'ed."""
    if path is None:
        return None
    try:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size
    except OSError:
        return None  # the loader says what is wrong


def resolved_regressor(path: str, body_models: str, order: str = "auto", perm=None):
    """(csr (17, V) in H36M_17 row order, RegressorOrder): the file's rows checked by geometry on
    every body model below ``body_models`` with the regressor's vertex count (``order="auto"``; for
    SPIN's 6890 columns: the SMPL+H / SMPL models) or trusted (``"as-is"``). ``perm``: the row order
    a build's driver already decided (its workers apply it without loading every template again)."""
    if perm is not None:
        return _permuted(str(path), None, tuple(perm), order, (_stamp(path), None))
    return _resolved_regressor(str(path), str(body_models), order, _stamp(path))


@functools.lru_cache(maxsize=4)
def _permuted(path: str, deftrafo: str | None, perm: tuple, order: str, stamps):
    """The regressor file's rows (composed with the deformation transfer when given) in ``perm`` order."""
    from pipelines.body_model import load_regressor
    from pipelines.deftrafo import compose_regressor, load_deformation_transfer
    from pipelines.regressor_order import order_from_perm

    reg = load_regressor(path)
    dsha = ""
    if deftrafo is not None:
        transfer = load_deformation_transfer(deftrafo)
        reg, dsha = compose_regressor(reg, transfer), transfer.sha256
    if reg.shape[0] != len(perm):
        raise RegressorError(path, f"regressor has {reg.shape[0]} rows, the build decided an order for {len(perm)}")
    return (scipy.sparse.csr_matrix(reg[list(perm)]),
            order_from_perm(perm, order, sha256_file(path, error=RegressorError), dsha))


@functools.lru_cache(maxsize=4)
def _resolved_regressor(path: str, body_models: str, order: str, stamp):
    from pipelines.body_model import FAMILY_VERTICES, load_regressor
    from pipelines.regressor_order import resolve_regressor_order

    reg = load_regressor(path)
    # only the families whose vertex count fits are loaded (SMPL-X models are of no use to 6890 columns)
    families = model_families(body_models)
    fitting = [mt for mt in families if FAMILY_VERTICES[mt] == reg.shape[1]]
    if not fitting:
        raise RegressorError(path, f"regressor has {reg.shape[1]} columns but no body model below {body_models} has "
                                   f"that many vertices (found: {', '.join(families) or 'none'})")
    models = [m for mt in fitting for m in _body_models(body_models, mt).values()]
    return resolve_regressor_order(reg, models, order=order, path=path, sha256=sha256_file(path, kind="regressor"))


def default_deftrafo(body_models: str | os.PathLike) -> str | None:
    """``BODY_MODELS/transfer/smplx2smpl_deftrafo_setup.pkl`` when it is there (data/README.md's layout)."""
    from pipelines.deftrafo import DEFTRAFO_FILE

    path = Path(body_models) / DEFTRAFO_FILE
    return str(path) if path.exists() else None


def smplx_regressor_missing(body_models: str | os.PathLike) -> str:
    """The one-line reason an SMPL-X sequence cannot be regressed without a transfer or a ready regressor."""
    from pipelines.deftrafo import DEFTRAFO_FILE

    return (f"SMPL-X sequences need the SMPL-X -> SMPL deformation transfer ({Path(body_models) / DEFTRAFO_FILE}, "
            "from SMPL-X's model-transfer data; see data/README.md) or a ready (17 x 10475) regressor "
            "(--smplx-regressor): neither was found")


def resolved_smplx_regressor(body_models: str | os.PathLike, regressor: str | os.PathLike | None,
                             order: str = "auto", deftrafo: str | os.PathLike | None = None,
                             smplx_regressor: str | os.PathLike | None = None, perm=None):
    """(csr (17, 10475) in H36M_17 row order, RegressorOrder) for SMPL-X sequences.

    ``smplx_regressor``: a ready (17, 10475) regressor file. Otherwise the (17, 6890) H36M
    ``regressor`` is composed with the deformation transfer (``deftrafo``, default
    :func:`default_deftrafo`) once per process, and its rows are put in order by the side check on the
    SMPL-X templates through the composed regressor. Raises DeformationTransferError when neither
    is there, and the loaders' errors for bad files (before any frame is computed). ``perm``: the row
    order a build's driver already decided (no template is loaded).
    """
    from pipelines.deftrafo import DEFTRAFO_FILE

    body_models = str(body_models)
    if smplx_regressor is None:
        deftrafo = str(deftrafo) if deftrafo is not None else default_deftrafo(body_models)
        if deftrafo is None:
            raise DeformationTransferError(Path(body_models) / DEFTRAFO_FILE, smplx_regressor_missing(body_models))
    else:
        deftrafo = None
    smplx_regressor = None if smplx_regressor is None else str(smplx_regressor)
    regressor = None if regressor is None or smplx_regressor is not None else str(regressor)
    if perm is not None:
        path = smplx_regressor or regressor
        return _permuted(path, deftrafo, tuple(perm), order, (_stamp(path), _stamp(deftrafo)))
    return _resolved_smplx(body_models, regressor, order, deftrafo, smplx_regressor,
                           (_stamp(regressor), _stamp(deftrafo), _stamp(smplx_regressor)))


@functools.lru_cache(maxsize=4)
def _resolved_smplx(body_models: str, regressor: str | None, order: str, deftrafo: str | None,
                    smplx_regressor: str | None, stamps):
    import dataclasses

    from pipelines.body_model import load_regressor
    from pipelines.deftrafo import compose_regressor, load_deformation_transfer
    from pipelines.regressor_order import resolve_regressor_order

    models = list(_body_models(body_models, "smplx").values())
    if smplx_regressor is not None:
        return resolve_regressor_order(load_regressor(smplx_regressor), models, order=order, path=smplx_regressor,
                                       sha256=sha256_file(smplx_regressor, kind="regressor"))
    transfer = load_deformation_transfer(deftrafo)  # checked: shape, finite, row sums
    composed = compose_regressor(load_regressor(regressor), transfer)
    reg, how = resolve_regressor_order(composed, models, order=order, path=regressor, sha256=sha256_file(regressor, kind="regressor"))
    return reg, dataclasses.replace(how, deftrafo_sha256=transfer.sha256)


def family_regressor(model_type: str, body_models, regressor, order: str = "auto", deftrafo=None,
                     smplx_regressor=None, perm=None):
    """The regressor (csr (17, V), RegressorOrder) for sequences of a body-model family (``perm``: as
    decided by the build's driver)."""
    if model_type == "smplx":
        return resolved_smplx_regressor(body_models, regressor, order, deftrafo, smplx_regressor, perm)
    return resolved_regressor(str(regressor), str(body_models), order, perm)


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


def fit_expression(expression, model, path) -> tuple[np.ndarray, str | None]:
    """Expression coefficients (T, E) cut to the SMPL-X model's expression directions when the extra
    ones are all zero; (expression, note or None). AmassFormatError when a non-zero one would be dropped."""
    E = model.num_expression
    if expression.shape[1] <= E:
        return expression, None
    extra = expression[:, E:]
    if not np.any(extra):
        return expression[:, :E], (f"{path}: {expression.shape[1]} expression coefficients, the ones beyond the "
                                    f"model's {E} expression directions are all zero: used the first {E}")
    raise AmassFormatError(path, f"{expression.shape[1]} expression coefficients but the {model.model_type} "
                                 f"{model.gender} model has {E} expression directions and the others are not zero")


def _missing_inputs(seq, body_models, deftrafo, smplx_regressor) -> None:
    """Raise one error naming everything this sequence's family needs and the folder lacks."""
    from pipelines.body_model import model_file

    missing, error = [], BodyModelError
    path = model_file(body_models, seq.model_type, seq.gender)
    if not path.exists():
        missing.append(f"the {seq.model_type} {seq.gender} body model ({path}: not found)")
    if seq.model_type == "smplx" and smplx_regressor is None and deftrafo is None:
        from pipelines.deftrafo import DEFTRAFO_FILE

        missing.append(f"the SMPL-X -> SMPL deformation transfer ({Path(body_models) / DEFTRAFO_FILE}: not found) "
                       "or a ready (17 x 10475) regressor (--smplx-regressor)")
        error = error if len(missing) > 1 else DeformationTransferError
    if missing:
        family = {"smplx": "an SMPL-X", "smplh": "an SMPL+H"}.get(seq.model_type, f"a {seq.model_type}")
        raise error(body_models, f"{family} ({seq.gender}) sequence needs {' and '.join(missing)}")


def check_target_fps(fps: float) -> None:
    """ConfigError unless ``fps`` lies in the documented range of target rates (``schemas.bounds``)."""
    if out_of_range(fps, *TARGET_FPS):
        raise ConfigError(f"target frame rate {fps!r} Hz is outside the documented range {range_text(*TARGET_FPS, 'Hz')}")


def check_resampled_frames(seq, fps: float) -> None:
    """AmassFormatError when resampling ``seq`` to ``fps`` would give more than ``MAX_RESAMPLED_FRAMES``
    frames (checked from the frame count and the rates, before anything is allocated)."""
    n_out = (seq.n_frames - 1) * float(fps) / float(seq.fps) + 1
    if n_out > MAX_RESAMPLED_FRAMES:
        raise AmassFormatError(seq.path, f"{seq.n_frames} frames at {seq.fps:g} Hz resample to {n_out:.3g} frames at "
                                         f"{fps:g} Hz, over the limit of {MAX_RESAMPLED_FRAMES} frames a sequence")


def sequence_joints(seq, body_models: str | os.PathLike, regressor: str | os.PathLike, fps: float,
                    regressor_order: str = "auto", notes: list | None = None, *,
                    deftrafo: str | os.PathLike | None = None,
                    smplx_regressor: str | os.PathLike | None = None, perms: dict | None = None) -> np.ndarray:
    """Regressed joints of one AMASS sequence at ``fps``: (T', N, 3) float32 metres, world frame.

    The body model is the file's family (``seq.model_type``: SMPL+H or SMPL-X) and gender; SMPL-X
    sequences go through the H36M ``regressor`` composed with the deformation transfer (``deftrafo``,
    default ``BODY_MODELS/transfer/smplx2smpl_deftrafo_setup.pkl``) or a ready ``smplx_regressor``
    (:func:`family_regressor`; rows put in H36M_17 order first). Every pose part (jaw, eyes, hands),
    all betas and the expression coefficients are used as the model defines them. Only the source
    frames that the linear resampling touches are regressed. Notes (dropped zero betas) go to ``notes``.
    ``perms``: family -> row order already decided by a build's driver (workers skip the side check).
    """
    from pipelines.regress import JointRegressor
    from pipelines.resample import apply_plan, plan_resample

    check_target_fps(fps)
    check_resampled_frames(seq, fps)
    if deftrafo is None and seq.model_type == "smplx":
        deftrafo = default_deftrafo(body_models)
    _missing_inputs(seq, body_models, deftrafo, smplx_regressor)
    model = body_model_for(body_models, seq.model_type, seq.gender)
    reg, _ = family_regressor(seq.model_type, body_models, regressor, regressor_order, deftrafo, smplx_regressor,
                              (perms or {}).get(seq.model_type))
    if reg.shape[1] != model.v_template.shape[0]:
        raise InputError(regressor, f"regressor has {reg.shape[1]} columns but the {seq.model_type} model "
                                    f"has {model.v_template.shape[0]} vertices")
    if seq.dmpls is not None and model.dmpldirs is None:
        raise BodyModelError(body_models, f"the {seq.model_type} {seq.gender} model has no DMPL basis "
                                          f"(dmpls/{seq.gender}/model.npz) but this file has 'dmpls'")
    betas, note = fit_betas(seq.betas, model, seq.path)
    if note and notes is not None:
        notes.append(note)
    expression = getattr(seq, "expression", None)
    if expression is not None:
        expression, note = fit_expression(expression, model, seq.path)
        if note and notes is not None:
            notes.append(note)
    plan = plan_resample(seq.n_frames, seq.fps, fps)
    jr = JointRegressor.from_model(model, reg, betas, num_expression=0 if expression is None else expression.shape[1])
    joints = jr(seq.model_poses()[plan.needed], seq.trans[plan.needed],
                None if seq.dmpls is None else seq.dmpls[plan.needed],
                expression=None if expression is None else expression[plan.needed])
    out = apply_plan(plan, joints).astype(np.float32, copy=False)
    bad = beyond(out, MAX_POSITION_M)  # after the last cast: float64 values past float32's range are inf here
    if bad:
        raise AmassFormatError(seq.path, f"regressed joints hold {bad} m (as float32); not a body's motion")
    return out


# ---------------------------------------------------------------------------------------------
# One source file (runs on Dask workers)


class SourceResult(list):
    """The SequenceData of one source, plus ``notes`` (one line each) for the build report."""

    def __init__(self, items=(), notes=()):
        super().__init__(items)
        self.notes = list(notes)


def _one_line(exc: BaseException) -> str:
    """An unexpected error's class and message on one line: ``ZeroDivisionError: division by zero``."""
    text = one_line(exc, 300, empty="")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_sha(seq, exc: Exception, path: str, listed: str) -> str:
    """The sha256 a reject row records: of the bytes read (the parsed sequence's, or the reading error's
    when the file itself was bad), else the listing's ("" when the listing did not hash it)."""
    if seq is not None:
        return seq.sha256
    if isinstance(exc, InputError) and exc.path == path:
        return getattr(exc, "source_sha256", None) or listed
    return listed


def process_source(path: str, key: str, dataset: str, subject: str, name: str, sha256: str,
                   body_models: str, regressor: str, settings: WorkerSettings, config_hash: str) -> SourceResult | Reject:
    """Read -> regress -> resample -> place/project one source file. Whatever goes wrong with this
    one file (bad input or an unexpected error) returns a Reject with a one-line reason.

    One source may give several sequences (a motion that no camera placement fits whole is cut: keys
    ``KEY#000``, ...).
    """
    notes: list[str] = []
    seq = None
    try:
        # the real path must stay inside the AMASS root, checked on the opened file (a link swapped in
        # after the listing is refused too); the sha256 recorded is that of the bytes parsed
        seq = read_amass(path, root=settings.source_root)
        joints = sequence_joints(seq, body_models, regressor, settings.fps, settings.regressor_order, notes,
                                 deftrafo=settings.deftrafo, smplx_regressor=settings.smplx_regressor,
                                 perms=settings.perms)
        place = project_in_place if settings.placement == "raw" else place_and_project
        segments = place(joints, rig=settings.rig, cameras_per_sequence=settings.cameras_per_sequence,
                         rng=_sequence_rng(settings.seed, key),
                         camera_pool=camera_pool(settings.calibration, settings.calibration_sha256))
    except InputError as exc:
        # an error about another file (the body model, the regressor) names that file in the reason
        reason = exc.reason if exc.path == path else f"{exc.path}: {exc.reason}"
        return Reject(source_path=path, reason=reason, kind=exc.kind, source_sha256=_read_sha(seq, exc, path, sha256))
    except Exception as exc:  # noqa: BLE001 - one source must never take the build down
        log.warning("build: %s failed: %s", path, _one_line(exc))
        return Reject(source_path=path, reason=f"failed while building: {_one_line(exc)}", kind="error",
                      source_sha256=_read_sha(seq, exc, path, sha256))
    out = SourceResult(notes=notes)
    for i, seg in enumerate(segments):
        seg_key = key if len(segments) == 1 else f"{key}#{i:03d}"
        bad = record_problem(seg)
        if bad:  # checked as stored (float32): huge values become inf there
            return Reject(source_path=path, reason=f"{seg_key}: {bad}", kind=AmassFormatError.kind,
                          source_sha256=seq.sha256)
    for i, seg in enumerate(segments):
        seg_key = key if len(segments) == 1 else f"{key}#{i:03d}"
        out.append(SequenceData(
            key=seg_key, source="amass", joints_world=seg.joints_world, views=seg.views,
            dataset=dataset, subject=subject, name=name, action="", source_path=path,
            source_sha256=seq.sha256, gender=seq.gender, body_model=seq.model_type,
            betas=np.asarray(seq.betas, np.float32),
            source_fps=float(seq.fps), fps=float(settings.fps), n_source_frames=seq.n_frames,
            split=_split_for(key, settings.val_fraction), config_hash=config_hash))
    return out
