"""AMASS builds with SMPL-X archives: mixed trees (SMPL+H G, SMPL-X G and N), the body model chosen per
file, what the manifest / build info / report record, missing inputs as reject rows, bad transfer
files refused before anything is computed, and the transfer's sha256 in the config hash."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from pipelines.amass import read_amass
from pipelines.build_amass import BuildConfig, _check_inputs, build_amass
from pipelines.sequence import sequence_joints
from pipelines.synthetic.body_model import write_body_model_tree
from pipelines.synthetic.motions import write_amass_tree
from schemas.errors import DeformationTransferError, RegressorError
from schemas.reader import CorpusReader
from schemas.validate import validate_corpus

pytestmark = pytest.mark.slow  # each build starts a Dask cluster and loads SMPL-X models


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("build_x")
    files = write_body_model_tree(root / "bm", seed=0, smplx=True)
    motions = write_amass_tree(root / "amass", n_sequences=6, seed=2, duration_s=(1.0, 1.5), smplx_fraction=0.5)
    return root, files, motions


def _folder(dst, files, *names):
    """A body-model folder holding only ``names`` of ``files`` (symlinked in the AMASS layout)."""
    root = files["J_regressor_h36m"].parent
    for name in names:
        src = files[name]
        target = dst / src.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(src)
    return dst


def _cfg(amass, bm, corpus, **kw):
    return BuildConfig(amass_root=amass, body_models=bm, corpus=corpus, n_workers=1, **kw)


def test_mixed_tree_builds_each_file_with_its_own_body_model(inputs, tmp_path):
    root, files, motions = inputs
    report = build_amass(_cfg(root / "amass", root / "bm", tmp_path / "corpus", tag="mixed"))
    assert report.rejects == [] and validate_corpus(tmp_path / "corpus", "mixed") == []
    reader = CorpusReader.open(tmp_path / "corpus", "mixed")
    rows = reader.sequences.to_pylist()
    seqs = {str(p): read_amass(p) for p in motions}
    expected = {}
    for r in rows:  # the manifest names each sequence's family and gender: those of its file
        seq = seqs[r["source_path"]]
        assert (r["body_model"], r["gender"]) == (seq.model_type, seq.gender)
        expected[f"{seq.model_type}/{seq.gender}"] = expected.get(f"{seq.model_type}/{seq.gender}", 0) + 1
    assert {"smplx/neutral", "smplx/male", "smplh/female"} <= set(expected)  # SMPL-X N and G, SMPL+H
    assert reader.build_info["body_models_used"] == expected == report.body_models_used
    smplx = reader.build_info["smplx_regressor_order"]
    assert smplx["deftrafo_sha256"] and smplx["swapped_pairs"] == ["l_hip/r_hip", "l_knee/r_knee", "l_ankle/r_ankle"]
    assert ("regressor rows (SMPL-X)", smplx["message"]) in report.summary_rows()
    from flows.build_report import report_markdown

    md = report_markdown(report, [], "build-amass")
    assert "### Body models" in md and "| smplx | neutral |" in md and "deformation transfer sha256" in md
    # the stored joints of an SMPL-X N sequence are the exact regression (placement moves them rigidly)
    row = next(r for r in rows if r["body_model"] == "smplx" and r["gender"] == "neutral")
    want = sequence_joints(seqs[row["source_path"]], root / "bm", files["J_regressor_h36m"], 50.0)
    stored = reader.read_sequence(row["key"])["joints_world"]
    bones = lambda j: np.linalg.norm(j[:, 1:] - j[:, :1], axis=-1)  # noqa: E731
    np.testing.assert_allclose(bones(stored), bones(want[:len(stored)]), atol=1e-4)


def test_missing_models_or_transfer_are_reject_rows_and_the_build_goes_on(inputs, tmp_path):
    """A researcher with only SMPL-X models (male, neutral) and the transfer: SMPL-X G male and N files
    build; the female SMPL-X file and the SMPL+H files are rejected naming the missing model. Without
    the transfer, every SMPL-X file is rejected naming it, and SMPL+H files build."""
    root, files, motions = inputs
    only_x = _folder(tmp_path / "only_x", files, "smplx_male", "smplx_neutral", "deftrafo", "J_regressor_h36m")
    report = build_amass(_cfg(root / "amass", only_x, tmp_path / "c1"))
    reasons = {r.source_path: r.reason for r in report.rejects}
    for p in motions:
        seq = read_amass(p)
        if seq.model_type == "smplx" and seq.gender in ("male", "neutral"):
            assert str(p) not in reasons
        else:
            assert f"{seq.model_type}/{seq.gender}/model.npz: not found" in reasons[str(p)], reasons[str(p)]
    assert report.n_sequences == sum(1 for p in motions if str(p) not in reasons) > 0

    no_transfer = _folder(tmp_path / "no_transfer", files, *[k for k in files if k != "deftrafo"])
    report = build_amass(_cfg(root / "amass", no_transfer, tmp_path / "c2"))
    reader = CorpusReader.open(tmp_path / "c2")
    kinds = {r.source_path: (r.kind, r.reason) for r in report.rejects}
    for p in motions:
        if read_amass(p).model_type == "smplx":
            kind, reason = kinds[str(p)]
            assert kind == "deformation_transfer" and "smplx2smpl_deftrafo_setup.pkl: not found" in reason
        else:
            assert str(p) not in kinds
    assert set(reader.sequences.column("body_model").to_pylist()) == {"smplh"}
    assert "deformation transfer" in reader.build_info["smplx_unavailable"]


def _write_transfer(path, matrix):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"mtx": matrix.tocsc()}, protocol=2))
    return path


def test_a_bad_or_mirrored_transfer_refuses_the_build_before_anything_is_computed(inputs, tmp_path):
    import scipy.spatial

    from pipelines.deftrafo import load_deformation_transfer

    root, files, _ = inputs
    good = load_deformation_transfer(files["deftrafo"]).matrix.tolil()
    good[11, good.rows[11][0]] = np.inf
    bm = _folder(tmp_path / "bad", files, *[k for k in files if k != "deftrafo"])
    _write_transfer(bm / "transfer" / "smplx2smpl_deftrafo_setup.pkl", good)
    with pytest.raises(DeformationTransferError, match="NaN/inf"):
        build_amass(_cfg(root / "amass", bm, tmp_path / "corpus"))
    assert not (tmp_path / "corpus").exists()  # nothing computed, nothing committed
    # a transfer that reads every SMPL vertex from its mirror image: the SMPL-X side check sees the
    # regressor's rows on the other sides than the SMPL+H check does
    D = load_deformation_transfer(files["deftrafo"]).matrix
    vh = np.load(files["smplh_neutral"])["v_template"]
    _, mirror = scipy.spatial.cKDTree(vh).query(vh * [-1.0, 1.0, 1.0])
    mirrored = _write_transfer(tmp_path / "mirrored.pkl", D[mirror])
    with pytest.raises(RegressorError, match="disagree on which rows are left and right"):
        build_amass(_cfg(root / "amass", root / "bm", tmp_path / "corpus", deftrafo=mirrored))
    assert not (tmp_path / "corpus").exists()


def test_the_transfer_and_a_ready_regressor_join_the_config_hash(inputs, tmp_path):
    from pipelines.body_model import load_regressor
    from pipelines.deftrafo import compose_regressor, load_deformation_transfer
    from pipelines.synthetic.smplx_model import deformation_transfer

    root, files, _ = inputs
    base = _check_inputs(_cfg(root / "amass", root / "bm", tmp_path / "c"))
    copy = tmp_path / "same.pkl"
    shutil.copy(files["deftrafo"], copy)
    same = _check_inputs(_cfg(root / "amass", root / "bm", tmp_path / "c", deftrafo=copy))
    assert same.config_hash == base.config_hash  # content, not path
    other = _write_transfer(tmp_path / "other.pkl", deformation_transfer(seed=1))
    changed = _check_inputs(_cfg(root / "amass", root / "bm", tmp_path / "c", deftrafo=other))
    assert changed.smplx_order.deftrafo_sha256 != base.smplx_order.deftrafo_sha256
    assert changed.config_hash != base.config_hash
    ready = tmp_path / "J_regressor_h36m_smplx.npy"
    np.save(ready, compose_regressor(load_regressor(files["J_regressor_h36m"]),
                                     load_deformation_transfer(files["deftrafo"])).toarray())
    given = _check_inputs(_cfg(root / "amass", root / "bm", tmp_path / "c", smplx_regressor=ready))
    assert given.smplx_order.deftrafo_sha256 == "" and given.settings.smplx_regressor == str(ready)
    assert given.smplx_order.perm == base.smplx_order.perm and given.config_hash != base.config_hash
