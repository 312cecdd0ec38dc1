"""One small error hierarchy for every bad input the project can meet.

Every error names the offending file (or store) and a one-line reason, so the CLI can print
``str(err)`` and a build can record ``(path, reason, kind)`` as a ``rejects`` row.
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
        self.reason = " ".join(str(reason).split())  # one line, always
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
