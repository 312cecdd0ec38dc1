"""Export a corpus version (any version, any subset) back to VideoPose3D ``.npz`` files.

The files keep VideoPose3D's keys and nesting (``pipelines.h36m`` reads them). By default the 3D file
holds the 32-joint Human3.6M layout that VideoPose3D's ``Human36mDataset`` loads and then reduces
with its fixed ``remove_joints`` list (``H36M_32_DROPPED``): the 17 corpus joints sit at the indices
that loader keeps, the other 15 are exact where the corpus holds them (an imported Human3.6M corpus)
and otherwise at their parent joint's position (AMASS corpora). ``layout="h36m17"`` writes the
17-joint file, which ``Human36mDataset`` cannot load (it indexes 32 joints): it is for loaders that take
the 17 training joints as they are.

The 2D files hold float32 pixels as VideoPose3D's own files do (re-importing them gives the same
normalised float32 keypoints: import -> export -> import is bit-identical). VideoPose3D's ``run.py``
needs every camera's 2D for every action it has 3D for (it loops over the four cameras of each action
and fails on a ``None``), and its own data preparation leaves out an action it cannot use (S11's
corrupted "Directions" video), so by default an imported Human3.6M action missing a camera's 2D in any
exported detection source is left out of every file and reported; ``incomplete="keep"`` writes ``None`` in those slots,
as VideoPose3D's generic 2D preparation script does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.h36m import (NUM_CAMERAS, VP3D_METADATA, expand_17_to_32, reduce_32_to_17, save_vp3d_npz,
                            vp3d_filenames)
from schemas.cameras import H36M_CAMERA_IDS, denormalize_pixels
from schemas.reader import CorpusReader

log = logging.getLogger(__name__)


def _select(table, subset) -> list[dict]:
    """Rows of the sequences table kept by ``subset``: None, keys, or {column: value | [values]}."""
    rows = table.to_pylist()
    if subset is None:
        return rows
    if isinstance(subset, Mapping):
        def keep(r):
            return all(r.get(col) in (v if isinstance(v, (list, tuple, set, frozenset)) else (v,))
                       for col, v in subset.items())
        return [r for r in rows if keep(r)]
    if callable(subset):
        return [r for r in rows if subset(r)]
    if isinstance(subset, str):
        subset = [subset]
    wanted = set(subset)
    return [r for r in rows if r["key"] in wanted or r["sequence_id"] in wanted]


def _vp3d_names(row: dict) -> tuple[str, str]:
    """(subject, action) under which a sequence is exported."""
    if row.get("source") == "h36m" and row.get("subject") and row.get("name"):
        return row["subject"], row["name"]
    return row.get("subject") or row.get("dataset") or "all", row.get("name") or row["key"]


def _joints_for_layout(seq: dict, joints: np.ndarray, layout: str) -> np.ndarray:
    """(T, 17, 3) or (T, 32, 3) float32: the stored 32 joints where the corpus holds them (exact), else
    the 17 expanded with each missing joint at its parent's position."""
    if layout == "h36m17":
        return joints
    full = seq.get("joints_world_32")
    if full is not None:
        full = np.asarray(full, dtype=np.float32)
        # The 17 training joints are authoritative; the stored 32 must agree with them.
        if np.array_equal(reduce_32_to_17(full), joints):
            return full
        log.warning("stored 32-joint positions disagree with the 17 joints; exporting parents' positions")
    return expand_17_to_32(joints)


INCOMPLETE = ("drop", "keep")


def export_vp3d(reader_or_path: Any, out_dir: str | os.PathLike, version: str | None = None,
                subset: Any = None, name: str = "h36m", layout: str = "h36m32", *, incomplete: str = "drop",
                skipped: list | None = None, progress=None) -> dict[str, Path]:
    """Write a corpus version (or a subset of its sequences) as VideoPose3D ``.npz`` files.

    Writes ``data_3d_<name>.npz`` (positions_3d: subject -> action -> (T, 32, 3) float32 world metres)
    and one ``data_2d_<name>_<det>.npz`` per detection source present (positions_2d: subject ->
    action -> [(T, 17, 2) float32 pixels] x 4 in H36M camera order; metadata). ``subset``: None,
    an iterable of sequence keys/ids, a {column: value(s)} filter on the sequences manifest, or a
    predicate on its rows. ``layout="h36m32"`` (default) writes the 32-joint 3D layout VideoPose3D's
    loader expects: ``joints_world_32`` where the corpus holds it, else ``expand_17_to_32``;
    ``layout="h36m17"`` writes (T, 17, 3). ``incomplete``: "drop" (default) leaves out an action that
    lacks a camera's 2D, "keep" writes None there (module doc); each action left out is appended to
    ``skipped`` (when given) as ``"SUBJECT/ACTION: why"``. ``progress``: ``callback(done, total)`` per
    sequence. Returns {"3d": path, "2d_<det>": path, ...}.
    """
    if layout not in ("h36m17", "h36m32"):
        raise ValueError(f"layout must be 'h36m17' or 'h36m32', got {layout!r}")
    if incomplete not in INCOMPLETE:
        raise ValueError(f"incomplete must be one of {INCOMPLETE}, got {incomplete!r}")

    reader = CorpusReader.open(reader_or_path, version=version) if isinstance(reader_or_path, (str, os.PathLike)) else reader_or_path
    if reader.num_joints != 17:
        raise ValueError(f"{reader.path}: {reader.num_joints} joints; the VideoPose3D export needs the 17-joint H36M set")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = _select(reader.sequences, subset)
    views_by_seq: dict[int, list[dict]] = {}
    for v in reader.views.to_pylist():
        views_by_seq.setdefault(int(v["sequence_id"]), []).append(v)
    cam_ids = tuple(H36M_CAMERA_IDS)

    pos3d: dict[str, dict[str, np.ndarray]] = {}
    pos2d: dict[str, dict[str, dict[str, list]]] = {}
    used: set[tuple[str, str]] = set()
    h36m_actions: set[tuple[str, str]] = set()  # imported from Human3.6M: what run.py would load
    rows = sorted(rows, key=lambda r: r["key"])
    for done, row in enumerate(rows, 1):
        subject, action = _vp3d_names(row)
        if (subject, action) in used:  # two sequences under one name: fall back to the unique key
            action = row["key"]
        used.add((subject, action))
        if row.get("source") == "h36m":
            h36m_actions.add((subject, action))
        seq = reader.read_sequence(int(row["sequence_id"]))
        joints = np.asarray(seq["joints_world"], dtype=np.float32)
        pos3d.setdefault(subject, {})[action] = _joints_for_layout(seq, joints, layout)
        vrows = sorted(views_by_seq.get(int(row["sequence_id"]), []), key=lambda v: int(v["view_id"]))
        for i, v in enumerate(vrows):
            det = v.get("detections") or "projected"
            slots = pos2d.setdefault(det, {}).setdefault(subject, {}).setdefault(action, [])
            slot = cam_ids.index(v["camera_id"]) if v["rig"] == "h36m" and v["camera_id"] in cam_ids else len(slots)
            if slot < len(slots) and slots[slot] is not None:  # same camera twice (e.g. other rig subjects)
                slot = len(slots)
            while len(slots) <= slot:
                slots.append(None)
            intr, _ = reader.camera(int(v["view_id"]))
            uv = np.asarray(reader.read_view(int(v["view_id"]))["keypoints_2d"], dtype=np.float64)
            slots[slot] = np.asarray(denormalize_pixels(uv, float(intr[9]), float(intr[10])), dtype=np.float32)
        if progress is not None:
            progress(done, len(rows))

    for det, tree in pos2d.items():  # H36M files always list 4 cameras, None where missing
        for actions in tree.values():
            for cams in actions.values():
                cams.extend([None] * (NUM_CAMERAS - len(cams)))
    if incomplete == "drop":
        for subject, action, why in _incomplete_actions(pos3d, pos2d, h36m_actions):
            del pos3d[subject][action]
            for tree in pos2d.values():
                tree.get(subject, {}).pop(action, None)
            if skipped is not None:
                skipped.append(f"{subject}/{action}: {why}")
        _drop_empty(pos3d)
        for tree in pos2d.values():
            _drop_empty(tree)
    n3, _ = vp3d_filenames(name)
    paths = {"3d": out / n3}
    save_vp3d_npz(paths["3d"], positions_3d=pos3d)
    for det, tree in sorted(pos2d.items()):
        p = out / vp3d_filenames(name, det)[1]
        save_vp3d_npz(p, positions_2d=tree, metadata=dict(VP3D_METADATA))
        paths[f"2d_{det}"] = p
    return paths


def _incomplete_actions(pos3d: dict, pos2d: dict, which: set) -> list[tuple[str, str, str]]:
    """(subject, action, why) of each action in ``which`` that some detection source lacks, or holds
    ``None`` for one of its cameras: what VideoPose3D's ``run.py`` cannot load. (Sequences from other
    sources, e.g. AMASS, have no Human3.6M camera table there and are exported as they are.)"""
    out = []
    for subject, actions in pos3d.items():
        for action in actions:
            if (subject, action) not in which:
                continue
            for det, tree in sorted(pos2d.items()):
                cams = tree.get(subject, {}).get(action)
                if cams is None:
                    out.append((subject, action, f"no 2D in {det}"))
                    break
                missing = [H36M_CAMERA_IDS[i] if i < len(H36M_CAMERA_IDS) else str(i)
                           for i, c in enumerate(cams) if c is None]
                if missing:
                    out.append((subject, action, f"no 2D for camera {', '.join(missing)} in {det}"))
                    break
    return out


def _drop_empty(tree: dict) -> None:
    for subject in [s for s, actions in tree.items() if not actions]:
        del tree[subject]
