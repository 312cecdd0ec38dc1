"""Issue 14 at the command line: ``show``, ``infer``, ``--json`` listings, one-line errors, quiet logs.

Small synthetic data: a Human3.6M-format import (2 subjects x 2 actions, 60 frames) and a tiny
checkpoint trained for 2 steps on it. ``main([...])`` is the console entry (its exit code is returned).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from flows.cli import main
from schemas.reader import CorpusReader
from pipelines.build_h36m import H36MBuildConfig, build_h36m
from pipelines.h36m import load_positions_2d
from pipelines.synthetic.h36m import write_h36m_files


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from uplift.run_config import RunConfig
    from uplift.train import train

    root = tmp_path_factory.mktemp("see")
    files = write_h36m_files(root / "h36m", seed=1, subjects=("S1", "S9"), actions=("Walking", "Sitting 1"),
                             frames=60, subjects_2d_only=(), missing_cameras={("S9", "Sitting 1"): [2]})
    build_h36m(H36MBuildConfig(data_dir=root / "h36m", corpus=root / "corpus", detections="gt", tag="gt"))
    cfg = RunConfig(preset="tiny", train={"batch_size": 4, "epochs": 1}, steps_per_epoch=2, block_frames=64,
                    buffer_blocks=2, eval_every=0, train_split="train")
    steps = []
    run = train(cfg, root / "run", f"{root / 'corpus'}@gt", progress=lambda *a: steps.append(a))
    return {"root": root, "files": files, "corpus": root / "corpus", "checkpoint": run.checkpoint, "steps": steps}


def test_progress_hooks_report_steps_and_windows(world):
    from uplift.evaluate import evaluate

    assert [(s, n, i["epoch"], i["epochs"]) for s, n, i, in world["steps"]] == [(1, 2, 1, 1), (2, 2, 1, 1)]
    assert all(np.isfinite(i["loss"]) for _, _, i in world["steps"])
    seen = []
    evaluate(world["checkpoint"], f"{world['corpus']}@gt", s_in=[4], progress=lambda *a: seen.append(a))
    assert seen and seen[-1][0] == seen[-1][1] > 0 and seen[-1][2] == {"s_in": 4}
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ------------------------------------------------------------------------------------------ show

def test_show_writes_png_gif_and_mp4(world, capsys, tmp_path):
    spec = f"{world['corpus']}@gt"
    code, out, err = cli(capsys, "show", spec, "--sequence", "h36m/S1/Walking", "--view", "2", "--frames", "0:40",
                         "--out", tmp_path / "s.png")
    assert code == 0, err
    assert Image.open(tmp_path / "s.png").size[1] > Image.open(tmp_path / "s.png").size[0]  # rows of frames
    code, _, err = cli(capsys, "show", spec, "--sequence", "h36m/S9/Walking", "--frames", "10:16",
                       "--out", tmp_path / "s.gif")
    assert code == 0, err
    gif = Image.open(tmp_path / "s.gif")
    assert gif.n_frames == 3  # 50 Hz drawn every 2nd frame: real time at 25 frames/s
    code, _, err = cli(capsys, "show", spec, "--sequence", "h36m/S9/Walking", "--frames", "0:5",
                       "--out", tmp_path / "s.mp4")
    assert code == 0, err
    assert (tmp_path / "s.mp4").read_bytes()[4:8] == b"ftyp"  # an MP4 container


@pytest.mark.parametrize("args, words", [
    (["--sequence", "h36m/S7/Nope"], ["no sequence", "h36m/S7/Nope"]),
    (["--sequence", "h36m/S1/Walking", "--view", "9"], ["--view 9", "0..3"]),
    (["--sequence", "h36m/S1/Walking", "--frames", "50:10"], ["selects no frame"]),
    (["--sequence", "h36m/S1/Walking", "--frames", "a:b"], ["not A:B"]),
    (["--sequence", "h36m/S1/Walking", "--out-suffix"], ["No such option"]),
])
def test_show_errors_are_one_line(world, capsys, tmp_path, args, words):
    if "--out-suffix" not in args:
        args = args + ["--out", str(tmp_path / "x.png")]
    code, out, err = cli(capsys, "show", f"{world['corpus']}@gt", *args)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code in (1, 2) and len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err and all(w in lines[0] for w in words), lines[0]


def test_show_error_for_bad_suffix_and_missing_version(world, capsys, tmp_path):
    code, _, err = cli(capsys, "show", f"{world['corpus']}@gt", "--sequence", "h36m/S1/Walking",
                       "--out", tmp_path / "x.jpg")
    assert code == 1 and ".jpg" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "show", f"{world['corpus']}@nope", "--sequence", "h36m/S1/Walking",
                       "--out", tmp_path / "x.png")
    assert code == 1 and "no version 'nope'" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ infer

def test_infer_npz_and_npy_agree_and_match_the_library(world, capsys, tmp_path):
    from flows.inference import infer_keypoints

    ck = world["checkpoint"]
    code, out, err = cli(capsys, "infer", ck, world["files"]["gt"], "--subject", "S9", "--action", "Walking",
                         "--camera", "1", "--out", tmp_path / "a.npy", "--render", tmp_path / "a.png")
    assert code == 0, err
    a = np.load(tmp_path / "a.npy")
    px = load_positions_2d(world["files"]["gt"])[0]["S9"]["Walking"][1]
    assert a.shape == (len(px), 17, 3) and a.dtype == np.float32
    assert np.abs(a[:, 0]).max() == 0.0  # root-relative
    assert "s_in 4" in out  # the tiny preset's largest training stride
    assert (tmp_path / "a.png").stat().st_size > 0
    # the same 2D as a plain .npy in pixels (camera 1 is 1000 x 1000)
    np.save(tmp_path / "px.npy", px)
    code, _, err = cli(capsys, "infer", ck, tmp_path / "px.npy", "--width", "1000", "--height", "1000",
                       "--s-in", "4", "--out", tmp_path / "b.npy")
    assert code == 0, err
    b = np.load(tmp_path / "b.npy")
    assert np.array_equal(a, b)
    ref = infer_keypoints(ck, px.astype(np.float64), 1000.0, 1000.0, s_in=4)
    assert np.allclose(a, ref, atol=1e-6)
    # another stride gives another answer (the option is used)
    cli(capsys, "infer", ck, tmp_path / "px.npy", "--width", "1000", "--height", "1000", "--s-in", "2",
        "--out", tmp_path / "c.npy")
    assert not np.allclose(np.load(tmp_path / "c.npy"), a)


def test_infer_bad_inputs_are_one_line(world, capsys, tmp_path):
    ck, gt = world["checkpoint"], world["files"]["gt"]
    np.save(tmp_path / "wrong.npy", np.zeros((10, 16, 2)))
    np.save(tmp_path / "nan.npy", np.full((10, 17, 2), np.nan))
    np.save(tmp_path / "ok.npy", np.zeros((10, 17, 2)))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    cases = [
        ([gt, "--subject", "S5", "--action", "Walking", "--camera", "0"], "no subject 'S5'"),
        ([gt, "--subject", "S9", "--action", "Jumping", "--camera", "0"], "no action 'Jumping'"),
        ([gt, "--subject", "S9", "--action", "Walking"], "needs --camera"),
        ([gt, "--subject", "S9", "--action", "Walking", "--camera", "7"], "no camera '7'"),
        ([tmp_path / "wrong.npy", "--width", "10", "--height", "10"], "shape (10, 16, 2)"),
        ([tmp_path / "nan.npy", "--width", "10", "--height", "10"], "NaN"),
        ([tmp_path / "ok.npy"], "--width and --height"),
        ([tmp_path / "junk.npy", "--width", "10", "--height", "10"], "not a readable"),
        ([tmp_path / "missing.npy", "--width", "10", "--height", "10"], "file not found"),
        ([tmp_path / "ok.npy", "--width", "10", "--height", "10", "--s-in", "3"], "multiple of"),
    ]
    for args, words in cases:
        code, _, err = cli(capsys, "infer", ck, *args, "--out", tmp_path / "o.npy")
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 1 and len(lines) == 1 and words in lines[0] and "Traceback" not in err, (args, err)
    assert not (tmp_path / "o.npy").exists()  # nothing written on failure
    code, _, err = cli(capsys, "infer", tmp_path / "no-run", tmp_path / "ok.npy", "--width", "1", "--height", "1",
                       "--out", tmp_path / "o.npy")
    assert code == 1 and "no checkpoint" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ listings

def test_versions_and_rejects_json_one_object_a_line(world, capsys, tmp_path):
    code, out, _ = cli(capsys, "versions", world["corpus"], "--json")
    rows = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and len(rows) == 1
    assert set(rows[0]) >= {"id", "tags", "time", "message", "sequences", "frames", "views"}
    assert "store_bytes" not in rows[0]  # Icechunk records no per-version size: no key that is always null
    r = CorpusReader.open(world["corpus"], "gt")
    assert rows[0]["id"] == r.version_id and rows[0]["tags"] == ["gt"] and rows[0]["sequences"] == 4
    code, out, _ = cli(capsys, "rejects", world["corpus"], "--json")
    rej = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and len(rej) == r.rejects.num_rows > 0  # S9's missing camera
    assert all(set(x) >= {"source_path", "kind", "reason"} for x in rej)


def test_versions_fits_80_columns(world, capsys, monkeypatch):
    from schemas.versions import tag_version

    tag_version(world["corpus"], "gt", "a-rather-long-tag-name-for-the-release-candidate")
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli(capsys, "versions", world["corpus"])
    r = CorpusReader.open(world["corpus"], "gt")
    assert code == 0 and r.version_id in out and "a-rather-long-tag-name-for-the-release-candidate" in out
    assert max(len(x) for x in out.splitlines()) <= 80, out
    assert "size" not in out and "MB" not in out  # no empty size column


def test_usage_errors_exit_2_in_one_line(capsys):
    for args in (["nope"], ["versions"], ["versions", "x", "--bogus"]):
        code, _, err = cli(capsys, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error:"), (args, err)


def test_quiet_by_default_verbose_on_request(capsys):
    root_level = logging.getLogger().level
    main(["versions", "/nonexistent/corpus"])
    assert logging.getLogger("distributed").getEffectiveLevel() == logging.WARNING
    main(["versions", "/nonexistent/corpus", "-v"])  # -v anywhere on the line
    assert logging.getLogger("distributed").getEffectiveLevel() == logging.INFO
    main(["versions", "/nonexistent/corpus"])
    assert logging.getLogger("distributed").getEffectiveLevel() == logging.WARNING
    logging.getLogger().setLevel(root_level)
    capsys.readouterr()


# ------------------------------------------------------------------------------------------ a quiet build

@pytest.mark.slow
def test_console_build_is_quiet_even_with_port_8787_taken(tmp_path):
    """The real console entry in a subprocess: stderr holds no Dask INFO lines and no port warning;
    ``-v`` brings the library logs back."""
    import os
    import socket
    import subprocess
    import sys

    from pipelines.synthetic.body_model import write_body_model_tree
    from pipelines.synthetic.motions import write_amass_tree

    write_body_model_tree(tmp_path / "bm", seed=0)
    write_amass_tree(tmp_path / "amass", n_sequences=2, seed=1)
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 8787))  # as if another cluster's dashboard held it
        blocker.listen(1)
    except OSError:
        pass  # already taken by something else: just as good
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("DASK_LOGGING__DISTRIBUTED", None)
    cmd = [sys.executable, "-m", "flows.cli", "build-amass",
           str(tmp_path / "amass"), "--body-models", str(tmp_path / "bm"), "--workers", "1"]
    try:
        quiet = subprocess.run(cmd + ["--corpus", str(tmp_path / "c1")], capture_output=True, text=True, env=env,
                               timeout=600)
        loud = subprocess.run(cmd + ["--corpus", str(tmp_path / "c2"), "-v"], capture_output=True, text=True,
                              env=env, timeout=600)
    finally:
        blocker.close()
    assert quiet.returncode == 0, quiet.stderr
    assert "distributed" not in quiet.stderr and "8787" not in quiet.stderr, quiet.stderr
    # the regressor's swapped rows are said once (the summary's row), never as a WARNING log line
    said = quiet.stdout + quiet.stderr
    assert " ".join(said.split()).count("swapped to fix sides") == 1 and "WARNING" not in said, said
    assert "committed" in quiet.stdout
    assert loud.returncode == 0 and "INFO distributed" in loud.stderr
    assert "already in use" not in loud.stderr
