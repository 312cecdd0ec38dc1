"""Step 1 of a restricted load: walk the opcode stream before anything is parsed.

The C unpickler sizes its memo table by the largest index it sees, so a 9-byte ``LONG_BINPUT
150000000`` would make it allocate 2 GB; the pre-scan (``pickletools.genops``, which executes
nothing) bounds the opcode count and the memo indices first, and refuses persistent ids and the
copyreg extension registry.
"""

from __future__ import annotations

import pickletools

from pipelines.safe_files import DEFAULT_LIMITS, Limits
from schemas.errors import InputError, UnsafePickleError


_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_REFUSED_OPS = {"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"}
_LONG_OPS = {"LONG", "LONG1", "LONG4", "INT"}
MAX_INT_BITS = 64  # integers in a pickle: shapes, counts, indices; a longer one would be multiplied later


def prescan_pickle(data: bytes, path, limits: Limits = DEFAULT_LIMITS) -> int:
    """Walk the opcodes of ``data`` without executing them; returns the opcode count.

    Refuses streams over ``limits.max_pickle_ops`` opcodes, memo indices over ``limits.max_memo``
    (the C unpickler sizes its memo table by the largest index), integers over ``MAX_INT_BITS`` bits
    (a 32 MB long integer in a shape would hang ``math.prod`` later), persistent ids and the copyreg
    extension registry. Raises InputError / UnsafePickleError.
    """
    ops = memo = 0
    try:
        for op, arg, _ in pickletools.genops(data):
            ops += 1
            if ops > limits.max_pickle_ops:
                raise InputError(path, f"pickle has more than {limits.max_pickle_ops} opcodes; over the limit")
            name = op.name
            if name in _PUT_OPS:
                idx = int(arg)
                if not 0 <= idx <= limits.max_memo:
                    raise InputError(path, f"pickle memo index {idx} is over the limit of {limits.max_memo}")
            elif name == "MEMOIZE":
                memo += 1
                if memo > limits.max_memo:
                    raise InputError(path, f"pickle memoizes more than {limits.max_memo} objects")
            elif name in _LONG_OPS and isinstance(arg, int) and arg.bit_length() > MAX_INT_BITS:
                raise InputError(path, f"pickle holds an integer of {arg.bit_length()} bits, over the "
                                       f"{MAX_INT_BITS}-bit limit (no shape, count or index needs more)")
            elif name in _REFUSED_OPS:
                raise UnsafePickleError(path, f"pickle uses {name} (persistent ids / extension registry); refused")
            if name == "STOP":
                break
    except InputError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(path, f"corrupt pickle: {type(exc).__name__}: {str(exc)[:200]}") from None
    return ops
