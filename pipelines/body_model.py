"""Loading SMPL-family body models (SMPL+H / SMPL-X / SMPL, + DMPL) and joint-regressor files.

Accepted files:
- AMASS-style ``model.npz`` (only the members below are read, numbers only): ``v_template`` (V, 3),
  ``shapedirs`` (V, 3, S), ``posedirs`` (V, 3, 9(Jb-1)), ``J_regressor`` (Jb, V), ``weights`` (V, Jb),
  ``kintree_table`` (2, Jb), ``f`` (F, 3). SMPL+H: V = 6890, Jb = 52. SMPL-X: V = 10475, Jb = 55 and
  ``shapedirs`` holds 300 shape then 100 expression directions (400 columns; the first release: 10 + 10),
  split as smplx and human_body_prior split it; hand poses are used as given (no hand mean added: AMASS
  stores the full 45 values a hand, as human_body_prior's BodyModel poses them).
- smplx-style ``.pkl`` holding chumpy / scipy.sparse objects: loaded ONLY through
  :func:`pipelines.safe_pickle.safe_load_pickle`.
- DMPL ``model.npz`` with ``eigvec`` (V, 3, 8), for SMPL+H only.
- Regressors: dense ``.npy`` (e.g. SPIN's ``J_regressor_h36m.npy``) or a ``scipy.sparse.save_npz`` file.

Every problem raises :class:`BodyModelError` / :class:`RegressorError` naming the file and the reason.
Which of a regressor's rows are left and right is decided by :mod:`pipelines.regressor_order`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

from pipelines.hashing import sha256_file
from schemas.files import check_regular
from pipelines.safe_pickle import safe_load_npy, safe_load_npz, safe_load_pickle, sparse_from_parts
from schemas.errors import BodyModelError, InputError, RegressorError
from schemas.skeletons import GENDERS, SMPLH_52, SMPLX_55, SMPLX_NUM_EXPRESSION, SMPLX_NUM_SHAPE

# (vertices, joints) -> model type; the joint count decides, the vertex count must agree.
_MODEL_TYPES = {52: ("smplh", 6890), 55: ("smplx", 10475), 24: ("smpl", 6890)}
FAMILY_VERTICES = {mt: v for mt, v in _MODEL_TYPES.values()}  # "smplh" -> 6890, "smplx" -> 10475, "smpl" -> 6890
_REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
# Bounds for regressor files, from the largest body model (SMPL-X: 10475 vertices): checked from the
# declared shape before anything is allocated.
MAX_MODEL_VERTICES = max(v for _, v in _MODEL_TYPES.values())
MAX_REGRESSOR_ROWS = 1024
_SPARSE_KEYS = frozenset({"format", "shape", "data", "indices", "indptr", "row", "col"})


@dataclass
class BodyModel:
    """One gendered body model, float64, with every shape direction kept."""

    model_type: str  # "smplh" | "smplx" | "smpl"
    gender: str  # "male" | "female" | "neutral"
    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, S)
    posedirs: np.ndarray  # (V, 3, P), P = 9 * (Jb - 1)
    J_regressor: scipy.sparse.csr_matrix  # (Jb, V)
    weights: np.ndarray  # (V, Jb)
    parents: np.ndarray  # (Jb,) int64, -1 for the root
    faces: np.ndarray  # (F, 3) int64
    dmpldirs: np.ndarray | None  # (V, 3, 8) or None
    sha256: str  # of the model file bytes (+ the DMPL file bytes)
    exprdirs: np.ndarray | None = None  # (V, 3, E) SMPL-X expression directions, or None

    @property
    def num_expression(self) -> int:
        return 0 if self.exprdirs is None else self.exprdirs.shape[2]

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_joints(self) -> int:
        return self.weights.shape[1]

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[2]

    def rest_joints(self, betas: np.ndarray | None = None) -> np.ndarray:
        """(Jb, 3) rest joints of the model's own regressor for ``betas`` (S',), S' <= S."""
        v = self.v_template
        if betas is not None:
            b = np.asarray(betas, dtype=np.float64)
            v = v + self.shapedirs[:, :, : len(b)] @ b
        return np.asarray(self.J_regressor @ v)


def _read_arrays(path: str, error: type[InputError], keys=None) -> dict:
    """Raw dict of a ``.npz`` (only ``keys``, if given) or ``.pkl`` file; every failure becomes ``error``.

    Only a regular file is opened; object arrays are refused (model files hold numbers only).
    """
    check_regular(path, error)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            data = safe_load_npz(path, keys=keys, allow_object=False, kind="body_model")
        elif ext == ".pkl":
            data = safe_load_pickle(path, kind="body_model")
        else:
            raise error(path, f"unsupported extension {ext!r} (expected .npz or .pkl)")
    except error:
        raise
    except InputError as exc:  # safe_pickle errors: re-type, keep the reason
        raise error(path, exc.reason) from None
    if not isinstance(data, dict):
        raise error(path, f"expected a dict of arrays, found {type(data).__name__}")
    return data


def _dense(x, path, key, dtype=np.float64) -> np.ndarray:
    if scipy.sparse.issparse(x):
        x = x.toarray()
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    if kind is not None and kind not in "fiu":  # complex, bool, strings, objects: not model data
        raise BodyModelError(path, f"{key!r} has dtype {x.dtype}, expected real numbers")
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise BodyModelError(path, f"{key!r} is not numeric: {exc}") from None
    return arr


def _check_finite(arr, path, key):
    if not np.all(np.isfinite(arr.data if scipy.sparse.issparse(arr) else arr)):
        raise BodyModelError(path, f"{key!r} contains NaN or inf")


def load_body_model(path, dmpl_path=None, gender: str | None = None) -> BodyModel:
    """Load and validate one model file (``.npz`` or ``.pkl``) and optionally its DMPL ``model.npz``.

    ``gender`` defaults to the parent folder name when it is male/female/neutral (AMASS layout),
    else to a ``gender`` key in the file, else "neutral".
    """
    path = os.fspath(path)
    raw = _read_arrays(path, BodyModelError, keys=(*_REQUIRED, "gender"))
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise BodyModelError(path, f"missing keys {missing}")
    v_template = _dense(raw["v_template"], path, "v_template")
    shapedirs = _dense(raw["shapedirs"], path, "shapedirs")
    posedirs = _dense(raw["posedirs"], path, "posedirs")
    weights = _dense(raw["weights"], path, "weights")
    jreg = raw["J_regressor"]
    if not scipy.sparse.issparse(jreg):
        jreg = _dense(jreg, path, "J_regressor")
        if jreg.ndim != 2:
            raise BodyModelError(path, f"J_regressor has shape {jreg.shape}, expected (Jb, V)")
    jreg = scipy.sparse.csr_matrix(jreg, dtype=np.float64)
    kintree = _dense(raw["kintree_table"], path, "kintree_table")
    _check_finite(kintree, path, "kintree_table")
    kintree = kintree.astype(np.int64)
    faces = _dense(raw["f"], path, "f")

    # Shapes: V from the template, Jb from the weights; everything else must agree.
    if v_template.ndim != 2 or v_template.shape[1] != 3 or v_template.shape[0] == 0:
        raise BodyModelError(path, f"v_template has shape {v_template.shape}, expected (V, 3)")
    V = v_template.shape[0]
    if weights.ndim != 2 or weights.shape[0] != V:
        raise BodyModelError(path, f"weights has shape {weights.shape}, expected ({V}, Jb)")
    Jb = weights.shape[1]
    if Jb not in _MODEL_TYPES:
        raise BodyModelError(path, f"{Jb} joints: not an SMPL (24), SMPL+H (52) or SMPL-X (55) model")
    model_type, expected_v = _MODEL_TYPES[Jb]
    if V != expected_v:
        raise BodyModelError(path, f"{V} vertices, but a {Jb}-joint {model_type} model has {expected_v}")
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (V, 3) or shapedirs.shape[2] < 1:
        raise BodyModelError(path, f"shapedirs has shape {shapedirs.shape}, expected ({V}, 3, S)")
    if posedirs.ndim == 2 and posedirs.shape[0] == V * 3:  # flattened (V*3, P) variant
        posedirs = posedirs.reshape(V, 3, -1)
    if posedirs.shape != (V, 3, 9 * (Jb - 1)):
        raise BodyModelError(path, f"posedirs has shape {posedirs.shape}, expected ({V}, 3, {9 * (Jb - 1)})")
    if jreg.shape != (Jb, V):
        raise BodyModelError(path, f"J_regressor has shape {jreg.shape}, expected ({Jb}, {V})")
    if kintree.shape != (2, Jb):
        raise BodyModelError(path, f"kintree_table has shape {kintree.shape}, expected (2, {Jb})")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise BodyModelError(path, f"f has shape {faces.shape}, expected (F, 3)")
    for key, arr in (("v_template", v_template), ("shapedirs", shapedirs), ("posedirs", posedirs),
                     ("weights", weights), ("J_regressor", jreg), ("f", faces)):
        _check_finite(arr, path, key)
    exprdirs = None
    if model_type == "smplx":
        shapedirs, exprdirs = _split_smplx_shapedirs(shapedirs, path)
    if faces.min() < 0 or faces.max() >= V or np.any(faces != np.round(faces)):
        raise BodyModelError(path, f"faces index outside [0, {V})")
    faces = faces.astype(np.int64)
    row_sums = weights.sum(axis=1)
    if np.abs(row_sums - 1.0).max() > 1e-3 or weights.min() < -1e-6:
        bad = int(np.argmax(np.abs(row_sums - 1.0)))
        raise BodyModelError(path, f"skinning weights must be >= 0 and sum to 1 per vertex (vertex {bad} sums to {row_sums[bad]:.4g})")
    # Kinematic tree: row 1 = joint ids in order, row 0 = parents; the root's parent is any value
    # outside [0, Jb) (the released files write 4294967295); every other parent precedes its child.
    if not np.array_equal(kintree[1], np.arange(Jb)):
        raise BodyModelError(path, "kintree_table row 1 is not 0..Jb-1")
    parents = kintree[0].copy()
    parents[0] = -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, Jb)):
        raise BodyModelError(path, "kintree_table is not a tree rooted at joint 0 with parents before children")
    if model_type == "smplh" and [int(p) for p in parents] != list(SMPLH_52.parents):
        raise BodyModelError(path, "kintree_table differs from the SMPL-H 52-joint tree")
    if model_type == "smplx" and [int(p) for p in parents] != list(SMPLX_55.parents):
        raise BodyModelError(path, "kintree_table differs from the SMPL-X 55-joint tree")

    dmpldirs, files = None, [path]
    if dmpl_path is not None:
        dmpl_path = os.fspath(dmpl_path)
        if model_type == "smplx":
            raise BodyModelError(dmpl_path, "DMPLs extend SMPL+H (6890 vertices), not an SMPL-X model")
        draw = _read_arrays(dmpl_path, BodyModelError, keys=("eigvec",))
        if "eigvec" not in draw:
            raise BodyModelError(dmpl_path, "DMPL file has no 'eigvec'")
        dmpldirs = _dense(draw["eigvec"], dmpl_path, "eigvec")
        if dmpldirs.ndim != 3 or dmpldirs.shape[:2] != (V, 3):
            raise BodyModelError(dmpl_path, f"eigvec has shape {dmpldirs.shape}, expected ({V}, 3, K)")
        _check_finite(dmpldirs, dmpl_path, "eigvec")
        files.append(dmpl_path)

    if gender is None:
        folder = Path(path).parent.name.lower()
        file_gender = raw.get("gender")
        if folder in GENDERS:
            gender = folder
        elif isinstance(file_gender, (str, np.ndarray)) and str(np.asarray(file_gender)) in GENDERS:
            gender = str(np.asarray(file_gender))
        else:
            gender = "neutral"
    return BodyModel(
        model_type=model_type, gender=gender, v_template=v_template, shapedirs=shapedirs, posedirs=posedirs,
        J_regressor=jreg, weights=weights, parents=parents, faces=faces, dmpldirs=dmpldirs,
        sha256=sha256_file(*files, error=BodyModelError, kind="body_model"), exprdirs=exprdirs,
    )


def _split_smplx_shapedirs(shapedirs: np.ndarray, path) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3, 400) -> shape (V, 3, 300) and expression (V, 3, 100) directions; the first SMPL-X
    release's (V, 3, 20) -> 10 + 10. Any other width is refused: where the expressions start would be a guess."""
    total = shapedirs.shape[2]
    if total == SMPLX_NUM_SHAPE + SMPLX_NUM_EXPRESSION:
        n_shape = SMPLX_NUM_SHAPE
    elif total == 20:
        n_shape = 10
    else:
        raise BodyModelError(path, f"SMPL-X shapedirs has {total} columns: expected {SMPLX_NUM_SHAPE} shape + "
                                   f"{SMPLX_NUM_EXPRESSION} expression directions (400) or 10 + 10 (20)")
    return shapedirs[:, :, :n_shape], shapedirs[:, :, n_shape:]  # views of one buffer: no copy


def model_file(root, model_type: str, gender: str) -> Path:
    """Where the ``model_type`` model of ``gender`` lives below a body-model folder (the AMASS layout)."""
    return Path(root) / model_type / gender / "model.npz"


def load_gendered_model(root, model_type: str, gender: str) -> BodyModel:
    """``root/{model_type}/{gender}/model.npz``, with ``root/dmpls/{gender}/model.npz`` for SMPL+H when
    present. A missing file raises BodyModelError naming it."""
    path = model_file(root, model_type, gender)
    if not path.exists():
        raise BodyModelError(path, f"no {model_type} body model for gender {gender!r} (file not found)")
    dmpl = Path(root) / "dmpls" / gender / "model.npz"
    use_dmpl = model_type != "smplx" and dmpl.exists()  # DMPLs extend the 6890-vertex SMPL topology only
    return load_body_model(path, dmpl if use_dmpl else None, gender=gender)


def load_body_models(root, model_type: str = "smplh") -> dict[str, BodyModel]:
    """Load ``root/{model_type}/{gender}/model.npz`` (+ ``root/dmpls/{gender}/model.npz`` for SMPL+H).

    Returns gender -> BodyModel for every gender found; raises BodyModelError when there is none.
    """
    root = Path(root)
    models = {g: load_gendered_model(root, model_type, g) for g in GENDERS
              if model_file(root, model_type, g).exists()}
    if not models:
        raise BodyModelError(root, f"no {model_type}/{{male,female,neutral}}/model.npz below this folder")
    return models


def load_regressor(path) -> scipy.sparse.csr_matrix:
    """(N, V) joint regressor from a dense ``.npy`` (allow_pickle=False) or a ``scipy.sparse.save_npz`` file."""
    path = os.fspath(path)
    check_regular(path, RegressorError)  # a FIFO / device is refused without being opened
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            # declared size checked before allocating: at most MAX_REGRESSOR_ROWS x MAX_MODEL_VERTICES float64
            dense = safe_load_npy(path, max_bytes=MAX_REGRESSOR_ROWS * MAX_MODEL_VERTICES * 8, kind="regressor")
            if dense.dtype.kind not in "fiu":
                raise RegressorError(path, f"dtype {dense.dtype} is not numeric")
            if dense.ndim != 2:
                raise RegressorError(path, f"has shape {dense.shape}, expected (N, V)")
            _check_regressor_shape(path, dense.shape)
            reg = scipy.sparse.csr_matrix(dense.astype(np.float64))
        elif ext == ".npz":
            raw = safe_load_npz(path, keys=_SPARSE_KEYS, allow_object=False, kind="regressor")
            fmt = raw.get("format")
            fmt = bytes(fmt.item()).decode() if fmt is not None and fmt.dtype.kind == "S" else \
                (str(fmt.item()) if fmt is not None else None)
            if fmt not in ("csr", "csc", "coo"):
                raise RegressorError(path, f"not a scipy.sparse.save_npz file (format {fmt!r})")
            if "shape" not in raw or raw["shape"].dtype.kind not in "iu" or raw["shape"].size != 2:
                raise RegressorError(path, "sparse regressor without a 2-element integer 'shape'")
            _check_regressor_shape(path, tuple(int(x) for x in raw["shape"].ravel()))
            reg = sparse_from_parts(fmt, raw, raw["shape"])
        else:
            raise RegressorError(path, f"unsupported extension {ext!r} (expected .npy or .npz)")
    except RegressorError:
        raise
    except InputError as exc:
        raise RegressorError(path, exc.reason) from None
    except (OSError, ValueError, KeyError, TypeError, EOFError, IndexError, OverflowError, MemoryError) as exc:
        raise RegressorError(path, f"unreadable regressor: {type(exc).__name__}: {exc}") from None
    reg.sum_duplicates()
    if not np.all(np.isfinite(reg.data)):
        raise RegressorError(path, "contains NaN or inf")
    empty = np.flatnonzero(np.abs(np.asarray(reg.sum(axis=1)).ravel()) < 1e-9)
    if reg.shape[0] == 0 or len(empty):
        listed = ", ".join(map(str, empty[:10].tolist())) + (f" ... ({len(empty)} rows)" if len(empty) > 10 else "")
        raise RegressorError(path, f"rows [{listed}] have zero total weight")
    return reg


def _check_regressor_shape(path, shape) -> None:
    """(N, V) with 1 <= N <= MAX_REGRESSOR_ROWS and 1 <= V <= MAX_MODEL_VERTICES, before allocating."""
    rows, cols = shape
    if not (1 <= rows <= MAX_REGRESSOR_ROWS and 1 <= cols <= MAX_MODEL_VERTICES):
        raise RegressorError(path, f"regressor shape {(rows, cols)} is outside (1..{MAX_REGRESSOR_ROWS}, "
                                   f"1..{MAX_MODEL_VERTICES}) rows x vertices of any supported body model")


def model_density(model: BodyModel) -> dict:
    """How dense a model is where the mesh-free regression's cost depends on it: mean bones with a
    non-zero skinning weight per vertex, and the non-zero fractions of posedirs and shapedirs.

    Public on purpose: the regression and build benchmarks report it beside their figures, so a
    stand-in model cannot look faster by being sparser than the real SMPL+H."""
    return {"bones_per_vertex_mean": float((model.weights > 0).sum(axis=1).mean()),
            "posedirs_nonzero_fraction": float(np.count_nonzero(model.posedirs) / model.posedirs.size),
            "shapedirs_nonzero_fraction": float(np.count_nonzero(model.shapedirs) / model.shapedirs.size)}
