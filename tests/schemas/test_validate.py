"""validate / validate_corpus: a good store passes; broken manifests, offsets, NaNs, pixel-scale keypoints,
wrong chunking and dtypes are each reported."""

from __future__ import annotations

import io

import icechunk
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from tests.support.corpus_fixtures import J, make_seqs, write_corpus
from schemas import manifests as M
from schemas import store as S
from schemas.reader import CorpusReader
from schemas.versions import open_version
from schemas.validate import validate, validate_corpus


def _rewrite(path, fn) -> str:
    """Corrupt a committed corpus on purpose: ``fn(root_group)`` inside a new Icechunk commit."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    s = repo.writable_session("main")
    fn(zarr.open_group(s.store, mode="r+"))
    return s.commit("corrupt")


def _replace_manifest(root, name, table):
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = np.frombuffer(buf.getvalue(), np.uint8)
    root[S.MANIFESTS_GROUP].create_array(name, shape=data.shape, dtype=np.uint8, chunks=data.shape, overwrite=True)[:] = data


def test_validate_passes_good_and_reports_broken_stores(tmp_path):
    p = tmp_path / "c"
    good = write_corpus(p, make_seqs(0, lengths=(30, S.TIME_CHUNK + 20, 15)))
    assert validate_corpus(p) == []
    r = CorpusReader.open(p)
    _, root, _session = open_version(p, good)  # the committed group, as validate_corpus opens it

    # Direct validate(): the same group with edited manifests.
    assert validate(root, r.sequences, r.views, r.rejects) == []
    off = r.sequences.column("offset").to_numpy().copy()
    off[1] += 1
    shifted = r.sequences.set_column(r.sequences.schema.get_field_index("offset"), M.SEQUENCES.field("offset"),
                                     pa.array(off, pa.int64()))
    problems = validate(root, shifted, r.views)
    assert any("row 1: offset" in x for x in problems), problems
    vn = r.views.column("n_frames").to_numpy().copy()
    vn[1] -= 1  # view 1 belongs to sequence 1 (TIME_CHUNK + 20 frames)
    wrong_len = r.views.set_column(r.views.schema.get_field_index("n_frames"), M.VIEWS.field("n_frames"),
                                   pa.array(vn, pa.int64()))
    problems = validate(root, r.sequences, wrong_len)
    assert f"views row 1: n_frames {S.TIME_CHUNK + 19} != sequence 1 n_frames {S.TIME_CHUNK + 20}" in problems
    assert any("views row 2: offset" in x for x in problems), problems  # a gap that is not padding to a chunk
    vn[1] += 1
    vn[-1] -= 1  # the last view ends a frame before the view arrays do
    short = r.views.set_column(r.views.schema.get_field_index("n_frames"), M.VIEWS.field("n_frames"),
                               pa.array(vn, pa.int64()))
    assert any("rows end at frame" in x for x in validate(root, r.sequences, short))
    dropped = r.sequences.drop(["config_hash"])
    assert any("config_hash" in x and "missing" in x for x in validate(root, dropped, r.views))
    bad_vid = r.views.set_column(0, M.VIEWS.field("view_id"), pa.array(np.arange(r.views.num_rows)[::-1], pa.int64()))
    assert any("view_id" in x for x in validate(root, r.sequences, bad_vid))

    # A committed off-by-one offset in the stored manifest.
    _rewrite(p, lambda g: _replace_manifest(g, "sequences", shifted))
    problems = validate_corpus(p)
    assert any("offset" in x for x in problems), problems
    assert validate_corpus(p, good) == []  # the good version is still good

    # A NaN written into a view array of a fresh good version.
    write_corpus(p, make_seqs(0, lengths=(30, S.TIME_CHUNK + 20, 15)))

    def nan(g):
        g[S.JOINTS_CAM.path][S.TIME_CHUNK + 7, 3, 0] = np.nan
    _rewrite(p, nan)
    problems = validate_corpus(p)
    assert problems == [f"array {S.JOINTS_CAM.path}: 1 rows hold NaN or Inf (first at row {S.TIME_CHUNK + 7})"], problems

    # Keypoints in pixels instead of normalised coordinates.
    write_corpus(p, make_seqs(0, lengths=(30,)))

    def pixels(g):
        a = g[S.KEYPOINTS_2D.path]
        a[:] = a[:] * 500 + 500
        g[S.IN_VIEW.path][:] = True
    _rewrite(p, pixels)
    assert any("beyond" in x for x in validate_corpus(p))

    # Wrong chunking / dtype of an array.
    write_corpus(p, make_seqs(0, lengths=(30,)))

    def rechunk(g):
        data = g[S.JOINTS_WORLD.path][:]
        g["sequences"].create_array("joints_world", shape=data.shape, dtype=np.float64, chunks=(10, J, 3),
                                    overwrite=True)[:] = data
    _rewrite(p, rechunk)
    problems = validate_corpus(p)
    assert any("chunks" in x for x in problems) and any("dtype" in x for x in problems), problems
    assert validate_corpus(tmp_path / "nothing") != []


def test_a_version_written_before_a_later_manifest_column_is_still_valid():
    """``body_model`` joined the sequences manifest after store format mocap-corpus/1: a version without
    it is valid (read as nulls, ``schemas.manifests.conformed``); any other missing column is still a problem."""
    import pyarrow as pa

    from schemas import manifests as M
    from schemas.validate import _schema_problems

    def problems(schema):
        return _schema_problems("sequences", M.conformed("sequences", schema.empty_table()))

    older = pa.schema([f for f in M.SEQUENCES if f.name != "body_model"])
    assert problems(older) == []
    assert problems(M.SEQUENCES) == []
    broken = pa.schema([f for f in M.SEQUENCES if f.name not in ("body_model", "gender")])
    assert problems(broken) == ["manifest sequences: column 'gender' missing"]
