"""Sparse matrices from untrusted parts (a pickled ``scipy.sparse`` state, a ``save_npz`` file)."""

from __future__ import annotations

import numpy as np
import scipy.sparse

# Largest sparse matrix side accepted from a file (an SMPL-X model has 10475 vertices); a COO of shape
# (5e7, 6890) would otherwise allocate 400 MB of index pointers with no data at all.
MAX_SPARSE_SIDE = 100_000


def sparse_from_parts(fmt: str, parts: dict, shape, max_side: int = MAX_SPARSE_SIDE) -> scipy.sparse.csr_matrix:
    """Build a CSR matrix from untrusted ``data``/``indices``/``indptr`` (or ``row``/``col``) arrays.

    scipy trusts its inputs: 2-D parts abort the process and out-of-range indices corrupt memory, so
    every part is checked (1-D, integer indices in range, consistent lengths) before scipy sees it,
    and each side of ``shape`` is at most ``max_side`` (scipy allocates index pointers by the shape).
    Raises ValueError with the reason.
    """
    shape = np.asarray(shape)
    if shape.dtype.kind not in "iu" or shape.size != 2:
        raise ValueError(f"shape {str(shape.tolist())[:80]} is not a 2-D matrix shape")
    shape = tuple(int(s) for s in shape.reshape(-1))
    if min(shape) < 0 or max(shape) > max_side:
        raise ValueError(f"shape {shape} is not a 2-D matrix shape with sides up to {max_side}")

    def vec(name, kind):
        arr = np.asarray(parts[name])
        if arr.ndim != 1 or arr.dtype.kind not in kind:
            raise ValueError(f"{name} must be a 1-D {'integer' if kind == 'iu' else 'numeric'} array, "
                             f"got {arr.dtype} {arr.shape}")
        return arr

    data = vec("data", "fiu").astype(np.float64)
    if fmt == "coo" and "row" not in parts and isinstance(parts.get("coords"), (tuple, list)):
        if len(parts["coords"]) != 2:  # scipy >= 1.13 pickles COO indices as coords=(row, col)
            raise ValueError("coo coords must be (row, col)")
        parts = {**parts, "row": parts["coords"][0], "col": parts["coords"][1]}
    if fmt == "coo":
        row, col = vec("row", "iu").astype(np.int64), vec("col", "iu").astype(np.int64)
        if not (len(row) == len(col) == len(data)):
            raise ValueError("row, col and data lengths differ")
        if len(row) and (row.min() < 0 or row.max() >= shape[0] or col.min() < 0 or col.max() >= shape[1]):
            raise ValueError("coo indices out of range")
        return scipy.sparse.coo_matrix((data, (row, col)), shape=shape).tocsr()
    if fmt not in ("csr", "csc"):
        raise ValueError(f"unknown sparse format {fmt!r}")
    indices, indptr = vec("indices", "iu").astype(np.int64), vec("indptr", "iu").astype(np.int64)
    major, minor = (shape[0], shape[1]) if fmt == "csr" else (shape[1], shape[0])
    if len(indptr) != major + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(data):
        raise ValueError("indptr is inconsistent with the shape and data")
    if len(indices) != len(data) or (len(indices) and (indices.min() < 0 or indices.max() >= minor)):
        raise ValueError("indices out of range or inconsistent with data")
    cls = scipy.sparse.csr_matrix if fmt == "csr" else scipy.sparse.csc_matrix
    return scipy.sparse.csr_matrix(cls((data, indices, indptr), shape=shape))
