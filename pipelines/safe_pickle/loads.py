"""One restricted load, the steps of :mod:`pipelines.safe_pickle` in order::

    the stream is at most ``limits.max_file_bytes``
    1. prescan   opcode count and memo indices bounded, nothing executed     (prescan.py)
    2. parse     every global an inert stand-in, no numpy code runs          (allow_list.py)
    3. rebuild   stand-ins -> checked numpy / scipy objects, within budgets  (rebuild.py)
"""

from __future__ import annotations

import io
import os
from typing import Any

from pipelines.safe_files import DEFAULT_LIMITS, Budget, Limits, read_regular
from pipelines.safe_pickle.allow_list import RestrictedUnpickler
from pipelines.safe_pickle.prescan import prescan_pickle
from pipelines.safe_pickle.rebuild import Converter
from schemas.errors import InputError


def safe_loads(data: bytes, path: str | os.PathLike | None = None, limits: Limits = DEFAULT_LIMITS,
               allow_object: bool = True, budget: Budget | None = None) -> Any:
    """Unpickle ``data`` through the allow-list, within ``limits``; raises UnsafePickleError / InputError.

    ``allow_object``: whether object arrays (and object-dtype scalars) may appear at all. ``budget``:
    the file's (one for every member of an ``.npz``); a new one for this pickle when not given.
    """
    if len(data) > limits.max_file_bytes:
        raise InputError(path, f"pickle is {len(data)} bytes, over the {limits.max_file_bytes}-byte limit")
    prescan_pickle(data, path, limits)
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), path).load()
    except InputError:
        raise
    except RecursionError:
        raise InputError(path, "pickle nests too deeply") from None
    except MemoryError:
        raise InputError(path, "pickle declares more memory than is available") from None
    except Exception as exc:  # truncated or corrupt pickle
        raise InputError(path, f"corrupt pickle: {type(exc).__name__}: {str(exc)[:200]}") from None
    try:
        return Converter(path, limits, allow_object, budget).convert(obj)
    except InputError:
        raise
    except RecursionError:  # not expected (depth is bounded), but never a traceback
        raise InputError(path, "pickle nests too deeply") from None
    except MemoryError:
        raise InputError(path, "pickle's arrays need more memory than is available") from None
    except Exception as exc:  # noqa: BLE001 - a malformed value numpy or scipy refused (ragged lists, ...)
        raise InputError(path, f"malformed pickled value: {type(exc).__name__}: {str(exc)[:200]}") from None


def safe_load_pickle(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS, allow_object: bool = False,
                     kind: str | int | None = None) -> Any:
    """Load a ``.pkl`` file (e.g. an SMPL model) through the allow-list; only a regular file is opened.

    Object arrays are not expected in model files and are refused unless ``allow_object``. ``kind``:
    the file's byte limit (``schemas.files.FILE_LIMITS``; default ``limits.max_file_bytes``).
    """
    try:
        data = read_regular(path, limits.max_file_bytes if kind is None else kind)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    return safe_loads(data, path, limits, allow_object)
