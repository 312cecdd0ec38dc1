"""The AMASS build end to end on synthetic inputs: commit, validate, rejects, incremental rebuilds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipelines.build_amass import BuildConfig, build_amass
from pipelines.sequence import sequence_joints
from schemas.reader import CorpusReader
from schemas.versions import diff_versions, list_versions
from schemas.validate import validate_corpus


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from tests.support.builds import make_inputs

    return make_inputs(tmp_path_factory.mktemp("build"), n_sequences=6, seed=3, duration_s=(1.0, 4.0), broken=True)


def _cfg(root, corpus, **kw):
    return BuildConfig(amass_root=root / "amass", body_models=root / "body_models", corpus=corpus,
                       n_workers=1, **kw)


def test_build_commits_good_sequences_and_rejects_the_bad_one(inputs, tmp_path):
    report = build_amass(_cfg(inputs, tmp_path / "corpus", tag="v1"))
    assert not report.up_to_date
    assert validate_corpus(tmp_path / "corpus", "v1") == []
    assert [r.source_path.endswith("cut_poses.npz") for r in report.rejects] == [True]
    assert report.rejects[0].reason and report.rejects[0].kind == "amass"
    reader = CorpusReader.open(tmp_path / "corpus", "v1")
    assert reader.sequences.num_rows >= 6 and reader.views.num_rows == 4 * reader.sequences.num_rows
    assert set(reader.sequences.column("source").to_pylist()) == {"amass"}
    assert report.out_of_view_fraction < 0.01
    # the stored 3D world joints are what the exact regressor gives, resampled to 50 Hz
    row = reader.sequences.to_pylist()[0]
    from pipelines.amass import read_amass

    expected = sequence_joints(read_amass(row["source_path"]), inputs / "body_models",
                               inputs / "body_models" / "J_regressor_h36m.npy", 50.0)
    stored = reader.read_sequence(row["key"])["joints_world"]
    if len(stored) == len(expected):  # placement moves joints rigidly: compare bone lengths
        bones = lambda j: np.linalg.norm(j[:, 1:] - j[:, :1], axis=-1)
        np.testing.assert_allclose(bones(stored), bones(expected), atol=1e-4)


@pytest.mark.slow
def test_noop_rebuild_commits_nothing_and_one_changed_file_recomputes_one(inputs, tmp_path):
    root = tmp_path / "in"
    shutil.copytree(inputs, root)
    corpus = tmp_path / "corpus"
    first = build_amass(_cfg(root, corpus))
    n_versions = len(list_versions(corpus))

    files = lambda: {(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in corpus.rglob("*") if p.is_file()}
    before = files()
    again = build_amass(_cfg(root, corpus))
    assert again.up_to_date and again.version_id == first.version_id
    assert len(list_versions(corpus)) == n_versions
    assert files() == before  # a no-op rebuild writes nothing

    from pipelines.synthetic.motions import write_amass_tree

    victim = sorted((root / "amass").rglob("*_poses.npz"))[1]
    other = write_amass_tree(tmp_path / "other", n_sequences=1, seed=99, duration_s=(1.0, 2.0), smplx_fraction=0.0)[0]
    shutil.copy(other, victim)
    third = build_amass(_cfg(root, corpus))
    assert not third.up_to_date
    assert third.n_recomputed == 1 and third.n_carried >= 5
    d = diff_versions(corpus, first.version_id, third.version_id)
    touched = set(d.changed) | set(d.added) | set(d.removed)
    seqs = CorpusReader.open(corpus, first.version_id).sequences.to_pylist()
    victim_keys = {r["key"] for r in seqs if r["source_path"] == str(victim)}
    assert touched and {k.split("#")[0] for k in touched} == {k.split("#")[0] for k in victim_keys}
    assert validate_corpus(corpus) == []
    # the incremental result is exactly what a fresh build of the same inputs writes
    from pipelines.hashing import corpus_checksums

    build_amass(_cfg(root, tmp_path / "fresh"))
    assert corpus_checksums(CorpusReader.open(corpus)) == corpus_checksums(CorpusReader.open(tmp_path / "fresh"))


def test_3dhp_build_with_a_users_calibration_file(inputs, tmp_path):
    """rig 3dhp + camera.calibration: the stored cameras are the file's, and all views stay valid."""
    from pipelines.calibration import parse_3dhp_calibration
    from schemas.cameras import mpi_inf_3dhp_rig

    # Write the shipped chest-height cameras back in the dataset's own format (y-up world, mm).
    y_up = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # z-up -> y-up world
    blocks = []
    for cam in mpi_inf_3dhp_rig([0, 2, 4, 7, 8]):
        E = np.eye(4)
        E[:3, :3] = np.asarray(cam.R) @ y_up.T
        E[:3, 3] = np.asarray(cam.t) * 1000.0
        K = [cam.fx, 0, cam.cx, 0, 0, cam.fy, cam.cy, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        blocks.append(f"name {cam.id}\n  sensor 10 10\n  size 2048 2048\n  animated 0\n"
                      f"  intrinsic {' '.join(map(repr, map(float, K)))}\n"
                      f"  extrinsic {' '.join(map(repr, map(float, E.ravel())))}\n  radial 0\n")
    calib = tmp_path / "camera.calibration"
    calib.write_text("Skeletool Camera Calibration File V1.0\n" + "".join(blocks))
    cams = parse_3dhp_calibration(calib)

    report = build_amass(_cfg(inputs, tmp_path / "corpus", rig="3dhp", calibration=calib, cameras_per_sequence=3))
    reader = CorpusReader.open(tmp_path / "corpus")
    assert validate_corpus(tmp_path / "corpus") == [] and report.n_views == 3 * reader.sequences.num_rows
    assert set(reader.views.column("rig").to_pylist()) == {"3dhp"}
    assert set(reader.views.column("camera_id").to_pylist()) <= {c.id for c in cams}
    stored = {tuple(np.round(reader.camera(v)[0][:4], 6)) for v in range(reader.views.num_rows)}
    assert stored <= {tuple(np.round([c.fx, c.fy, c.cx, c.cy], 6)) for c in cams}
    with pytest.raises(Exception, match="3dhp"):
        build_amass(_cfg(inputs, tmp_path / "other", rig="h36m", calibration=calib))


def test_raw_placement_stores_the_mocap_trajectory_uncut(inputs, tmp_path):
    """``placement: raw`` (recipe official-code): joints as regressed, one sequence a source, and the
    choice recorded in the version's build info; the default build's settings (and hash) stay as before."""
    assert "placement" not in _cfg(inputs, tmp_path / "x").data_settings()
    build_amass(_cfg(inputs, tmp_path / "raw", tag="v1", placement="raw"))
    reader = CorpusReader.open(tmp_path / "raw", "v1")
    assert reader.build_info["settings"]["placement"] == "raw"
    assert reader.build_info["config"]["placement"] == "raw"
    assert not any("#" in k for k in reader.sequences["key"].to_pylist())  # never cut
    from pipelines.amass import read_amass

    for row in reader.sequences.to_pylist():
        expected = sequence_joints(read_amass(row["source_path"]), inputs / "body_models",
                                   inputs / "body_models" / "J_regressor_h36m.npy", 50.0)
        np.testing.assert_array_equal(reader.read_sequence(row["key"])["joints_world"], expected)
