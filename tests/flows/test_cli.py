"""The ``mocap-corpus`` command line end to end on synthetic data (typer's runner, same process)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def run(*args: str, ok: bool = True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    run("synth", "body-model", root / "bm")
    run("synth", "amass", root / "amass", "--sequences", "4", "--seed", "2")
    run("synth", "h36m", root / "h36m")
    return root


def test_synth_writes_the_documented_layouts(data):
    for g in ("male", "female", "neutral"):
        assert (data / "bm" / "smplh" / g / "model.npz").is_file()
        assert (data / "bm" / "dmpls" / g / "model.npz").is_file()
    assert np.load(data / "bm" / "J_regressor_h36m.npy").shape == (17, 6890)
    for g in ("male", "female", "neutral"):  # SMPL-X beside SMPL+H, and the deformation transfer
        assert (data / "bm" / "smplx" / g / "model.npz").is_file()
    assert (data / "bm" / "transfer" / "smplx2smpl_deftrafo_setup.pkl").is_file()
    assert len(list((data / "amass").rglob("*.npz"))) >= 4
    assert list((data / "amass").rglob("*_stageii.npz"))  # SMPL-X files mixed in
    assert {p.name for p in (data / "h36m").iterdir()} >= {
        "data_3d_h36m.npz", "data_2d_h36m_cpn_ft_h36m_dbb.npz", "data_2d_h36m_gt.npz"}


def _smplh_files(data):
    from pipelines.amass import iter_amass, read_amass

    return [s.path for s in iter_amass(data / "amass") if read_amass(s.path).model_type == "smplh"]


def test_inspect_and_joints(data, tmp_path):
    path = _smplh_files(data)[0]
    meta = json.loads(run("inspect", path).output)
    assert meta["model_type"] == "smplh" and meta["frames"] > 0 and meta["source_fps"] > 0
    out = tmp_path / "j.npy"
    run("joints", path, "--body-models", data / "bm", "--fps", "25", "--out", out)
    joints = np.load(out)
    expected_frames = int(np.floor((meta["frames"] - 1) / meta["source_fps"] * 25 + 1e-6)) + 1
    assert joints.shape == (expected_frames, 17, 3) and joints.dtype == np.float32


def test_joints_of_an_smplx_file_use_its_model_and_the_transfer(data, tmp_path):
    from pipelines.amass import iter_amass, read_amass

    path = next(s.path for s in iter_amass(data / "amass") if s.path.name.endswith("_stageii.npz"))
    seq = read_amass(path)
    out = tmp_path / "jx.npy"
    result = run("joints", path, "--body-models", data / "bm", "--fps", "25", "--out", out)
    assert f"body model: smplx {seq.gender}" in result.output
    assert "composed with the SMPL-X -> SMPL deformation transfer" in result.output
    assert np.load(out).shape[1:] == (17, 3)
    missing = run("joints", path, "--body-models", data / "bm", "--deftrafo", tmp_path / "nope.pkl", "--out", out,
                  ok=False)
    assert missing.exit_code == 1 and "nope.pkl: --deftrafo file not found" in missing.output


def test_bad_file_is_one_clear_line_and_exit_1(tmp_path):
    bad = tmp_path / "broken_poses.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result = run("inspect", bad, ok=False)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "error" in lines[0]


@pytest.mark.slow
def test_build_versions_validate_diff_tag_rejects(data, tmp_path):
    corpus = tmp_path / "corpus"
    run("build-amass", data / "amass", "--body-models", data / "bm", "--corpus", corpus, "--tag", "v1",
        "--workers", "1")
    run("build-amass", data / "amass", "--body-models", data / "bm", "--corpus", corpus, "--fps", "25",
        "--workers", "1")
    from schemas.versions import list_versions

    versions = list_versions(corpus)
    assert len(versions) == 2
    listing = run("versions", corpus).output
    assert versions[0].id in listing and "v1" in listing
    assert "valid" in run("validate", corpus, "--version", "v1").output
    run("tag", corpus, versions[0].id, "fps25")
    assert "fps25" in run("versions", corpus).output
    assert run("tag", corpus, versions[1].id, "fps25", ok=False).exit_code == 1  # tags are immutable
    diff = run("diff", corpus, "v1", "fps25").output
    assert "changed (" in diff and "changed (0)" not in diff
    run("rejects", corpus)


def test_build_h36m_and_export_round_trip(data, tmp_path):
    corpus = tmp_path / "h36m"
    run("build-h36m", data / "h36m", "--corpus", corpus, "--detections", "gt", "--tag", "gt")
    out = run("export-vp3d", corpus, "--version", "gt", "--out", tmp_path / "export").output
    assert "data_3d_h36m.npz" in out
    from pipelines.h36m import load_positions_2d, load_positions_3d

    p3 = load_positions_3d(tmp_path / "export" / "data_3d_h36m.npz")
    p2, meta = load_positions_2d(tmp_path / "export" / "data_2d_h36m_gt.npz")
    assert set(p3) == set(p2) and meta["num_joints"] == 17


def test_train_then_finetune_then_evaluate(data, tmp_path):
    corpus = tmp_path / "h36m"
    run("build-h36m", data / "h36m", "--corpus", corpus, "--tag", "cpn")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"preset": "tiny", "train": {"epochs": 1, "batch_size": 8},
                                  "steps_per_epoch": 3, "eval_every": 0, "block_frames": 256}))
    run("train", "--config", config, "--corpus", f"{corpus}@cpn", "--out", tmp_path / "pre")
    run("train", "--config", config, "--corpus", f"{corpus}@cpn", "--init", tmp_path / "pre", "--out", tmp_path / "ft")
    ft = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert ft["init"] and ft["uplift"]["train"]["lr"] == 2e-5  # fine-tuning settings from --init
    table = run("evaluate", tmp_path / "ft", "--corpus", f"{corpus}@cpn").output
    assert "mpjpe_mm" in table and "p_mpjpe_mm" in table


def test_train_reads_its_config_once_and_hands_the_trainer_that_run_config(tmp_path, monkeypatch):
    """From the command line to ``train``: one read of the file (before: three loads); a run's own
    config.json is a config too (the run's settings again)."""
    from pathlib import Path

    import uplift.launch
    import uplift.run_config
    from uplift.run_config import RunConfig
    from uplift.train import RunResult

    reads, handed = [], []
    parse = uplift.run_config._parse_config_file
    monkeypatch.setattr(uplift.run_config, "_parse_config_file", lambda p: reads.append(p) or parse(p))
    monkeypatch.setattr(uplift.launch, "train", lambda cfg, out_dir, corpus, **kw: handed.append(cfg) or RunResult(
        Path(out_dir), Path(out_dir) / "checkpoints" / "final", [], [], {"train": corpus, "eval": corpus}))
    recorded = Path(__file__).parents[1] / "uplift" / "data" / "runs_v1" / "tiny-official" / "config.json"
    run("train", "--config", recorded, "--corpus", tmp_path / "c@v1", "--out", tmp_path / "run")
    assert len(reads) == 1 and isinstance(handed[0], RunConfig)
    assert handed[0].model_dump(mode="json") == json.loads(recorded.read_text())["run"]


def test_cli_imports_no_prefect_and_runs_as_a_module():
    """``python -m flows.cli`` is the console script; importing the CLI must not pay for Prefect."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)  # the installed package, as a user runs it
    code = "import sys, flows.cli; sys.exit('prefect' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0
    r = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and "build-amass" in r.stdout and "infer" in r.stdout
