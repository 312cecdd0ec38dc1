"""The SMPL-X -> SMPL deformation transfer: SMPL-X meshes through a regressor made for SMPL's 6890 vertices.

SMPL-X's model-transfer tools publish ``smplx2smpl_deftrafo_setup.pkl`` (the ``transfer_data`` download
of https://smpl-x.is.tue.mpg.de): a pickled dict whose ``mtx`` (some copies name it ``matrix``) is a
scipy sparse matrix of shape (6890, 2 x 10475). Without normals its first 10475 columns D map SMPL-X
vertices to SMPL-topology vertices, one row an SMPL vertex (the barycentric coordinates of its nearest
point on the SMPL-X surface). So for an H36M regressor R (17, 6890), ``R @ D`` (17, 10475) regresses
the same joints straight from an SMPL-X mesh: :func:`compose_regressor`, once per build, and the
mesh-free contraction (:mod:`pipelines.regress`) takes the product like any other regressor.

The file is read through the restricted unpickler only, and checked before anything uses it
(:func:`check_transfer`): the shape, finite weights, no weight beyond :data:`MAX_ABS_WEIGHT`, and every
row summing to 1 within :data:`ROW_SUM_TOLERANCE`: a transfer must carry each SMPL vertex along when
the SMPL-X mesh moves (translating the mesh by t translates every row's point by its row sum times t).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from pipelines.hashing import sha256_file
from schemas.files import check_regular
from pipelines.safe_pickle import safe_load_pickle
from schemas.errors import DeformationTransferError, InputError

DEFTRAFO_FILE = "transfer/smplx2smpl_deftrafo_setup.pkl"  # below the body-model folder, where data/README.md puts it
SMPL_VERTICES = 6890
SMPLX_VERTICES = 10475
MATRIX_KEYS = ("mtx", "matrix")
ROW_SUM_TOLERANCE = 1e-3  # |sum of a row - 1|; barycentric rows stored as float32 are ~1e-7 off
MAX_ABS_WEIGHT = 10.0  # a barycentric weight is in [0, 1]; anything near this bound is not a transfer


@dataclass(frozen=True)
class DeformationTransfer:
    """A checked SMPL-X -> SMPL transfer: ``matrix`` (6890, 10475) maps SMPL-X vertices to SMPL ones."""

    matrix: scipy.sparse.csr_matrix
    sha256: str  # of the file's bytes
    key: str  # "mtx" | "matrix"
    path: str


def load_deformation_transfer(path: str | os.PathLike) -> DeformationTransfer:
    """Read ``smplx2smpl_deftrafo_setup.pkl`` through the restricted unpickler and check it.

    Accepts the matrix under ``mtx`` or ``matrix``, sparse (csr/csc/coo) or dense, of shape
    (6890, 2 x 10475) (the first 10475 columns are used: no normals) or (6890, 10475). Raises
    :class:`DeformationTransferError` naming the file and the problem.
    """
    path = os.fspath(path)
    check_regular(path, DeformationTransferError)
    try:
        data = safe_load_pickle(path)
    except InputError as exc:  # unsafe / corrupt / over budget: re-typed, the reason kept
        raise DeformationTransferError(path, exc.reason) from None
    if not isinstance(data, dict):
        raise DeformationTransferError(path, f"expected a pickled dict with 'mtx', found {type(data).__name__}")
    key = next((k for k in MATRIX_KEYS if k in data), None)
    if key is None:
        listed = ", ".join(sorted(map(str, data)))[:200]
        raise DeformationTransferError(path, f"no 'mtx' or 'matrix' in the pickled dict (keys: {listed})")
    matrix = _as_matrix(data[key], path, key)
    check_transfer(matrix, path)
    return DeformationTransfer(matrix, sha256_file(path, error=DeformationTransferError), key, path)


def _as_matrix(value, path, key) -> scipy.sparse.csr_matrix:
    """The pickled value as a float64 CSR (6890, 10475): the first half of a (6890, 2 x 10475) one."""
    if scipy.sparse.issparse(value):
        matrix = scipy.sparse.csr_matrix(value, dtype=np.float64)
    elif isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.ndim == 2:
        matrix = scipy.sparse.csr_matrix(value.astype(np.float64))
    else:
        kind = getattr(value, "dtype", type(value).__name__)
        raise DeformationTransferError(path, f"{key!r} is not a numeric matrix ({kind})")
    rows, cols = matrix.shape
    if rows != SMPL_VERTICES or cols not in (SMPLX_VERTICES, 2 * SMPLX_VERTICES):
        raise DeformationTransferError(path, f"{key!r} has shape {matrix.shape}: expected ({SMPL_VERTICES}, "
                                             f"{2 * SMPLX_VERTICES}) (SMPL-X vertices, then normals) or "
                                             f"({SMPL_VERTICES}, {SMPLX_VERTICES})")
    return matrix[:, :SMPLX_VERTICES].tocsr()


def check_transfer(matrix: scipy.sparse.spmatrix, path=None) -> None:
    """Refuse a transfer (6890, 10475) with non-finite weights, a weight beyond ``MAX_ABS_WEIGHT`` or a row
    that does not sum to 1 (an SMPL vertex that would not follow the mesh); raises DeformationTransferError."""
    m = scipy.sparse.csr_matrix(matrix)
    if m.shape != (SMPL_VERTICES, SMPLX_VERTICES):
        raise DeformationTransferError(path, f"transfer has shape {m.shape}, expected ({SMPL_VERTICES}, {SMPLX_VERTICES})")
    if not np.all(np.isfinite(m.data)):
        raise DeformationTransferError(path, f"transfer holds {int(np.sum(~np.isfinite(m.data)))} NaN/inf weights")
    if m.nnz and np.abs(m.data).max() > MAX_ABS_WEIGHT:
        worst = float(np.abs(m.data).max())
        raise DeformationTransferError(path, f"transfer has a weight of magnitude {worst:.3g} (more than "
                                             f"{MAX_ABS_WEIGHT:g}): not a deformation transfer")
    sums = np.asarray(m.sum(axis=1)).ravel()
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if len(bad):
        first = int(bad[0])
        raise DeformationTransferError(path, f"{len(bad)} of {SMPL_VERTICES} rows do not sum to 1 (row {first} sums "
                                             f"to {sums[first]:.6g}); each SMPL vertex must be a weighted mean of "
                                             "SMPL-X vertices")


def compose_regressor(regressor, transfer: DeformationTransfer) -> scipy.sparse.csr_matrix:
    """(N, 6890) regressor x (6890, 10475) transfer -> (N, 10475): the regressor on SMPL-X vertices."""
    R = scipy.sparse.csr_matrix(regressor, dtype=np.float64)
    if R.shape[1] != SMPL_VERTICES:
        raise DeformationTransferError(transfer.path, f"the regressor has {R.shape[1]} columns; the transfer maps "
                                                      f"onto {SMPL_VERTICES} SMPL vertices")
    out = (R @ transfer.matrix).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out
