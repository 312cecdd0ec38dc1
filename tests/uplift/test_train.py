"""Trainer: loss decreases on a tiny corpus, checkpoints resume exactly, fine-tuning loads weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.support.training_corpus import projected_corpus
from schemas.errors import ConfigError
from uplift.config import finetune_overrides, get_preset
from uplift.evaluate import ALL_ACTIONS, evaluate, interpolate_lattice
from uplift.run_config import RunConfig, load_run_config
from uplift.train import train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return projected_corpus(tmp_path_factory.mktemp("c") / "c")


def tiny(**train):
    return RunConfig(preset="tiny", train={"batch_size": 16, "epochs": 3, "lr": 1e-3, "weight_decay": 0.0, **train},
                     steps_per_epoch=6, block_frames=64, buffer_blocks=2, eval_every=3, eval_batch_size=64)


def test_loss_decreases_and_run_dir(tmp_path, corpus):
    res = train(tiny(epochs=4), tmp_path / "run", corpus)
    losses = [h["loss"] for h in res.history]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    for f in ("config.json", "corpora.json", "metrics.json", "metrics.csv", "metrics.png"):
        assert (res.run_dir / f).exists(), f
    assert json.loads((res.run_dir / "corpora.json").read_text())["train"][0].startswith(str(corpus).rsplit("@")[0])
    assert (res.checkpoint / "model.safetensors").exists()
    rows = res.eval_table
    assert {r["frames"] for r in rows} == {"all", "key"} and {r["s_in"] for r in rows} == {2, 4}
    # protocol average = mean of the per-action means
    for s in (2, 4):
        per = [r["mpjpe_mm"] for r in rows if r["s_in"] == s and r["frames"] == "all" and r["action"] != ALL_ACTIONS]
        avg = [r["mpjpe_mm"] for r in rows if r["s_in"] == s and r["frames"] == "all" and r["action"] == ALL_ACTIONS]
        assert avg[0] == pytest.approx(np.mean(per))
    table = evaluate(res.run_dir, corpus)
    assert len(table) == len(rows)
    for a, b in zip(table, rows):  # same EMA weights, same data -> same figures
        assert a["mpjpe_mm"] == pytest.approx(b["mpjpe_mm"], rel=1e-4) and a["action"] == b["action"]


class _StepCounter:
    """Counts optimizer steps (any optimizer) while active."""

    def __enter__(self):
        self.n = 0
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._h = register_optimizer_step_post_hook(lambda *a: self._inc())
        return self

    def _inc(self):
        self.n += 1

    def __exit__(self, *exc):
        self._h.remove()


class _OnGpu(torch.Tensor):
    """A tensor as ``torch.load(map_location="cuda")`` returns it, simulated on a CPU-only machine:
    it reports a CUDA device and only ``.to("cpu")`` / ``.cpu()`` give back a plain CPU tensor."""

    @property
    def device(self):
        return torch.device("cuda", 0)

    def cpu(self):
        return self.as_subclass(torch.Tensor).clone()

    def to(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).to(*args, **kwargs)


def _strict_set_rng_state(real):
    def set_rng_state(t):  # what torch does with a CUDA tensor: refuse it
        if type(t) is not torch.Tensor or t.device.type != "cpu" or t.dtype != torch.uint8:
            raise TypeError("RNG state must be a torch.ByteTensor")
        real(t)
    return set_rng_state


def check_resume(tmp_path, corpus, *, resume: bool = True) -> None:
    """The resume check: a run stopped after 8 of its 12 steps, then continued, takes exactly the 4
    remaining steps and ends with the weights and losses of an uninterrupted run. Training is
    deterministic, so equal weights alone would not tell a resume from a restart: the step counts do.
    ``resume=False`` continues by ignoring the checkpoint (what a broken resume does)."""
    cfg = tiny(epochs=2, ema_decay=0.9)
    with _StepCounter() as c_full:
        full = train(cfg, tmp_path / "a", corpus)
    with _StepCounter() as c_first:
        train(cfg, tmp_path / "b", corpus, max_steps=8)  # interrupted mid second epoch (6 steps an epoch)
    with _StepCounter() as c_rest:
        resumed = train(cfg, tmp_path / "b", corpus, resume=resume)
    assert (c_full.n, c_first.n, c_rest.n) == (12, 8, 4), "the continuation did not take exactly the remaining steps"
    wa = load_file(str(full.checkpoint / "model.safetensors"))
    wb = load_file(str(resumed.checkpoint / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)
    assert [h["loss"] for h in full.history] == pytest.approx([h["loss"] for h in resumed.history], rel=1e-5)


def test_resume_reproduces_uninterrupted_run(tmp_path, corpus):
    check_resume(tmp_path, corpus)


def test_restart_from_zero_is_told_apart(tmp_path, corpus):
    """The resume check itself, run against a restart from zero, fails: a restart ends with the same
    weights (deterministic training), but takes all 12 steps instead of the remaining 4."""
    with pytest.raises(AssertionError, match="remaining steps"):
        check_resume(tmp_path, corpus, resume=False)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resume_with_loader_workers(tmp_path, corpus):
    """The same through 2 persistent DataLoader workers (shared epoch position, reused batch buffers)."""
    cfg = RunConfig(**{**tiny(epochs=2, ema_decay=0.9).__dict__, "num_workers": 2})
    full = train(cfg, tmp_path / "a", corpus)
    train(cfg, tmp_path / "b", corpus, max_steps=8)
    with _StepCounter() as c_rest:
        resumed = train(cfg, tmp_path / "b", corpus)
    assert c_rest.n == 4
    assert [h["loss"] for h in full.history] == pytest.approx([h["loss"] for h in resumed.history], rel=1e-5)


def test_resume_with_state_loaded_as_on_a_gpu(tmp_path, corpus, monkeypatch):
    """state.pt loaded with map_location=cuda (RNG states on the GPU) resumes; CUDA RNG states are
    saved and restored (CUDA simulated)."""
    cfg = RunConfig(**{**tiny(epochs=2, ema_decay=0.9).__dict__, "device": "cpu"})
    full = train(cfg, tmp_path / "a", corpus)
    cuda_state = [torch.arange(16, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in cuda_state])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.extend(states))
    train(cfg, tmp_path / "b", corpus, max_steps=8)
    saved = torch.load(tmp_path / "b" / "checkpoints" / "last" / "state.pt", weights_only=True)
    assert saved["torch_rng"].device.type == "cpu" and saved["torch_rng"].dtype == torch.uint8
    assert torch.equal(saved["cuda_rng"][0], cuda_state[0])
    real_load = torch.load

    def load_as_on_gpu(*a, **kw):
        st = real_load(*a, **kw)
        st["torch_rng"] = st["torch_rng"].as_subclass(_OnGpu)
        st["cuda_rng"] = [x.as_subclass(_OnGpu) for x in st["cuda_rng"]]
        return st

    monkeypatch.setattr(torch, "load", load_as_on_gpu)
    monkeypatch.setattr(torch, "set_rng_state", _strict_set_rng_state(torch.set_rng_state))
    with _StepCounter() as c:
        resumed = train(cfg, tmp_path / "b", corpus)
    assert c.n == 4
    assert len(restored) == 1 and type(restored[0]) is torch.Tensor and torch.equal(restored[0], cuda_state[0])
    wa = load_file(str(full.checkpoint / "model.safetensors"))
    wb = load_file(str(resumed.checkpoint / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)


def test_official_recipes():
    from uplift.config import finetune_overrides, get_preset

    a = get_preset("amass_351").train
    assert (a.epochs, a.steps_per_epoch, a.batch_size, a.lr, a.weight_decay, a.decay_rate, a.ema_decay,
            a.in_batch_flip) == (100, 6000, 512, 4e-5, 4e-6, 0.99, None, True)
    assert get_preset("h36m_351").train.epochs == 120
    h81 = get_preset("h36m_81").train
    assert (h81.batch_size, h81.ema_decay, h81.in_batch_flip) == (256, 0.999, False)
    ft = load_run_config("h36m_351").uplift_config(finetuning=True).train
    assert (ft.epochs, ft.lr, ft.weight_decay) == (3, 2e-5, 2e-6)
    ft81 = load_run_config("h36m_81").uplift_config(finetuning=True).train
    assert (ft81.epochs, ft81.ema_decay, ft81.in_batch_flip) == (3, 0.999, False)
    assert finetune_overrides("amass_351") == {"epochs": 3, "lr": 2e-5, "weight_decay": 2e-6}
    assert load_run_config("amass_351").camera_mode == "per-window"
    assert load_run_config("h36m_351").camera_mode == "precomputed"
    assert RunConfig(preset="amass_351", cameras="precomputed").camera_mode == "precomputed"
    with pytest.raises(Exception, match="cameras"):
        RunConfig(cameras="random")


def test_finetune_loads_pretrained_weights(tmp_path, corpus):
    pre = train(tiny(epochs=1, ema_decay=None), tmp_path / "pre", corpus)
    ft = train(RunConfig(**{**tiny(epochs=1).__dict__, "train": {"batch_size": 16, "epochs": 1}},),
               tmp_path / "ft", corpus, init=pre.checkpoint, max_steps=0)
    w0 = load_file(str(pre.checkpoint / "model.safetensors"))
    w1 = load_file(str(ft.checkpoint / "model.safetensors"))
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k  # no step taken: identical to the pre-trained weights
    ucfg = json.loads((tmp_path / "ft" / "config.json").read_text())["uplift"]["train"]
    assert ucfg["lr"] == finetune_overrides("tiny")["lr"] == 2e-5
    assert ucfg["weight_decay"] == finetune_overrides("tiny")["weight_decay"] == 2e-6


def test_config_files(tmp_path):
    (tmp_path / "c.toml").write_text('preset = "tiny"\neval_every = 2\n[train]\nepochs = 5\n')
    (tmp_path / "c.json").write_text(json.dumps({"preset": "tiny", "train": {"epochs": 5}, "eval_every": 2}))
    (tmp_path / "c.yaml").write_text("preset: tiny\neval_every: 2\ntrain:\n  epochs: 5\n")
    cfgs = [load_run_config(tmp_path / f"c.{e}") for e in ("toml", "json", "yaml")]
    assert cfgs[0] == cfgs[1] == cfgs[2]
    assert cfgs[0].uplift_config().train.epochs == 5
    assert load_run_config("h36m_351").uplift_config().model.seq_len == 351
    assert load_run_config("h36m_351").uplift_config(finetuning=True).train.lr == 2e-5


def test_config_files_with_the_old_stride_keys_name_the_new_ones(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"preset": "tiny", "train": {"in_strides": [2, 4]}}))
    with pytest.raises(ConfigError, match=r"old\.json.*'in_strides' is now 's_in'"):
        load_run_config(tmp_path / "old.json")
    (tmp_path / "old.toml").write_text('preset = "tiny"\n[model]\nout_stride = 2\n')
    with pytest.raises(ConfigError, match="'out_stride' is now 's_out'"):
        load_run_config(tmp_path / "old.toml")
    with pytest.raises(ConfigError, match="unknown TrainConfig key 'flip_prob'"):  # removed: it changed nothing
        RunConfig(train={"flip_prob": 0.5})
    cfg = RunConfig(preset="tiny", train={"s_in": [4]}, model={"s_out": 2}).uplift_config()
    assert (cfg.train.s_in, cfg.model.s_out) == ((4,), 2)


def test_overrides_go_into_train_overrides_and_top_level(tmp_path):
    """A flow's overrides: a RunConfig setting by name, anything else a TrainConfig override."""
    base = RunConfig(preset="tiny", train={"lr": 1e-3})
    cfg = base.with_overrides({"epochs": 1, "steps_per_epoch": 2, "preset": "h36m_81"})
    assert cfg.preset == "h36m_81" and cfg.steps_per_epoch == 2
    assert cfg.train == {"lr": 1e-3, "epochs": 1}
    assert cfg.uplift_config().train.epochs == 1  # the override reaches the trainer's config
    assert base.with_overrides({}) == base
    (tmp_path / "c.json").write_text(json.dumps({"preset": "tiny", "train": {"lr": 1e-3}}))
    assert load_run_config(tmp_path / "c.json", {"epochs": 1, "steps_per_epoch": 2, "preset": "h36m_81"}) == cfg
    with pytest.raises(ConfigError, match="epochs"):
        base.with_overrides({"epochs": 0})


def test_interpolate_lattice_by_hand():
    pred = np.array([[[0.0, 0, 0]], [[10.0, 0, 0]], [[20.0, 0, 0]]], np.float32)
    out = interpolate_lattice(pred, np.array([0, 5, 10]), 12)
    assert out[:, 0, 0].tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 20]


def test_precision_is_checked_once_for_runs_and_evaluation():
    """One check (uplift.config.check_choice): evaluate_model used to raise ValueError with its own
    copy of the rule while RunConfig raised ConfigError; both now raise ConfigError."""
    from uplift.evaluate import evaluate_model
    from uplift.model import build_model

    with pytest.raises(ConfigError, match="eval_precision must be 'bf16' or 'fp32'"):
        RunConfig(eval_precision="fp16")
    with pytest.raises(ConfigError, match="precision must be 'bf16' or 'fp32'"):
        evaluate_model(build_model(get_preset("tiny")), [], seq_len=17, s_out=2, s_in=[2], precision="fp16")
