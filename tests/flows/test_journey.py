"""Issue 26, the user's journey: progress that reaches 100 %, pictures that a browser can show, one
consistent error line with the right exit code, paths in flow parameters resolved and named."""

from __future__ import annotations

import base64
import logging
import re

import pytest

from flows.cli import main


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ------------------------------------------------------------------------------------------ progress

def test_build_progress_reaches_the_last_source_with_rates(tmp_path):
    """The build reported each source but the last (the CLI bar ended at 8/9, the artifact at 89 %)."""
    from tests.support.builds import build_config, make_inputs
    from pipelines.build_amass import build_amass

    root = make_inputs(tmp_path / "in", n_sequences=3, seed=2, duration_s=(1.0, 1.5), broken=True)
    calls = []
    # progress comes a shard at a time: one source a shard here, so every source is reported
    build_amass(build_config(root, tmp_path / "c", shard_mb=1e-6),
                progress=lambda done, total, info: calls.append((done, total, info)))
    assert [(d, t) for d, t, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    last = calls[-1][2]
    assert last["source_frames"] > 0 and last["source_fps"] > 0
    # with the default shards (all four files in one), the one report is the last source
    calls.clear()
    build_amass(build_config(root, tmp_path / "d"), progress=lambda done, total, info: calls.append((done, total, info)))
    assert calls and calls[-1][:2] == (4, 4)


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_flow_progress_logs_every_10_percent_and_the_end(monkeypatch):
    import flows.progress
    from flows.progress import Progress

    logger, got = logging.getLogger("test-progress"), Lines()
    logger.addHandler(got)
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(flows.progress, "run_logger", lambda: logger)
    p = Progress("things", every_s=1e9, artifact=False)
    for i in range(1, 21):
        p(i, 20, {"rows": i * 10})
    lines = [x for x in got.lines if x.startswith("things:")]
    assert lines[0].startswith("things: 1/20 (5%)") and lines[-1].startswith("things: 20/20 (100%)"), lines
    assert 8 <= len(lines) <= 12, lines  # about one a 10 %
    rates = [float(m.group(1).replace(",", "")) for ln in lines if (m := re.search(r"at ([0-9.,e+]+)/s", ln))]
    assert len(rates) == len(lines) and all(r > 0 for r in rates), lines
    p.restart("again")
    p(5, 5)
    assert got.lines[-1].startswith("again: 5/5 (100%)")


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plain_progress_lines_off_a_terminal():
    """Without a terminal: quiet for quick work, a line every 5 s for long work, and its 100 % line."""
    import io

    from flows.progress import LineTicker

    clock, out = FakeClock(), io.StringIO()
    tick = LineTicker("frames/s", stream=out, clock=clock)
    for i in range(1, 11):  # quick: 10 frames in 1 s
        clock.t += 0.1
        tick(i, 10, "quick")
    assert out.getvalue() == ""
    for i in range(1, 101):  # slow: 100 frames in 20 s
        clock.t += 0.2
        tick(i, 100, "drawing")
    lines = out.getvalue().splitlines()
    assert 3 <= len(lines) <= 5 and lines[-1].startswith("drawing: 100/100 (100%), 5 frames/s"), lines
    assert all("ETA" in ln for ln in lines[:-1])


def test_one_progress_bar_on_a_terminal_lines_off_one():
    """The CLI's ``bar`` and a flow's ``Progress`` draw the same rich bar on a terminal (label, counts,
    rate in the unit); off a terminal the CLI prints plain lines instead."""
    import io

    from rich.console import Console

    from flows.progress import LineTicker, TerminalBar, bar

    screen = io.StringIO()
    term = Console(file=screen, force_terminal=True, width=150)
    with bar("frames/s", console=term) as tick:
        assert isinstance(tick, TerminalBar)
        for i in range(1, 6):
            tick(i, 5, "drawing walk.gif", "x")
    assert "drawing walk.gif" in screen.getvalue() and "5/5" in screen.getvalue()
    with bar("frames/s", console=Console(file=io.StringIO(), force_terminal=False)) as tick:
        assert isinstance(tick, LineTicker)


# ------------------------------------------------------------------------------------------ pictures

def test_image_markdown_embeds_the_picture_and_names_the_file(tmp_path):
    from PIL import Image

    from flows.artifacts import MAX_EMBED_BYTES, image_markdown

    png = tmp_path / "a.png"
    Image.new("RGB", (120, 80), "white").save(png)
    md = image_markdown(png, "a [test] | picture")
    src = re.search(r"!\[[^\]]*\]\((data:image/png;base64,[^)]+)\)", md).group(1)
    assert base64.b64decode(src.split(",", 1)[1]) == png.read_bytes()
    assert str(png.resolve()) in md and "file://" not in md
    big = tmp_path / "big.gif"
    big.write_bytes(b"GIF89a" + b"\0" * (MAX_EMBED_BYTES + 1))
    mp4 = tmp_path / "a.mp4"
    mp4.write_bytes(b"\0\0\0\x18ftypmp42")
    for f in (big, mp4):
        md = image_markdown(f, "x")
        assert "data:" not in md and str(f.resolve()) in md and "Not embedded" in md


# ------------------------------------------------------------------------------------------ messages

@pytest.mark.parametrize("args, words", [
    (["joints", "x.npz", "--body-models", "bm", "--out", "j.npy", "--fps", "-5"], ["--fps", "positive"]),
    (["joints", "x.npz", "--body-models", "bm", "--out", "j.npy", "--fps", "abc"], ["--fps"]),
    (["joints", "x.npz", "--body-models", "bm", "--out", "j.npy", "--regressor-order", "asis"], ["asis", "as-is"]),
    (["build-amass", "a", "--body-models", "bm", "--corpus", "c", "--regressor-order", "asis"], ["asis"]),
    (["build-amass", "a", "--body-models", "bm", "--corpus", "c", "--rig", "h37m"], ["h37m", "3dhp"]),
    (["build-amass", "a", "--body-models", "bm", "--corpus", "c", "--workers", "0"], ["--workers"]),
    (["export-vp3d", "c", "--out", "e", "--joints", "5"], ["--joints", "17, 32"]),
    (["infer", "r", "k.npy", "--out", "o.npy", "--width", "-1"], ["--width"]),
    (["train", "--config", "tiny", "--corpus", "c", "--out", "r", "--nproc", "0"], ["--nproc"]),
])
def test_a_bad_command_line_is_one_error_line_and_exit_2(capsys, args, words):
    code, out, err = cli(capsys, *args)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (code, err)
    assert all(w in lines[0] for w in words), lines[0]
    assert not re.search(r"\b[A-Z][a-z]+(Error|Exception)\b", err), err  # never a class name


def test_bad_input_is_one_error_line_and_exit_1(capsys, tmp_path):
    code, _, err = cli(capsys, "train", "--config", tmp_path / "missing.json", "--corpus", "c", "--out", tmp_path / "r")
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert str(tmp_path / "missing.json") in lines[0] and "not found" in lines[0] and "preset" not in lines[0].split(":")[1]
    code, _, err = cli(capsys, "train", "--config", "tiny_typo", "--corpus", "c", "--out", tmp_path / "r")
    assert code == 1 and "unknown preset" in err


def test_validate_problems_are_error_lines(capsys, monkeypatch):
    import schemas.validate

    monkeypatch.setattr(schemas.validate, "validate_corpus", lambda c, v=None: ["views/x: 3 rows, manifest says 4",
                                                                                "sequences/y: NaN"])
    code, out, err = cli(capsys, "validate", "/some/corpus")
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 1 and lines == ["error: views/x: 3 rows, manifest says 4", "error: sequences/y: NaN"], err


def test_cli_regressor_orders_are_the_pipelines():
    from flows.cli.corpus import REGRESSOR_ORDERS
    from pipelines.regressor_order import REGRESSOR_ORDERS as ours

    assert REGRESSOR_ORDERS == tuple(ours)


def test_train_summary_names_the_versions_read_and_what_steps_count():
    from pathlib import Path

    from flows.cli.training import train_summary_rows
    from uplift.train import RunResult

    run = RunResult(run_dir=Path("/r"), checkpoint=Path("/r/checkpoints/final"), eval_table=[],
                    history=[{"epoch": 1, "steps": 2, "loss": 0.5}, {"epoch": 2, "steps": 2, "loss": 0.25}],
                    corpora={"train": ["/c/amass@SNAPA"], "eval": ["/c/h36m@SNAPH"]})
    rows = dict(train_summary_rows(run))
    assert rows["train corpora"] == "/c/amass@SNAPA" and rows["eval corpora"] == "/c/h36m@SNAPH"
    assert rows["optimizer steps in epoch 2"] == 2 and rows["epochs done"] == 2
    assert "corpora" not in rows and "steps" not in rows


# ------------------------------------------------------------------------------------------ paths in flows

def test_relative_paths_resolve_against_the_serving_folder(tmp_path, monkeypatch):
    from flows.paths import resolve_path, resolve_spec

    monkeypatch.chdir(tmp_path)
    assert resolve_path("data/amass") == tmp_path / "data/amass"
    assert resolve_path("/abs/x") == __import__("pathlib").Path("/abs/x")
    assert resolve_path("s3://b/p") == "s3://b/p" and resolve_path(None) is None
    assert resolve_spec("corpora/h36m@h36m-cpn-v1") == f"{tmp_path}/corpora/h36m@h36m-cpn-v1"
    assert resolve_spec("s3://b/c@v1") == "s3://b/c@v1"


@pytest.mark.slow
def test_a_flow_path_error_names_the_resolved_path(prefect_api, tmp_path, monkeypatch):
    """A deployment given ``amass_root: "amass"`` failed with ``amass: AMASS root is not a directory``:
    relative to what? The run now says the absolute path it looked at."""
    from flows.build_amass import build_amass_flow
    from pipelines.build_amass import BuildConfig

    monkeypatch.chdir(tmp_path)
    state = build_amass_flow(BuildConfig(amass_root="amass", body_models="bm", corpus="corpora/a"), return_state=True)
    assert state.is_failed()
    assert str(tmp_path / "amass") in state.message or str(tmp_path / "bm") in state.message, state.message
