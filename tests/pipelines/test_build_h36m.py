"""The Human3.6M build and the export back (VideoPose3D format): what a build records, export,
import -> export -> import round trips, and the contract with VideoPose3D's loader."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.build_h36m import H36MBuildConfig, build_h36m
from pipelines.h36m import load_positions_2d, load_positions_3d, reduce_32_to_17
from pipelines.h36m_export import export_vp3d
from schemas.cameras import H36M_CAMERA_IDS
from schemas.reader import CorpusReader
from schemas.validate import validate_corpus
from tests.pipelines.conftest import ACTIONS, SUBJECTS, same_tree


@pytest.fixture(scope="module")
def cpn_corpus(files, tmp_path_factory):
    d, _ = files
    path = tmp_path_factory.mktemp("corpus") / "h36m"
    summary = build_h36m(H36MBuildConfig(data_dir=d, corpus=path, detections="cpn", tag="h36m-cpn-v1"))
    return path, summary


def test_build_takes_any_videopose3d_2d_file_not_only_cpn_or_gt(files, tmp_path):
    """The CLI took any detections name (data_2d_h36m_<name>.npz, e.g. VideoPose3D's Detectron file or
    an export's "projected"), the flow only cpn | gt: the one config type takes any name."""
    import shutil

    d, paths = files
    shutil.copy(paths["3d"], tmp_path / "data_3d_h36m.npz")
    shutil.copy(paths["gt"], tmp_path / "data_2d_h36m_detectron_ft_h36m.npz")
    result = build_h36m(H36MBuildConfig(data_dir=tmp_path, corpus=tmp_path / "corpus", detections="detectron_ft_h36m"))
    views = CorpusReader.open(tmp_path / "corpus").views
    assert result.n_sequences > 0 and set(views.column("detections").to_pylist()) == {"detectron_ft_h36m"}


# ------------------------------------------------------------------------------ corpus, export, round trip

def test_build_records_trimming_rejects_and_splits(cpn_corpus, files):
    path, summary = cpn_corpus
    pos3d = load_positions_3d(files[1]["3d"])
    cpn, _ = load_positions_2d(files[1]["cpn"])
    r = CorpusReader.open(path, "h36m-cpn-v1")
    seqs = r.sequences.to_pylist()
    assert summary.n_sequences == len(seqs) == len(SUBJECTS) * len(ACTIONS)
    assert {s["source"] for s in seqs} == {"h36m"}
    assert {s["subject"]: s["split"] for s in seqs} == {"S1": "train", "S9": "test", "S11": "test"}
    by_id = {s["sequence_id"]: s for s in seqs}
    for v in r.views.to_pylist():
        s = by_id[v["sequence_id"]]
        T = len(pos3d[s["subject"]][s["name"]])
        T2 = len(cpn[s["subject"]][s["name"]][H36M_CAMERA_IDS.index(v["camera_id"])])
        assert v["n_frames"] == s["n_frames"] == T
        assert v["trimmed_frames"] == T2 - T
        assert v["detections"] == "cpn"
    assert summary.n_trimmed_views == sum(v["trimmed_frames"] > 0 for v in r.views.to_pylist()) > 0
    rej = {row["source_path"].rsplit("#", 1)[1] for row in r.rejects.to_pylist()}
    assert rej == {"S2", f"S11/Directions 1/{H36M_CAMERA_IDS[1]}"}
    assert r.build_info["source"] == "h36m" and r.build_info["detections"] == "cpn"
    assert summary.version_id == r.version_id
    assert validate_corpus(path, "h36m-cpn-v1") == []


def test_round_trip_import_export_import_is_identical(cpn_corpus, tmp_path):
    path, _ = cpn_corpus
    a = CorpusReader.open(path, "h36m-cpn-v1")
    out = export_vp3d(path, tmp_path / "exp", version="h36m-cpn-v1", incomplete="keep")  # every sequence
    assert set(out) == {"3d", "2d_cpn"} and out["2d_cpn"].name == "data_2d_h36m_cpn_ft_h36m_dbb.npz"
    build_h36m(H36MBuildConfig(data_dir=tmp_path / "exp", corpus=tmp_path / "again", detections="cpn"))
    b = CorpusReader.open(tmp_path / "again")
    provenance = {"source_path", "source_sha256", "config_hash"}
    for name in ("sequences", "views"):
        for col in getattr(a, name).column_names:
            if col in provenance or col == "trimmed_frames":  # the export holds the trimmed 2D
                continue
            assert getattr(a, name).column(col) == getattr(b, name).column(col), (name, col)
    for sid in a.sequences.column("sequence_id").to_pylist():
        assert np.array_equal(a.read_sequence(sid)["joints_world"], b.read_sequence(sid)["joints_world"])
    for vid in a.views.column("view_id").to_pylist():
        va, vb = a.read_view(vid), b.read_view(vid)
        for k in va:
            assert np.array_equal(va[k], vb[k]), k
        for x, y in zip(a.camera(vid), b.camera(vid)):
            assert np.array_equal(x, y)
    # and the files themselves are a fixed point: export(import(export)) == export
    out2 = export_vp3d(tmp_path / "again", tmp_path / "exp2", incomplete="keep")
    assert same_tree(load_positions_3d(out["3d"]), load_positions_3d(out2["3d"]))
    assert same_tree(load_positions_2d(out["2d_cpn"])[0], load_positions_2d(out2["2d_cpn"])[0])


def test_export_subset_and_32_joint_layout(cpn_corpus, files, tmp_path):
    path, _ = cpn_corpus
    out = export_vp3d(path, tmp_path / "test_split", subset={"split": "test"}, layout="h36m32")
    pos3d = load_positions_3d(out["3d"])
    assert set(pos3d) == {"S9", "S11"}
    orig = load_positions_3d(files[1]["3d"])
    for s in pos3d:
        for a, x in pos3d[s].items():
            assert x.shape == (len(orig[s][a]), 32, 3)
            assert np.array_equal(reduce_32_to_17(x), reduce_32_to_17(orig[s][a]))
    pos2d, meta = load_positions_2d(out["2d_cpn"])
    assert meta["num_joints"] == 17
    # S11/Directions 1 lacks camera 1's 2D: left out of both files by default, as VideoPose3D's own
    # preparation leaves out what its run.py cannot load; kept (None in that slot) on request
    assert "Directions 1" not in pos2d["S11"] and "Directions 1" not in pos3d["S11"]
    kept = export_vp3d(path, tmp_path / "keep", subset={"split": "test"}, incomplete="keep")
    cams = load_positions_2d(kept["2d_cpn"])[0]["S11"]["Directions 1"]
    assert len(cams) == 4 and cams[1] is None and all(c.dtype == np.float32 for c in cams if c is not None)
    # pixels come back as the file's detections (trimmed), to float32 precision
    cpn, _ = load_positions_2d(files[1]["cpn"])
    for c in (0, 2, 3):
        ref = cpn["S9"]["Walking"][c][: len(orig["S9"]["Walking"])]
        assert np.abs(pos2d["S9"]["Walking"][c] - ref).max() < 1e-3
    only = export_vp3d(path, tmp_path / "one", subset=["h36m/S1/Walking"])
    assert {s: list(v) for s, v in load_positions_3d(only["3d"]).items()} == {"S1": ["Walking"]}


# ------------------------------------------------------------------------------ VideoPose3D loader contract
# Facts about VideoPose3D's ``Human36mDataset`` (restated here, not imported from our code): it reads
# ``np.load(path, allow_pickle=True)['positions_3d'].item()``, expects (T, 32, 3) per subject/action,
# then keeps the joints left after removing these 15; its cameras exist for S1, S5-S9, S11 only.
VP3D_REMOVED = [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31]
VP3D_PARENTS = [-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12,
                16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30]
VP3D_CAMERA_SUBJECTS = {"S1", "S5", "S6", "S7", "S8", "S9", "S11"}


def _vp3d_loader(path) -> dict:
    """What that loader ends up holding: subject -> action -> (T, 17, 3) after remove_joints."""
    data = np.load(path, allow_pickle=True)["positions_3d"].item()
    kept = [j for j in range(32) if j not in VP3D_REMOVED]
    out = {}
    for subject, actions in data.items():
        assert subject in VP3D_CAMERA_SUBJECTS  # the loader indexes its camera table by subject
        out[subject] = {}
        for action, pos in actions.items():
            assert pos.ndim == 3 and pos.shape[1:] == (32, 3), pos.shape  # index 17 must exist
            out[subject][action] = pos[:, kept]
    return out


def test_default_export_is_what_videopose3d_loads(cpn_corpus, files, tmp_path):
    path, _ = cpn_corpus
    out = export_vp3d(path, tmp_path / "exp", version="h36m-cpn-v1")
    loaded = _vp3d_loader(out["3d"])
    r = CorpusReader.open(path, "h36m-cpn-v1")
    orig = np.load(files[1]["3d"], allow_pickle=True)["positions_3d"].item()
    n = 0
    for row in r.sequences.to_pylist():
        if (row["subject"], row["name"]) == ("S11", "Directions 1"):  # a camera's 2D is missing: left out
            assert row["name"] not in loaded["S11"]
            continue
        got = loaded[row["subject"]][row["name"]]
        assert np.array_equal(got, r.read_sequence(row["key"])["joints_world"])
        # the static joints come back exactly as the original file had them
        full = np.load(out["3d"], allow_pickle=True)["positions_3d"].item()[row["subject"]][row["name"]]
        assert full.dtype == np.float32 and np.array_equal(full, orig[row["subject"]][row["name"]])
        n += 1
    assert n == len(SUBJECTS) * len(ACTIONS) - 1
    kp = np.load(out["2d_cpn"], allow_pickle=True)
    meta = kp["metadata"].item()
    assert meta["layout_name"] == "h36m" and meta["num_joints"] == 17
    left, right = meta["keypoints_symmetry"]
    assert len(left) == len(right) == 6
    cams = kp["positions_2d"].item()["S1"]["Walking"]
    assert len(cams) == 4 and all(c.shape[1:] == (17, 2) and c.dtype == np.float32 for c in cams)
    _vp3d_run_prepares(np.load(out["3d"], allow_pickle=True)["positions_3d"].item(), kp["positions_2d"].item())
    # --joints 17: today's file
    x17 = load_positions_3d(export_vp3d(path, tmp_path / "j17", layout="h36m17")["3d"])
    assert all(x.shape[1] == 17 for a in x17.values() for x in a.values())


def _vp3d_run_prepares(pos3d: dict, pos2d: dict) -> None:
    """The checks VideoPose3D's ``run.py`` makes while preparing data (restated facts): every action with
    3D is in the 2D file; it visits every listed camera, reading its length (a None fails there) and
    normalising its pixels in place (float32 like its own files); each action lists as many cameras as
    its subject has (4); the 2D is at least as long as the 3D."""
    for subject, actions in pos3d.items():
        assert subject in pos2d
        for action, x in actions.items():
            cams = pos2d[subject][action]
            assert len(cams) == 4
            for kps in cams:
                assert kps is not None and kps.shape[0] >= x.shape[0] and kps.dtype == np.float32
                kps[..., :2] = kps[..., :2] / 1000 * 2 - 1  # in place, as run.py normalises


def test_export_without_stored_32_puts_static_joints_at_their_parents(tmp_path):
    from pipelines.writer import CorpusWriter
    from tests.support.corpus_fixtures import make_seq

    rng = np.random.default_rng(0)
    with CorpusWriter(tmp_path / "c") as w:
        seq = make_seq(rng, "S1/Walking", 12)
        seq.subject, seq.name = "S1", "Walking"
        w.add(seq)
        w.commit("amass-like")
    out = export_vp3d(tmp_path / "c", tmp_path / "exp")
    x = np.load(out["3d"], allow_pickle=True)["positions_3d"].item()["S1"]["Walking"]
    assert x.shape == (12, 32, 3)
    assert np.array_equal(_vp3d_loader(out["3d"])["S1"]["Walking"], seq.joints_world)
    for j in VP3D_REMOVED:
        assert np.array_equal(x[:, j], x[:, VP3D_PARENTS[j]]), j


def test_round_trip_keeps_all_32_joints_bit_identical(cpn_corpus, files, tmp_path):
    path, _ = cpn_corpus
    a = CorpusReader.open(path, "h36m-cpn-v1")
    export_vp3d(path, tmp_path / "exp", incomplete="keep")
    build_h36m(H36MBuildConfig(data_dir=tmp_path / "exp", corpus=tmp_path / "again", detections="cpn"))
    b = CorpusReader.open(tmp_path / "again")
    orig = load_positions_3d(files[1]["3d"])
    for row in a.sequences.to_pylist():
        sa, sb = a.read_sequence(row["key"]), b.read_sequence(row["key"])
        assert np.array_equal(sa["joints_world_32"], orig[row["subject"]][row["name"]])
        for k in ("joints_world", "joints_world_32"):
            assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]), k
    assert validate_corpus(tmp_path / "again") == []
