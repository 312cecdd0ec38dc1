"""One small error hierarchy for every bad input the project can meet, and how callers treat errors.

Every error names the offending file (or store) and a one-line reason, so the CLI can print
``str(err)`` and a build can record ``(path, reason, kind)`` as a ``rejects`` row.

Below the classes, the one home of the policies that go by class: ``one_line`` (every error line the
project prints or records), ``EXPECTED_ERRORS`` (a one-line message, no traceback) and
``is_transient`` (whether a retry can cure a failure).
"""

from __future__ import annotations

import os


class MocapCorpusError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(MocapCorpusError):
    """A user-supplied file is unusable. ``path`` names it, ``reason`` says why (one line)."""

    kind = "input"

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = str(path) if path is not None else "<memory>"
        self.reason = one_line(str(reason))  # one line, always
        super().__init__(f"{self.path}: {self.reason}")


class AmassFormatError(InputError):
    """An AMASS motion file is malformed (keys, shapes, dtypes, values)."""

    kind = "amass"


class BodyModelError(InputError):
    """A body-model (SMPL+H / SMPL-X / DMPL) file is malformed."""

    kind = "body_model"


class RegressorError(InputError):
    """A joint-regressor file is malformed."""

    kind = "regressor"


class DeformationTransferError(InputError):
    """An SMPL-X -> SMPL deformation-transfer file (``smplx2smpl_deftrafo_setup.pkl``) is missing or malformed."""

    kind = "deformation_transfer"


class UnsafePickleError(InputError):
    """A pickle referenced a global outside the allow-list; nothing was executed."""

    kind = "unsafe_pickle"


class H36MFormatError(InputError):
    """A VideoPose3D-format Human3.6M / CPN file is malformed or incomplete."""

    kind = "h36m"


class CameraError(InputError):
    """A camera calibration file is malformed."""

    kind = "camera"


class CorpusError(MocapCorpusError):
    """A corpus store is missing, inconsistent or cannot be opened at the requested version."""


class VersionConflictError(CorpusError):
    """Another build committed to the same branch first; nothing of ours was committed."""


class ConfigError(MocapCorpusError):
    """A configuration value is invalid."""


class ConfigFileError(InputError, ConfigError):
    """A run-config file (JSON / TOML / YAML) is unreadable, too large, or holds bad keys or values."""

    kind = "config"


class CheckpointError(InputError, ConfigError):
    """A checkpoint's files (meta.json, safetensors, state.pt) are missing, too large or malformed."""

    kind = "checkpoint"


# --- how callers treat errors, decided by class -----------------------------------------------------


def one_line(error: BaseException | str, limit: int | None = None, empty: str | None = None) -> str:
    """An error's message on one line (whitespace folded), cut to ``limit`` characters when given.

    A KeyError reads without the quotes ``str(KeyError)`` adds. An exception without a message reads
    as ``empty``, by default its class name. The one formatter behind the CLI's ``error:`` lines, a
    flow run's state message, reject reasons and every third-party error a typed error wraps.
    """
    msg = error.args[0] if isinstance(error, KeyError) and error.args else error
    text = " ".join(str(msg).split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__ if empty is None else empty
    return text if limit is None else text[:limit]


# Raised on purpose: the message says everything, so it is shown as one line without a traceback
# (the CLI: exit code 1; a flow run: Failed with it as the state message).
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (MocapCorpusError,)

# Failures the same inputs would meet again, so never retried: the project's typed errors (bad input,
# bad config, a corpus problem; a version conflict is retried by the build itself, see
# ``pipelines.build_result.on_top_of_conflicts``), a path that is missing or not allowed, a wrong value.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    MocapCorpusError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
    ValueError, TypeError, KeyError)

# I/O that may work the next time: a network hiccup, a lost connection (Dask's CommClosedError is
# one), a timeout, a broken pipe: OSError and its subclasses that are not in PERMANENT_ERRORS.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError,)


def is_transient(exc: BaseException, infrastructure: tuple[type[BaseException], ...] = ()) -> bool:
    """True for a failure a retry can cure: ``TRANSIENT_ERRORS`` or one of the caller's
    ``infrastructure`` classes (e.g. Dask's ``KilledWorker``), and never a ``PERMANENT_ERRORS`` one.
    Decided by class (``isinstance``), so a subclass inherits its base's verdict."""
    if isinstance(exc, PERMANENT_ERRORS):
        return False
    return isinstance(exc, TRANSIENT_ERRORS + tuple(infrastructure))
