"""Prefect mechanics of the flows against a real local server, with the pipeline/trainer faked:
artifacts list rejects, transient failures retry and bad input does not, training is cached on inputs."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipelines.build_result import BuildResult
from schemas.records import Reject
from schemas.errors import AmassFormatError, VersionConflictError
from tests.flows.conftest import artifacts_of

pytestmark = pytest.mark.slow


@dataclass
class FakeReport(BuildResult):
    corpus: str
    version_id: str = "SNAP123"
    up_to_date: bool = False
    n_sequences: int = 3
    n_frames: int = 300
    n_views: int = 12
    rejects: list = field(default_factory=list)
    in_view_fraction: float = 0.97
    elapsed_s: float = 0.1
    tag: str | None = None


@pytest.fixture
def fake_build(monkeypatch):
    """Replace build_amass and validate_corpus; ``calls`` records each build, ``plan`` scripts failures."""
    import pipelines.build_amass as build

    state = {"calls": 0, "plan": []}

    def build_amass(cfg, progress=None):
        state["calls"] += 1
        if state["plan"]:
            raise state["plan"].pop(0)
        for i in range(1, 4):
            if progress:
                progress(i, 3, {"source_frames": 100 * i})
        return FakeReport(corpus=str(cfg.corpus), tag=cfg.tag,
                          rejects=[Reject(str(Path(cfg.amass_root) / "Bad" / "cut_poses.npz"),
                                          "not a zip file | truncated", "amass")])

    monkeypatch.setattr(build, "build_amass", build_amass)
    validate = types.ModuleType("schemas.validate")
    validate.validate_corpus = lambda path, version=None, keys=None: []
    monkeypatch.setitem(sys.modules, "schemas.validate", validate)
    return state


def _args(tmp_path, **kw):
    from pipelines.build_amass import BuildConfig

    return dict(config=BuildConfig(amass_root=tmp_path / "amass", body_models=tmp_path / "bm",
                                   corpus=tmp_path / "corpus", **kw))


def test_build_artifact_lists_rejects_and_flow_completes(prefect_api, fake_build, tmp_path):
    from flows.build_amass import build_amass_flow

    state = build_amass_flow(**_args(tmp_path, tag="v1"), return_state=True)
    assert state.is_completed()
    out = state.result()
    assert out["version_id"] == "SNAP123" and out["n_rejects"] == 1
    arts = artifacts_of(state.state_details.flow_run_id)
    md = [a for a in arts if a.type == "markdown" and a.key == "build-amass-report"]
    assert len(md) == 1
    assert "cut_poses.npz" in md[0].data and "not a zip file \\| truncated" in md[0].data
    assert "| 0.97 |" in md[0].data and "SNAP123" in md[0].data
    link = next(a for a in arts if a.key == "build-amass-corpus")  # link artifacts are stored as markdown
    assert str(tmp_path / "corpus") in link.data and "file://" in link.data
    assert any(a.type == "progress" and float(a.data) == 100.0 for a in arts)


def test_transient_failure_is_retried_bad_input_is_not(prefect_api, fake_build, tmp_path, monkeypatch):
    from flows.build_amass import build_amass_flow, run_build

    monkeypatch.setattr(run_build, "retry_delay_seconds", 0)
    fake_build["plan"] = [ConnectionResetError("the object store hung up")]
    assert build_amass_flow(**_args(tmp_path), return_state=True).is_completed()
    assert fake_build["calls"] == 2

    fake_build["calls"] = 0
    fake_build["plan"] = [AmassFormatError("/x.npz", "bad"), AmassFormatError("/x.npz", "bad")]
    assert build_amass_flow(**_args(tmp_path), return_state=True).is_failed()
    assert fake_build["calls"] == 1

    # The build already rebuilt on top of the other version up to COMMIT_ATTEMPTS times before a conflict
    # reaches the task (pipelines.build_result.on_top_of_conflicts): the task does not run it again.
    fake_build["calls"] = 0
    fake_build["plan"] = [VersionConflictError("another build committed first")]
    assert build_amass_flow(**_args(tmp_path), return_state=True).is_failed()
    assert fake_build["calls"] == 1


@pytest.fixture
def fake_train(monkeypatch):
    from uplift.train import RunResult

    state = {"calls": []}
    train_mod = types.ModuleType("uplift.train")

    def train(cfg, out_dir, corpus, init=None, progress=None):
        state["calls"].append((cfg, str(out_dir), list(corpus), init))
        if progress is not None:  # the flow's TrainProgress: steps, then an evaluation pass
            progress(1, 1, {"phase": "train", "epoch": 1, "epochs": 1, "loss": 0.5})
            progress(4, 4, {"phase": "evaluate", "epoch": 1, "epochs": 1, "s_in": 4})
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        ck = Path(out_dir) / "checkpoint.safetensors"
        ck.write_bytes(b"weights")
        (Path(out_dir) / "metrics.png").write_bytes(b"png")
        return RunResult(run_dir=Path(out_dir), checkpoint=ck, history=[{"epoch": 1, "mpjpe": 12.5}], eval_table=[],
                         corpora={})

    # imported before the fake module goes in: a launcher first imported now would bind the fake
    # train for good (monkeypatch would "restore" it to the fake), and a later real run would not train
    import uplift.checkpoint
    import uplift.launch

    train_mod.train = train
    train_mod.RunResult = RunResult
    monkeypatch.setitem(sys.modules, "uplift.train", train_mod)
    monkeypatch.setattr(uplift.launch, "train", train)  # bound at import by the launcher
    monkeypatch.setattr(uplift.checkpoint, "find_checkpoint", lambda p: Path(p) if Path(p).is_dir() else Path(p).parent)
    import flows.training as training

    monkeypatch.setattr(training, "pin_version", lambda s: s.split("@")[0] + "@SNAP-" + (s.split("@") + ["main"])[1])
    return state


def test_pretrain_is_cached_on_inputs_and_finetune_uses_its_checkpoint(prefect_api, fake_train, tmp_path):
    from flows.training import DONE_MARKER, finetune_flow, pretrain_flow

    run = tmp_path / "pre"
    first = pretrain_flow(corpus=["/c@v1"], out_dir=run, overrides={"epochs": 1})
    assert first["corpus"] == ["/c@SNAP-v1"] and len(fake_train["calls"]) == 1
    assert fake_train["calls"][0][2] == ["/c@SNAP-v1"]  # the trainer gets the pinned id, not the tag
    again = pretrain_flow(corpus=["/c@v1"], out_dir=run, overrides={"epochs": 1})
    assert len(fake_train["calls"]) == 1 and again["checkpoint"] == first["checkpoint"]  # cache hit
    pretrain_flow(corpus=["/c@v1"], out_dir=run, overrides={"epochs": 2})
    assert len(fake_train["calls"]) == 2  # another input: recomputed
    (run / DONE_MARKER).unlink()
    pretrain_flow(corpus=["/c@v1"], out_dir=run, overrides={"epochs": 2})
    assert len(fake_train["calls"]) == 3  # run dir no longer holds a finished run: recomputed

    state = finetune_flow(corpus=["/h@h36m"], init=run, out_dir=tmp_path / "ft", return_state=True)
    assert state.is_completed()
    cfg, out_dir, corpus, init = fake_train["calls"][-1]
    assert init == run and corpus == ["/h@SNAP-h36m"]
    assert json.loads((tmp_path / "ft" / DONE_MARKER).read_text())["init"] == str(run)
    arts = artifacts_of(state.state_details.flow_run_id)
    keys = {a.key for a in arts}
    assert {"finetune-report", "finetune-run-dir", "finetune-plot", "finetune-checkpoint"} <= keys
    report = next(a for a in arts if a.key == "finetune-report")
    assert "| mpjpe | 12.5 |" in report.data
