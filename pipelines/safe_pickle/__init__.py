"""Restricted loading of untrusted files (SMPL ``.pkl`` models, VideoPose3D ``.npz`` object arrays).

A pickle is loaded in four steps, one module each (:mod:`~pipelines.safe_pickle.loads` runs them):

1. :mod:`~pipelines.safe_pickle.prescan`: the opcode stream is walked without executing anything;
   opcode count and memo indices are bounded (a 9-byte ``LONG_BINPUT 150000000`` cannot make the
   unpickler allocate 2 GB).
2. :mod:`~pipelines.safe_pickle.allow_list`: the parse, with every allow-listed global (dtype,
   array, scalar, chumpy, scipy.sparse) bound to an inert stand-in that only records its state, so
   *no numpy or scipy code runs while a pickle is parsed*.
3. :mod:`~pipelines.safe_pickle.rebuild`: stand-ins become real objects, each validated first
   (dtype descr, byte counts, budgets, nesting, shared references); sparse matrices through
   :mod:`~pipelines.safe_pickle.sparse`.
4. :mod:`~pipelines.safe_pickle.npz`: the ``.npy`` / ``.npz`` container layer, sizes checked from
   the headers and the zip directory before anything is allocated or inflated.

With that, the allow-list is safe in-process: the unpickler only ever calls our own constructors,
``bytes()`` and a latin-1 encode, so there is nothing left for a crafted file to corrupt. (A worker
process per file would cost a process start and a copy of every array; see the issue-16 report.)
Any problem raises :class:`UnsafePickleError` / :class:`InputError` naming the file.

The public names are importable from here.
"""

from pipelines.safe_pickle.loads import safe_load_pickle, safe_loads
from pipelines.safe_pickle.npz import check_dtype, safe_load_npy, safe_load_npz
from pipelines.safe_pickle.prescan import prescan_pickle
from pipelines.safe_pickle.sparse import sparse_from_parts

__all__ = ["check_dtype", "prescan_pickle", "safe_load_npy", "safe_load_npz", "safe_load_pickle", "safe_loads",
           "sparse_from_parts"]
