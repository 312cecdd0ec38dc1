"""Data-parallel training: 2 CPU processes (gloo, torch's elastic launcher) see the same global batches as 1.

Pure helpers first (no processes), then one launched 2-process run compared with a 1-process run.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from flows.cli import app

from tests.support.training_corpus import projected_corpus
from uplift.distributed import DistInfo, rank_slice
from uplift.launch import launch_train
from uplift.losses import uplift_loss
from uplift.run_config import RunConfig
from uplift.train import train


def _steps(run_dir):
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def cfg(**train_over):
    # no stochastic depth: the two runs must be comparable draw for draw
    return RunConfig(preset="tiny", model={"drop_path_joint": 0.0, "drop_path_temp": 0.0},
                     train={"batch_size": 16, "epochs": 2, "lr": 1e-3, "weight_decay": 0.0, **train_over},
                     steps_per_epoch=3, block_frames=64, buffer_blocks=2, eval_every=2, eval_batch_size=64)


def test_rank_slices_partition_the_global_batch():
    b = {"x": torch.arange(10), "y": torch.arange(10) * 2}
    parts = [rank_slice(b, DistInfo(r, 3)) for r in range(3)]
    assert sorted(torch.cat([p["x"] for p in parts]).tolist()) == list(range(10))
    assert all((p["y"] == 2 * p["x"]).all() for p in parts)
    assert rank_slice(b, DistInfo()) is b


def test_per_rank_losses_average_to_the_global_loss():
    """What DDP's gradient average sees: mean over ranks of the rank losses = the 1-process loss."""
    g = torch.Generator().manual_seed(0)
    B, N, J = 8, 5, 17
    pred, tgt = torch.randn(B, N, J, 3, generator=g), torch.randn(B, N, J, 3, generator=g)
    center = torch.randn(B, J, 3, generator=g)
    valid = torch.rand(B, N, generator=g) > 0.3  # uneven valid counts across ranks
    ref = uplift_loss(pred, center, tgt, valid)
    W = 2
    seq_c = valid.float().sum() / W
    parts = [uplift_loss(pred[r::W], center[r::W], tgt[r::W], valid[r::W], seq_count=seq_c,
                         center_count=torch.tensor(B / W)) for r in range(W)]
    assert sum(p.total for p in parts) / W == pytest.approx(ref.total.item(), rel=1e-6)
    # the plain per-rank mean (the bug this guards against) differs when valid counts differ
    naive = sum(uplift_loss(pred[r::W], center[r::W], tgt[r::W], valid[r::W]).total for r in range(W)) / W
    assert abs(naive.item() - ref.total.item()) > 1e-4


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    corpus = projected_corpus(tmp_path / "c", n_seq=3, n_frames=120)
    one = train(cfg(), tmp_path / "one", corpus)
    two = launch_train(2, cfg(), tmp_path / "two", [corpus])
    s1, s2 = _steps(one.run_dir), _steps(two.run_dir)  # rank 0 alone writes the step log
    assert len(s1) == len(s2) == 6
    for a, b in zip(s1, s2):
        assert (a["epoch"], a["batch"]) == (b["epoch"], b["batch"])
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5), (a, b)
    # Same model after 6 steps, seen through its outputs: the weights themselves may differ where the
    # gradient is zero in exact arithmetic (attention key biases): Adam scales rounding noise up there.
    ev1 = [v for h in one.history for k, v in h.items() if k.startswith("mpjpe_mm")]
    ev2 = [v for h in two.history for k, v in h.items() if k.startswith("mpjpe_mm")]
    assert ev1 and ev2 == pytest.approx(ev1, rel=1e-4)
    # evaluation ran once (rank 0), metrics and checkpoints written once
    assert json.loads((two.run_dir / "config.json").read_text())["world_size"] == 2
    w2 = load_file(str(two.checkpoint / "model.safetensors"))

    # resume with the same N: interrupted after 4 steps, continued from the CLI (--nproc 2), ends
    # where the straight 2-process run did
    launch_train(2, cfg(), tmp_path / "resumed", [corpus], max_steps=4)
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(cfg().model_dump(mode="json")))
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--corpus", corpus, "--out",
                                      str(tmp_path / "resumed"), "--nproc", "2"])
    assert result.exit_code == 0, result.output
    assert len(_steps(tmp_path / "resumed")) == 6  # 4 before the interruption, 2 after
    w3 = load_file(str(tmp_path / "resumed" / "checkpoints" / "final" / "model.safetensors"))
    for k in w2:
        torch.testing.assert_close(w3[k], w2[k], rtol=0, atol=1e-6)
