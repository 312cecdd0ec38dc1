"""Validate a corpus against its on-disk contract (``schemas.store`` + ``schemas.manifests``).

``validate`` takes an open Zarr group and the manifest tables and returns human-readable problems
(an empty list means valid). Array data is read one time chunk at a time, so memory stays bounded
whatever the corpus size. ``validate_corpus`` opens a repository path at a version through
``schemas.repository`` (the one opener every reader uses). With ``keys`` (sequence keys), the array
values are checked for those sequences and their views only (what an incremental build recomputed);
manifests, layout and cameras are always checked whole.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import zarr

from schemas import manifests as M
from schemas import store as S
from schemas.errors import one_line
from schemas.manifests import read_manifest

# Normalised coordinates live in [-1, 1] (the short side less); an in-view joint beyond this is a
# units or normalisation bug (pixels stored instead of normalised coordinates), not detector noise.
IN_VIEW_LIMIT = 1.25
ORTHONORMAL_TOL = 1e-4
MAX_REPORTS = 5  # per check: the first few offenders, then a count


def _schema_problems(name: str, table: pa.Table) -> list[str]:
    want = M.MANIFESTS[name]
    got = table.schema
    if got.equals(want, check_metadata=False):
        return []
    out = []
    for f in want:
        if f.name not in got.names:
            out.append(f"manifest {name}: column {f.name!r} missing")
        else:
            g = got.field(f.name)
            if g.type != f.type or g.nullable != f.nullable:
                out.append(f"manifest {name}: column {f.name!r} is {g.type}{'' if g.nullable else ' not null'}, "
                           f"expected {f.type}{'' if f.nullable else ' not null'}")
    out += [f"manifest {name}: unexpected column {n!r}" for n in got.names if n not in want.names]
    if not out:
        out.append(f"manifest {name}: column order differs from schemas.manifests ({got.names})")
    return out


def _capped(msgs: list[str], what: str) -> list[str]:
    if len(msgs) <= MAX_REPORTS:
        return msgs
    return msgs[:MAX_REPORTS] + [f"... and {len(msgs) - MAX_REPORTS} more {what}"]


def _layout(table: pa.Table, name: str, total: int | None, what: str, chunk: int | None = None) -> list[str]:
    """Non-negative lengths; offsets in row order, each row starting where the previous one ended -
    or, with ``chunk`` (format 2), at the next multiple of ``chunk`` after it (padding between the
    regions of two writers); the last row ends at ``total``."""
    off = table.column("offset").to_numpy(zero_copy_only=False).astype(np.int64)
    n = table.column("n_frames").to_numpy(zero_copy_only=False).astype(np.int64)
    out = [f"{name} row {i}: n_frames {n[i]} < 0" for i in np.flatnonzero(n < 0)]
    prev_end = np.concatenate([[0], (off + n)[:-1]]) if len(n) else n
    ok = off == prev_end
    if chunk:
        aligned = -(-prev_end // chunk) * chunk
        ok |= off == aligned
    rule = "contiguous" if not chunk else f"contiguous or padded to the next multiple of {chunk}"
    out += [f"{name} row {i}: offset {off[i]} after a row ending at {prev_end[i]} (offsets must be {rule}, "
            f"non-overlapping)" for i in np.flatnonzero(~ok)]
    out = _capped(out, f"{name} offset problems")
    end = int((off + n)[-1]) if len(n) else 0
    if total is not None and end != total:
        out.append(f"{name}: rows end at frame {end} but {what} holds {total} frames")
    return out


def _arrays(group: zarr.Group) -> tuple[dict[str, zarr.Array], int | None, list[str]]:
    out, arrays = [], {}
    num_joints = None
    for spec in S.ARRAYS:
        try:
            arr = group[spec.path]
        except (KeyError, FileNotFoundError):
            out.append(f"array {spec.path}: missing")
            continue
        if not isinstance(arr, zarr.Array):
            out.append(f"array {spec.path}: is a group, expected an array")
            continue
        arrays[spec.path] = arr
        if spec is S.JOINTS_WORLD and arr.ndim == 3:
            num_joints = int(arr.shape[1])
    if num_joints is None:
        out.append("cannot infer the joint count (sequences/joints_world missing or malformed)")
        return arrays, None, out
    for spec in S.ARRAYS:
        arr = arrays.get(spec.path)
        if arr is None:
            continue
        if arr.dtype != spec.dtype:
            out.append(f"array {spec.path}: dtype {arr.dtype}, expected {spec.dtype}")
        want = spec.shape(0, num_joints)[1:]
        if tuple(arr.shape[1:]) != want:
            out.append(f"array {spec.path}: trailing shape {tuple(arr.shape[1:])}, expected {want}")
        if tuple(arr.chunks) != spec.chunks(num_joints):
            out.append(f"array {spec.path}: chunks {tuple(arr.chunks)}, expected {spec.chunks(num_joints)}")
    out += _optional_arrays(group, arrays)
    return arrays, num_joints, out


def _optional_arrays(group: zarr.Group, arrays: dict[str, zarr.Array]) -> list[str]:
    """An optional array, where present, must match its spec and cover every sequence frame."""
    out = []
    for spec in S.OPTIONAL_ARRAYS:
        try:
            arr = group[spec.path]
        except (KeyError, FileNotFoundError):
            continue
        if not isinstance(arr, zarr.Array):
            out.append(f"array {spec.path}: is a group, expected an array")
            continue
        if arr.dtype != spec.dtype:
            out.append(f"array {spec.path}: dtype {arr.dtype}, expected {spec.dtype}")
        if tuple(arr.shape[1:]) != spec.shape(0, 0)[1:]:
            out.append(f"array {spec.path}: trailing shape {tuple(arr.shape[1:])}, expected {spec.shape(0, 0)[1:]}")
        ref = arrays.get(S.JOINTS_WORLD.path)
        if ref is not None and arr.shape[0] != ref.shape[0]:
            out.append(f"array {spec.path}: {arr.shape[0]} frames but {S.JOINTS_WORLD.path} holds {ref.shape[0]}")
    return out


def _spans(n_rows: int, step: int, ranges: list[tuple[int, int]] | None):
    """(start, stop) pieces of at most ``step`` rows covering ``ranges`` (sorted, merged; None: all rows)."""
    if ranges is None:
        ranges = [(0, n_rows)]
    merged: list[list[int]] = []
    for a, b in sorted((max(0, a), min(n_rows, b)) for a, b in ranges):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    for a, b in merged:
        for s in range(a, b, step):
            yield s, min(b, s + step)


def _blocks(arr: zarr.Array, ranges: list[tuple[int, int]] | None = None):
    """Yield (start, block) one leading-axis chunk at a time (over ``ranges`` only, when given)."""
    for a, b in _spans(arr.shape[0], int(arr.chunks[0]), ranges):
        yield a, arr[a:b]


def _nonfinite(arrays: dict[str, zarr.Array], ranges: dict[str, list] | None = None) -> list[str]:
    out = []
    for path, arr in arrays.items():
        if arr.dtype.kind != "f":
            continue
        first, count = None, 0
        for a, block in _blocks(arr, None if ranges is None else ranges.get(_SPECS_PER[path])):
            bad = ~np.isfinite(block.reshape(len(block), -1)).all(axis=1)
            if bad.any():
                count += int(bad.sum())
                first = a + int(np.argmax(bad)) if first is None else first
        if count:
            out.append(f"array {path}: {count} rows hold NaN or Inf (first at row {first})")
    return out


def _view_values(arrays: dict[str, zarr.Array], ranges: list[tuple[int, int]] | None = None) -> list[str]:
    """In-view joints must project near the image and lie in front of the camera."""
    kp, cam, iv = (arrays.get(s.path) for s in (S.KEYPOINTS_2D, S.JOINTS_CAM, S.IN_VIEW))
    if kp is None or cam is None or iv is None or not (kp.shape[0] == cam.shape[0] == iv.shape[0]):
        return []
    n_far = n_behind = 0
    first_far = first_behind = None
    for a, b in _spans(kp.shape[0], int(kp.chunks[0]), ranges):
        k, c, v = kp[a:b], cam[a:b], iv[a:b]
        with np.errstate(invalid="ignore"):
            far = v & (np.abs(k) > IN_VIEW_LIMIT).any(axis=-1)
            behind = v & ~(c[..., 2] > 0)
        rows_far, rows_behind = far.any(axis=-1), behind.any(axis=-1)
        if rows_far.any():
            n_far += int(rows_far.sum())
            first_far = a + int(np.argmax(rows_far)) if first_far is None else first_far
        if rows_behind.any():
            n_behind += int(rows_behind.sum())
            first_behind = a + int(np.argmax(rows_behind)) if first_behind is None else first_behind
    out = []
    if n_far:
        out.append(f"array {S.KEYPOINTS_2D.path}: {n_far} rows have in-view keypoints beyond +-{IN_VIEW_LIMIT} "
                   f"(normalised coordinates expected; first at row {first_far})")
    if n_behind:
        out.append(f"array {S.JOINTS_CAM.path}: {n_behind} rows have in-view joints with z <= 0 "
                   f"(behind the camera; first at row {first_behind})")
    return out


def _cameras(arrays: dict[str, zarr.Array]) -> list[str]:
    out = []
    intr, extr = arrays.get(S.INTRINSICS.path), arrays.get(S.EXTRINSICS.path)
    if intr is not None and intr.ndim == 2 and intr.shape[1] == len(S.INTRINSICS_FIELDS):
        for a, k in _blocks(intr):
            f = dict(zip(S.INTRINSICS_FIELDS, k.T))
            bad = ~((f["fx"] > 0) & (f["fy"] > 0) & (f["res_w"] > 0) & (f["res_h"] > 0))
            out += [f"array {S.INTRINSICS.path}: view {a + i} has non-positive focal length or resolution"
                    for i in np.flatnonzero(bad)]
    if extr is not None and extr.ndim == 3 and extr.shape[1:] == (3, 4):
        for a, e in _blocks(extr):
            r = e[:, :, :3].astype(np.float64)
            err = np.abs(r @ np.swapaxes(r, 1, 2) - np.eye(3)).max(axis=(1, 2)) if len(r) else np.zeros(0)
            with np.errstate(invalid="ignore"):
                bad = ~(err <= ORTHONORMAL_TOL) | ~(np.linalg.det(r) > 0) if len(r) else np.zeros(0, bool)
            out += [f"array {S.EXTRINSICS.path}: view {a + i} rotation is not a proper rotation"
                    for i in np.flatnonzero(bad)]
    return _capped(out, "camera problems")


_SPECS_PER = {s.path: s.per for s in S.ARRAYS}


def _row_ranges(sequences: pa.Table, views: pa.Table, keys) -> dict[str, list[tuple[int, int]]]:
    """{"sequence_frame": [(start, stop)], "view_frame": [...]}: the rows of the sequences ``keys`` and of their views."""
    wanted = set(keys)
    rows = [r for r in sequences.select(["key", "sequence_id", "offset", "n_frames"]).to_pylist() if r["key"] in wanted]
    ids = {r["sequence_id"] for r in rows}
    vrows = [r for r in views.select(["sequence_id", "offset", "n_frames"]).to_pylist() if r["sequence_id"] in ids]
    return {"sequence_frame": [(r["offset"], r["offset"] + r["n_frames"]) for r in rows],
            "view_frame": [(r["offset"], r["offset"] + r["n_frames"]) for r in vrows]}


def validate(group: zarr.Group, sequences: pa.Table, views: pa.Table, rejects: pa.Table | None = None,
             keys=None) -> list[str]:
    """Problems with a corpus group and its manifests (empty list = valid). ``keys``: check array values
    of these sequences (and their views) only; None: of all."""
    out: list[str] = []
    # columns added after format 1 may be absent (``schemas.manifests.ADDED_COLUMNS``)
    sequences, views = M.conformed("sequences", sequences), M.conformed("views", views)
    rejects = M.conformed("rejects", rejects) if rejects is not None else None
    store_format = dict(group.attrs).get(S.ATTR_FORMAT)
    tables = {"sequences": sequences, "views": views, **({"rejects": rejects} if rejects is not None else {})}
    schema_ok = {}
    for name, t in tables.items():
        p = _schema_problems(name, t)
        out += p
        schema_ok[name] = all(c in t.schema.names for c in M.MANIFESTS[name].names)
    arrays, num_joints, p = _arrays(group)
    out += p

    def length(spec):
        arr = arrays.get(spec.path)
        return None if arr is None else int(arr.shape[0])

    seq_len_by_id: dict[int, int] = {}
    if schema_ok["sequences"]:
        ids = sequences.column("sequence_id").to_pylist()
        all_keys = sequences.column("key").to_pylist()
        if len(set(ids)) != len(ids):
            out.append("manifest sequences: sequence_id values are not unique")
        if len(set(all_keys)) != len(all_keys):
            out.append("manifest sequences: key values are not unique")
        bad_split = sorted({s for s in sequences.column("split").to_pylist() if s not in M.SPLITS}, key=str)
        if bad_split:
            out.append(f"manifest sequences: unknown split values {bad_split} (expected {M.SPLITS})")
        seq_len_by_id = dict(zip(ids, sequences.column("n_frames").to_pylist()))
        out += _layout(sequences, "sequences", length(S.JOINTS_WORLD), S.JOINTS_WORLD.path,
                       _padding_chunk(store_format, arrays.get(S.JOINTS_WORLD.path)))
    if schema_ok["views"]:
        vid = views.column("view_id").to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(vid != np.arange(len(vid)))
        out += _capped([f"views row {i}: view_id {vid[i]} != row index {i}" for i in bad], "view_id problems")
        vs = views.column("sequence_id").to_pylist()
        vn = views.column("n_frames").to_pylist()
        if seq_len_by_id or schema_ok["sequences"]:
            msgs = []
            for i, (s, n) in enumerate(zip(vs, vn)):
                if s not in seq_len_by_id:
                    msgs.append(f"views row {i}: sequence_id {s} does not exist")
                elif n != seq_len_by_id[s]:
                    msgs.append(f"views row {i}: n_frames {n} != sequence {s} n_frames {seq_len_by_id[s]}")
            out += _capped(msgs, "view/sequence mismatches")
        for spec in S.ARRAYS:
            if spec.per == "view_frame":
                out += _layout(views, "views", length(spec), spec.path,
                               _padding_chunk(store_format, arrays.get(spec.path)))
                break
        totals = {}
        for spec in S.ARRAYS:
            n = length(spec)
            if n is None:
                continue
            if spec.per == "view" and n != views.num_rows:
                out.append(f"array {spec.path}: {n} rows but the views manifest has {views.num_rows}")
            if spec.per in ("view_frame", "sequence_frame"):
                totals.setdefault(spec.per, {})[spec.path] = n
        for per, lens in totals.items():
            if len(set(lens.values())) > 1:
                out.append(f"{per} arrays disagree on length: {lens}")
    if num_joints is not None:
        ranges = None
        if keys is not None and schema_ok["sequences"] and schema_ok["views"]:
            ranges = _row_ranges(sequences, views, keys)
        out += _nonfinite(arrays, ranges)
        out += _view_values(arrays, None if ranges is None else ranges["view_frame"])
        out += _cameras(arrays)
    return out


def _padding_chunk(store_format, arr) -> int | None:
    """The chunk length padding may round up to: format 2 arrays only (format 1 is contiguous)."""
    if store_format == S.STORE_FORMAT and arr is not None:
        return int(arr.chunks[0])
    return None


def validate_corpus(path: str | os.PathLike, version: str | None = None, keys=None) -> list[str]:
    """Open the Icechunk repository at ``path`` at ``version`` (tag | branch | snapshot id; None = main)
    read-only and validate it (array values of the sequences ``keys`` only, when given). Problems
    opening it are reported, not raised."""
    from schemas.errors import CorpusError
    from schemas.versions import open_version

    where = f"{path}@{version or 'main'}"
    try:
        _, group, _session = open_version(path, version)
    except CorpusError as e:  # no repository, no such version, unreachable store: a finding, one line
        return [str(e)]
    except Exception as e:  # noqa: BLE001 - any failure to open is a finding, reported as one line
        return [f"{where}: cannot open: {one_line(e, 200)}"]
    out = []
    attrs = dict(group.attrs)
    if attrs.get(S.ATTR_FORMAT) not in S.READABLE_FORMATS:
        out.append(f"{where}: root attr {S.ATTR_FORMAT} is {attrs.get(S.ATTR_FORMAT)!r}, expected one of "
                   f"{S.READABLE_FORMATS}")
    for key in (S.ATTR_FPS, S.ATTR_JOINT_SET, S.ATTR_BUILD_INFO):
        if key not in attrs:
            out.append(f"{where}: root attr {key} missing")
    tables = {}
    for name in M.MANIFESTS:
        try:
            tables[name] = read_manifest(group, name)
        except Exception as e:  # noqa: BLE001
            out.append(f"{where}: manifest {name} unreadable: {one_line(e, 200)}")
    if "sequences" not in tables or "views" not in tables:
        return out
    seqs = tables["sequences"]
    if S.ATTR_FPS in attrs and "fps" in seqs.schema.names:
        odd = {f for f in seqs.column("fps").to_pylist() if f is not None and abs(f - float(attrs[S.ATTR_FPS])) > 1e-9}
        if odd:
            out.append(f"{where}: sequences with fps {sorted(odd)} != corpus fps {attrs[S.ATTR_FPS]}")
    return out + validate(group, seqs, tables["views"], tables.get("rejects"), keys=keys)
