"""Human3.6M naming conventions shared by the importer and the evaluation: actions and protocol splits."""

from __future__ import annotations

import re

# Subjects of the standard test split (protocol #1/#2); every other subject trains.
H36M_TEST_SUBJECTS = ("S9", "S11")

# The same action is spelt differently by subject in the original data (S1: Photo/WalkDog).
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}
# "<action>[ <take>][.<camera id>]": VideoPose3D names ("Walking 1"), original video names ("Walking 1.54138969").
_ACTION = re.compile(r"^(?P<base>.*?)(?:[ _](?P<take>\d+))?(?:\.(?P<camera>\d+))?$")


def _parts(name: str) -> tuple[str, str]:
    m = _ACTION.match(str(name).strip())
    base = m.group("base").strip()
    return ACTION_ALIASES.get(base, base), m.group("take") or ""


def canonical_action(name: str) -> str:
    """Action label without take number or camera id, with spellings unified:
    ``"TakingPhoto 1" -> "Photo"``, ``"Walking 1.54138969" -> "Walking"``, ``"Sitting Down 2" -> "Sitting Down"``."""
    return _parts(name)[0]


def action_take(name: str) -> str:
    """``"TakingPhoto 1"`` and ``"Photo 1"`` name the same take: both give ``"Photo#1"``."""
    base, take = _parts(name)
    return f"{base}#{take}"


def split_of(subject: str) -> str:
    """Protocol split: train S1, S5, S6, S7, S8; test S9, S11; anything else is train."""
    return "test" if subject in H36M_TEST_SUBJECTS else "train"
