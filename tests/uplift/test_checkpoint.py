"""Checkpoints: atomic replace keeps a whole checkpoint, the aside copy is found and restored, configs
written before the stride rename still load."""

from __future__ import annotations

import json

import pytest
import torch

from schemas.errors import ConfigError
from uplift.checkpoint import aside_dir, find_checkpoint, load_checkpoint, recover_checkpoint, save_checkpoint
from uplift.config import TINY
from uplift.model import build_model


def _save(path, seed=0, epoch=1):
    model = build_model(TINY, seed=seed)
    save_checkpoint(path, model, None, TINY, {"epoch": epoch, "batch": 0}, {"epoch": torch.tensor(epoch)})
    return model


def test_save_load_round_trip_and_replace(tmp_path):
    ck = tmp_path / "run" / "checkpoints" / "last"
    _save(ck, seed=0, epoch=1)
    model = _save(ck, seed=1, epoch=2)  # replaces the first one
    assert sorted(p.name for p in ck.parent.iterdir()) == ["last"]  # no .tmp / .old left behind
    loaded = load_checkpoint(tmp_path / "run", device="cpu", with_state=True)
    assert loaded.meta["epoch"] == 2 and int(loaded.state["epoch"]) == 2 and loaded.ema_model is None
    assert loaded.config == TINY
    for a, b in zip(model.parameters(), loaded.model.parameters()):
        assert torch.equal(a, b)


def test_a_kill_with_the_old_checkpoint_aside_recovers_it(tmp_path):
    ck = tmp_path / "checkpoints" / "last"
    _save(ck)
    ck.rename(aside_dir(ck))  # what a kill between "old aside" and "new in" leaves
    assert find_checkpoint(tmp_path) == aside_dir(ck)
    assert recover_checkpoint(ck) and find_checkpoint(tmp_path) == ck
    assert not recover_checkpoint(ck)  # nothing left to recover
    with pytest.raises(ConfigError, match="no checkpoint"):
        find_checkpoint(tmp_path / "empty")


def test_checkpoints_written_before_the_stride_rename_load(tmp_path):
    """meta.json of older runs says out_stride / in_strides and has flip_prob / edge_padding."""
    ck = tmp_path / "ck"
    _save(ck)
    meta = json.loads((ck / "meta.json").read_text())
    m, t = meta["config"]["model"], meta["config"]["train"]
    m["out_stride"] = m.pop("s_out")
    t["in_strides"] = t.pop("s_in")
    t.update(flip_prob=0.5, edge_padding=True)
    (ck / "meta.json").write_text(json.dumps(meta))
    cfg = load_checkpoint(ck, device="cpu").config
    assert cfg == TINY and cfg.model_dump()["model"]["s_out"] == TINY.model.s_out
