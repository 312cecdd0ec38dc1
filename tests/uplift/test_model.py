"""Uplift-Upsample Transformer: parameter counts vs the paper, shapes, key-frame gather/scatter,
strided blocks, attention masking, optimiser schedule and EMA."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from schemas.errors import ConfigError
from uplift.config import H36M_81, H36M_351, TINY, ModelConfig, get_preset
from uplift.keyframes import keyframe_mask
from uplift.model import StridedBlock, build_model, count_parameters
from uplift.optim import make_optimizer


@pytest.mark.parametrize("cfg, paper", [(H36M_351, 10.39e6), (H36M_81, 10.36e6)])
def test_parameter_count_matches_paper_table4(cfg, paper):
    n = count_parameters(build_model(cfg))
    assert abs(n - paper) / paper < 0.005, n


def test_published_window_geometry():
    assert H36M_351.model.n_out == 71 and H36M_81.model.n_out == 41
    assert H36M_351.model.strided_lengths == (71, 23, 3, 1)
    assert H36M_81.model.strided_lengths == (41, 11, 3, 1)


def test_config_validation():
    with pytest.raises(ConfigError):
        ModelConfig(seq_len=350, s_out=5)  # (N - 1) not a multiple of s_out
    with pytest.raises(ConfigError):
        ModelConfig(strides=(3, 3, 3))  # 71 -> 23 -> 7 -> 2, not 1
    with pytest.raises(ConfigError):
        H36M_351.replace(train=H36M_351.train.replace(s_in=(7,)))
    with pytest.raises(ConfigError):
        get_preset("nope")
    assert get_preset("h36m_81", lr=1e-3).train.lr == 1e-3


def _inputs(cfg, b=3, seed=0, s_in=4):
    g = torch.Generator().manual_seed(seed)
    m = cfg.model
    x = torch.randn(b, m.n_out, m.num_joints, 2, generator=g)
    kf = torch.as_tensor(np.stack([keyframe_mask(m.n_out, m.s_out, s_in, shift=-(i % 2)) for i in range(b)]))
    return x, kf


def test_forward_shapes_and_backward():
    model = build_model(TINY, seed=0)
    x, kf = _inputs(TINY)
    out = model(x, kf)
    assert out.seq.shape == (3, 9, 17, 3) and out.center.shape == (3, 17, 3)
    (out.seq.square().mean() + out.center.square().mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_seeded_build_is_reproducible_and_leaves_global_rng():
    state = torch.random.get_rng_state()
    a, b = build_model(TINY, seed=3), build_model(TINY, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_non_keyframe_inputs_are_ignored():
    model = build_model(TINY, seed=1).eval()
    x, kf = _inputs(TINY)
    y = x.clone()
    y[~kf] = torch.randn_like(y[~kf]) * 100  # garbage where there is no 2D
    with torch.no_grad():
        a, b = model(x, kf), model(y, kf)
    torch.testing.assert_close(a.seq, b.seq)
    torch.testing.assert_close(a.center, b.center)
    # ...whereas key-frame inputs matter
    y2 = x.clone()
    y2[:, TINY.model.n_out // 2] += 1.0
    with torch.no_grad():
        assert not torch.allclose(model(y2, kf).center, a.center)


def test_keyframe_gather_equals_all_frame_spatial_pass():
    model = build_model(TINY, seed=2).eval()
    x, kf = _inputs(TINY)
    with torch.no_grad():
        fast = model(x, kf)
        model.spatial_on_all_frames = True
        full = model(x, kf)
    torch.testing.assert_close(fast.seq, full.seq)
    torch.testing.assert_close(fast.center, full.center)


def test_first_temporal_block_attends_only_to_keyframes():
    """With every later block removed, the tokens see only pose tokens in block 1: changing the
    upsampling token's value changes nothing but the non-key tokens' own residual stream."""
    cfg = TINY.model.replace(depth_temp=1, masked_temporal_blocks=1)
    model = build_model(cfg, seed=4).eval()
    x, kf = _inputs(TINY)
    with torch.no_grad():
        base = model(x, kf).seq
        model.upsample_token.add_(0.5)
        moved = model(x, kf).seq
    torch.testing.assert_close(base[kf], moved[kf])  # key tokens never attended to upsampling tokens
    assert not torch.allclose(base[~kf], moved[~kf])
    # without the mask the key tokens would see the change
    model2 = build_model(cfg.replace(masked_temporal_blocks=0), seed=4).eval()
    with torch.no_grad():
        base2 = model2(x, kf).seq
        model2.upsample_token.add_(0.5)
        assert not torch.allclose(base2[kf], model2(x, kf).seq[kf])


@pytest.mark.parametrize("length, stride, padding, expect_idx", [
    (71, 3, (0, 0), list(range(1, 70, 3))),   # 23 tokens centred on 1, 4, ..., 67
    (41, 4, (1, 1), list(range(0, 41, 4))),   # 11 tokens centred on 0, 4, ..., 40
    (3, 3, (0, 0), [1]),
])
def test_strided_block_length_and_residual_alignment(length, stride, padding, expect_idx):
    torch.manual_seed(0)
    blk = StridedBlock(8, 2, 2.0, True, 0.0, stride, padding).eval()
    with torch.no_grad():  # zero attention output and conv branch: the block is its residual path
        for p in (blk.attn.proj.weight, blk.attn.proj.bias, blk.conv2.weight, blk.conv2.bias):
            p.zero_()
    x = torch.randn(2, length, 8)
    with torch.no_grad():
        y = blk(x)
    assert y.shape == (2, len(expect_idx), 8)
    torch.testing.assert_close(y, x[:, expect_idx])


def test_drop_path_only_in_training():
    model = build_model(TINY.model.replace(drop_path_temp=0.5), seed=0)
    x, kf = _inputs(TINY)
    model.eval()
    with torch.no_grad():
        a, b = model(x, kf).seq, model(x, kf).seq
    torch.testing.assert_close(a, b)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        outs = [model(x, kf).seq for _ in range(4)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_optimizer_schedule_decays_lr_and_weight_decay():
    cfg = H36M_81.train
    model = torch.nn.Linear(3, 2)
    bundle = make_optimizer(model, cfg)
    for epoch in range(3):
        assert bundle.optimizer.param_groups[0]["lr"] == pytest.approx(4e-5 * 0.99**epoch, rel=1e-9)
        g = bundle.optimizer.param_groups[0]  # absolute decoupled decay per step: lr * weight_decay
        assert g["lr"] * g["weight_decay"] == pytest.approx(4e-6 * 0.99**epoch, rel=1e-9)
        bundle.scheduler.step()
    # a step with zero gradient only applies the decoupled weight decay: p *= 1 - 4e-6 * 0.99^3
    before = model.weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    bundle.optimizer.step()
    torch.testing.assert_close(model.weight.detach(), before * (1 - 4e-6 * 0.99**3), rtol=0, atol=1e-12)


def test_ema_update():
    model = torch.nn.Linear(2, 1, bias=False)
    bundle = make_optimizer(model, TINY.train.replace(ema_decay=0.9))
    with torch.no_grad():
        model.weight.fill_(1.0)
    bundle.ema.update_parameters(model)  # first call copies
    with torch.no_grad():
        model.weight.fill_(3.0)
    bundle.ema.update_parameters(model)
    # warm-up: update t = 1 uses min(0.9, (1 + 1) / (10 + 1)) = 2/11
    d1 = 2.0 / 11.0
    torch.testing.assert_close(bundle.ema.module.weight, torch.full((1, 2), d1 * 1.0 + (1 - d1) * 3.0))
    # once warmed up (t >= 81: (1+t)/(10+t) >= 0.9) the decay is the configured one
    for _ in range(100):
        bundle.ema.update_parameters(model)
    with torch.no_grad():
        model.weight.fill_(5.0)
    before = bundle.ema.module.weight.detach().clone()
    bundle.ema.update_parameters(model)
    torch.testing.assert_close(bundle.ema.module.weight, 0.9 * before + 0.1 * 5.0)
    assert make_optimizer(model, H36M_351).ema is None  # the released 351 config trains without EMA


def test_ema_warmup_schedule():
    from uplift.optim import ema_decay_at, make_ema

    assert [round(ema_decay_at(0.999, t), 4) for t in (0, 1, 10, 100)] == [0.1, 0.1818, 0.55, 0.9182]
    assert ema_decay_at(0.999, 10**6) == 0.999
    model = torch.nn.Linear(2, 1, bias=False)
    ema = make_ema(model, 0.9, warmup=False)  # constant decay without warm-up
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update_parameters(model)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update_parameters(model)
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), 0.9 * 1.0 + 0.1 * 3.0))


def test_spatial_attention_chunks_stay_under_the_grid_limit(monkeypatch):
    """Every SDPA call sees at most max batch x heads (CUDA grid limit), with unchanged results."""
    import torch.nn.functional as F

    import uplift.model as um

    model = build_model(TINY, seed=0).eval()
    x = torch.randn(6, TINY.model.n_out, 17, 2, generator=torch.Generator().manual_seed(0))
    kf = torch.ones(6, TINY.model.n_out, dtype=torch.bool)
    with torch.no_grad():
        ref = model(x, kf)
    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append(q.shape[0] * q.shape[1])
        return real(q, k, v, **kw)

    monkeypatch.setattr(um.F, "scaled_dot_product_attention", spy)
    monkeypatch.setattr(um, "SDPA_MAX_BATCH_HEADS", 10)  # spatial pass: 54 frames x 2 heads = 108
    with torch.no_grad():
        out = model(x, kf)
    assert max(seen) <= 10 and len(seen) > 11
    torch.testing.assert_close(out.seq, ref.seq)
    torch.testing.assert_close(out.center, ref.center)


def test_static_keyframe_gather_equals_dynamic():
    from uplift.keyframes import draw_keyframes, keyframe_mask as kf_mask
    from uplift.model import max_keyframes

    cfg = TINY.model
    model = build_model(TINY, seed=0).eval()
    rng = np.random.default_rng(0)
    s_in, shift = draw_keyframes(rng, 8, TINY.train.s_in, cfg.s_out)
    kf = torch.as_tensor(kf_mask(cfg.n_out, cfg.s_out, s_in, shift))
    x = torch.randn(8, cfg.n_out, 17, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x, kf)
        model.static_keyframes = max_keyframes(cfg.n_out, cfg.s_out, min(TINY.train.s_in))
        out = model(x, kf)
    assert model.static_keyframes == cfg.n_out  # s_in = s_out: every token can be a key frame
    assert max_keyframes(71, 5, 20) == 18 and max_keyframes(41, 2, 4) == 21
    torch.testing.assert_close(out.seq, ref.seq)
    torch.testing.assert_close(out.center, ref.center)


def test_heads_and_loss_run_in_fp32_under_bf16_autocast():
    from uplift.losses import uplift_loss

    model = build_model(TINY, seed=0).eval()
    x = torch.randn(4, TINY.model.n_out, 17, 2, generator=torch.Generator().manual_seed(0))
    kf = torch.ones(4, TINY.model.n_out, dtype=torch.bool)
    feats = {}
    model.head_seq.register_forward_hook(lambda m, i, o: feats.update(inp=i[0], out=o))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, kf)
        loss = uplift_loss(out.seq, out.center, out.seq.detach().to(torch.bfloat16), None)
    assert out.seq.dtype == out.center.dtype == torch.float32
    assert feats["inp"].dtype == torch.float32 and feats["out"].dtype == torch.float32
    # fp32 head on the (bf16-computed) features: exactly the fp32 matmul, no bf16 rounding
    torch.testing.assert_close(feats["out"], torch.nn.functional.linear(feats["inp"], model.head_seq.weight,
                                                                        model.head_seq.bias), rtol=0, atol=0)
    assert loss.total.dtype == torch.float32
