"""A build never loses good files: one tree of good and bad sources, and problems shared by every
source that must fail before anything is committed."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.build_amass import BuildConfig, build_amass
from pipelines.sequence import WorkerSettings, process_source
from schemas.reader import CorpusReader
from schemas.records import Reject
from schemas.versions import list_versions
from schemas.errors import BodyModelError, RegressorError


def _with_betas(src, dst, betas):
    arrays = dict(np.load(src))
    arrays["betas"] = betas
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from tests.support.builds import make_inputs

    root = make_inputs(tmp_path_factory.mktemp("contain"), n_sequences=3, seed=7, duration_s=(1.0, 2.0))
    amass = root / "amass"
    good = sorted(str(p) for p in amass.rglob("*_poses.npz"))
    bad = amass / "Bad" / "s1"
    bad.mkdir(parents=True)
    (bad / "dir_poses.npz").mkdir()  # a directory named like a motion
    (amass / "Bad" / "real_dir").mkdir()
    os.symlink(amass / "Bad" / "real_dir", bad / "dirlink_poses.npz")  # a directory symlink
    os.symlink(bad / "loop_poses.npz", bad / "loop_poses.npz")  # a symlink loop
    zero_extra = np.zeros(300)
    zero_extra[:16] = np.load(good[0])["betas"][:16]
    _with_betas(good[0], amass / "Wide" / "s1" / "zero300_poses.npz", zero_extra)  # good: extra betas all 0
    _with_betas(good[0], bad / "beta300_poses.npz", np.full(300, 0.1))  # bad: 300 non-zero betas
    good.append(str(amass / "Wide" / "s1" / "zero300_poses.npz"))
    return root, good


def _cfg(root, corpus, **kw):
    return BuildConfig(amass_root=root / "amass", body_models=root / "body_models", corpus=corpus, n_workers=1, **kw)


def _state(corpus):
    return [(v.id, tuple(v.tags)) for v in list_versions(corpus)]


@pytest.mark.slow
def test_every_good_file_is_built_and_shared_problems_commit_nothing(tree, tmp_path, monkeypatch):
    root, good = tree
    corpus = tmp_path / "corpus"
    report = build_amass(_cfg(root, corpus, tag="v1"))
    reader = CorpusReader.open(corpus, "v1")
    built = set(reader.sequences.column("source_path").to_pylist())
    assert built == {str(os.path.realpath(p)) for p in good}  # every good file, nothing else
    reasons = {os.path.basename(r.source_path): r.reason for r in report.rejects}
    assert set(reasons) == {"dir_poses.npz", "dirlink_poses.npz", "loop_poses.npz", "beta300_poses.npz"}
    assert "directory" in reasons["dir_poses.npz"] and "directory" in reasons["dirlink_poses.npz"]
    assert "symbolic links" in reasons["loop_poses.npz"]
    assert "300 betas" in reasons["beta300_poses.npz"] and "not zero" in reasons["beta300_poses.npz"]
    assert all("\n" not in r for r in reasons.values())
    assert any("zero300_poses.npz" in n and "all zero" in n for n in report.notes)
    assert reader.build_info["notes"] == report.notes
    # the regressor's SPIN row order was fixed, and the version says so
    assert report.regressor_order["swapped_pairs"] == ["l_hip/r_hip", "l_knee/r_knee", "l_ankle/r_ankle"]
    assert reader.build_info["regressor_order"]["perm"][:7] == [0, 4, 5, 6, 1, 2, 3]

    # The same files with the root spelled another way: same sources, nothing recomputed or committed.
    before = _state(corpus)
    monkeypatch.chdir(root)
    again = build_amass(BuildConfig(amass_root="./amass/../amass", body_models="body_models", corpus=corpus,
                                    n_workers=1))
    assert again.up_to_date and again.version_id == report.version_id and _state(corpus) == before

    # Problems shared by every source fail before anything is committed: main and tags stay.
    cut = tmp_path / "cut.npy"
    cut.write_bytes((root / "body_models" / "J_regressor_h36m.npy").read_bytes()[:5000])
    undecidable = tmp_path / "undecidable.npy"
    one = np.zeros((17, 6890))
    one[:, 0] = 1.0
    np.save(undecidable, one)
    for bad in (cut, undecidable):
        with pytest.raises(RegressorError) as info:
            build_amass(_cfg(root, corpus, regressor=bad, tag="v2"))
        assert str(bad) in str(info.value) and "\n" not in str(info.value)
        assert _state(corpus) == before
        assert CorpusReader.open(corpus).version_id == report.version_id

    broken = tmp_path / "bm"
    shutil.copytree(root / "body_models", broken)
    female = broken / "smplh" / "female" / "model.npz"
    female.write_bytes(female.read_bytes()[:1000])
    with pytest.raises(BodyModelError) as info:
        build_amass(BuildConfig(amass_root=root / "amass", body_models=broken, corpus=corpus, n_workers=1))
    assert str(female) in str(info.value)
    assert _state(corpus) == before

    # The applied permutation is part of the config hash: trusting the file's order recomputes all.
    as_is = build_amass(_cfg(root, corpus, regressor_order="as-is"))
    assert as_is.n_recomputed == len(good) and as_is.regressor_order["swapped_pairs"] == []
    key = reader.sequences.column("key").to_pylist()[0]
    a = CorpusReader.open(corpus, "v1").read_sequence(key)["joints_world"]
    b = CorpusReader.open(corpus).read_sequence(key)["joints_world"]
    np.testing.assert_allclose(a[:, [1, 2, 3]], b[:, [4, 5, 6]], atol=1e-5)  # legs exchanged


def test_an_unexpected_error_in_one_source_is_a_reject(tree, monkeypatch):
    import pipelines.sequence

    root, good = tree

    def boom(*args, **kwargs):
        raise RuntimeError("placement\nfailed")

    monkeypatch.setattr(pipelines.sequence, "place_and_project", boom)
    settings = WorkerSettings(**BuildConfig(amass_root=root / "amass", body_models=root / "body_models",
                                            corpus=root / "c").data_settings())
    out = process_source(good[0], "k", "d", "s", "n", "sha", str(root / "body_models"),
                         str(root / "body_models" / "J_regressor_h36m.npy"), settings, "h")
    # the row records the hash of the bytes the failed attempt read, not the listing's ("sha")
    assert isinstance(out, Reject) and out.kind == "error"
    assert out.source_sha256 == hashlib.sha256(Path(good[0]).read_bytes()).hexdigest()
    assert out.reason == "failed while building: RuntimeError: placement failed"


def test_joints_cli_says_one_line_about_too_many_betas(tree, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    root, good = tree
    args = ["joints", "--body-models", str(root / "body_models"), "--out"]
    res = CliRunner().invoke(app, ["joints", str(root / "amass" / "Bad" / "s1" / "beta300_poses.npz"),
                                   *args[1:], str(tmp_path / "j.npy")])
    assert res.exit_code == 1 and "300 betas" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "j.npy").exists()
    res = CliRunner().invoke(app, ["joints", str(root / "amass" / "Wide" / "s1" / "zero300_poses.npz"),
                                   *args[1:], str(tmp_path / "k.npy")])
    assert res.exit_code == 0 and "all zero" in res.output and (tmp_path / "k.npy").exists()
