"""Training recipes: the official code's formulas as small numpy references, compared on fixed inputs
with what ``recipe: official-code`` runs, and ``recipe: paper`` shown to differ.

The references restate the authors' released code (goldbricklemon/uplift-upsample-3dhpe: ``train.py``
``train_step``, ``uplifiting_dataset.py`` generators, ``uplift_upsample_transformer.py`` drop-path
rates, ``train.py`` EMA) in a few lines of numpy each.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.support.training_corpus import projected_corpus
from schemas.errors import ConfigError
from schemas.skeletons import H36M_17
from uplift import distributed as D
from uplift.config import RECIPE_ITEMS, get_preset, recipe_values
from uplift.keyframes import draw_keyframes_coupled
from uplift.losses import uplift_loss
from uplift.model import build_model
from uplift.optim import make_ema, make_optimizer
from uplift.stream import StreamConfig, WindowStream
from uplift.run_config import RunConfig, load_run_config
from uplift.train import _train_step, train

OFFICIAL, PAPER = RunConfig(recipe="official-code"), RunConfig(recipe="paper")


# ------------------------------------------------------------------------------------------------
# numpy references of the released code


def official_loss(pred_seq, pred_center, target, root=0, w_seq=0.5, w_center=0.5):
    """train_step: target made root-relative, prediction raw, every frame; sums over B*N*J and B*J."""
    b, n, j, _ = target.shape
    target = target - target[:, :, root:root + 1]
    seq = np.linalg.norm(target - pred_seq, axis=-1).sum() / (b * n * j)
    center = np.linalg.norm(target[:, n // 2] - pred_center, axis=-1).sum() / (b * j)
    return w_center * center + w_seq * seq


def official_keyframes(seed, n, mask_strides, stride):
    """The generators' per-window draws: two default_rng(seed), mask stride then random shift."""
    mask_stride_rng, stride_shift_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    out = []
    for _ in range(n):
        abs_mask_stride = mask_strides[mask_stride_rng.integers(low=0, high=len(mask_strides), endpoint=False)]
        mask_stride = abs_mask_stride // stride
        max_shift = int(np.ceil((mask_stride - 1) / 2))
        endpoint = mask_stride % 2 != 0
        out.append((abs_mask_stride, int(stride_shift_rng.integers(low=-max_shift, high=max_shift, endpoint=endpoint))))
    return np.array(out)


def official_temporal_drop_path(dpr, temporal_d_model, temporal_depth):
    """The rates the released models were trained with (before the upstream fix)."""
    return np.linspace(0, dpr, temporal_d_model)[:temporal_depth]


def official_per_window(world, cam, mirror, perm):
    """AMASS generator + tf_world_to_cam_and_2d: no centring; flip = x -> -x in world space."""
    import schemas.cameras as npcam

    w = world.astype(np.float64)
    if mirror:
        w = w[:, perm].copy()
        w[..., 0] *= -1
    xc = npcam.world_to_camera(w, cam)
    px = npcam.project(xc, cam)
    return npcam.normalize_pixels(px, cam.res_w, cam.res_h), xc - xc[:, :1]


# ------------------------------------------------------------------------------------------------
# config: the recipe expands to every item, each item its own key


def test_recipe_expands_to_every_item_and_each_item_flips_alone(tmp_path):
    assert set(OFFICIAL.recipe_items()) == set(RECIPE_ITEMS)
    assert all(OFFICIAL.recipe_items()[k] != PAPER.recipe_items()[k] for k in RECIPE_ITEMS)
    assert RunConfig().recipe == "official-code"  # the default (benchmarks/pretrain_gain.py, README)
    u = OFFICIAL.uplift_config()
    assert (u.train.loss, u.train.keyframe_draw, u.train.epoch_length, u.train.ema_start) == (
        "raw-all-frames", "coupled", "steps", "mix")
    assert (u.model.temporal_drop_path, u.model.qkv_init) == ("released", "split")
    sc = StreamConfig.for_training(OFFICIAL, u)
    assert (sc.keyframe_draw, sc.placement, sc.mirror) == ("coupled", "raw", "x0")
    # one item flipped back alone, in each of the three places an item lives
    one = RunConfig(recipe="official-code", train={"loss": "root-aligned-valid"}, model={"qkv_init": "fused"},
                    mirror="volume-centre")
    items = one.recipe_items()
    assert (items["loss"], items["qkv_init"], items["mirror"]) == ("root-aligned-valid", "fused", "volume-centre")
    assert {k: v for k, v in items.items() if k not in ("loss", "qkv_init", "mirror")} == {
        k: v for k, v in recipe_values("official-code").items() if k not in ("loss", "qkv_init", "mirror")}
    assert one.uplift_config().train.loss == "root-aligned-valid" and one.uplift_config().model.qkv_init == "fused"
    # fine-tuning keeps the recipe's items
    assert OFFICIAL.uplift_config(finetuning=True).train.loss == "raw-all-frames"
    # a file can name it; bad values are refused with the item's name
    (tmp_path / "r.json").write_text(json.dumps({"preset": "tiny", "recipe": "official-code", "precision": "bf16"}))
    r = load_run_config(tmp_path / "r.json")
    assert r.recipe_items()["precision"] == "bf16" and r.recipe_items()["loss"] == "raw-all-frames"
    with pytest.raises(ConfigError, match="recipe"):
        RunConfig(recipe="official")
    with pytest.raises(ConfigError, match="loss"):
        RunConfig(train={"loss": "l1"}).uplift_config()
    with pytest.raises(ConfigError, match="placement"):
        RunConfig(placement="centered")


def test_config_json_records_the_expanded_items(tmp_path):
    corpus = projected_corpus(tmp_path / "c")
    cfg = RunConfig(preset="tiny", recipe="official-code", train={"batch_size": 8, "epochs": 1}, steps_per_epoch=1,
                    block_frames=64, buffer_blocks=2, eval_every=0, train_subjects=None)
    train(cfg, tmp_path / "run", corpus)
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    assert written["recipe"] == {"name": "official-code", "items": recipe_values("official-code")}
    assert written["uplift"]["train"]["loss"] == "raw-all-frames"
    assert written["uplift"]["model"]["temporal_drop_path"] == "released"


# ------------------------------------------------------------------------------------------------
# 1. the loss


def _loss_inputs(seed=0, b=3, n=9, j=17):
    """A prediction right up to its root position (0.2 m off) on valid frames, wrong on padded ones:
    the paper's loss is 0, the official one is not."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(b, n, j, 3)).astype(np.float32) + np.float32([0, 0, 4])  # not root-relative
    pred = target - target[:, :, :1] + np.float32(0.2)
    center = pred[:, n // 2].copy()
    valid = np.ones((b, n), bool)
    valid[0, :3] = False  # copy-padded frames at a sequence start
    valid[2, -2:] = False
    pred[~valid] += rng.normal(size=pred[~valid].shape).astype(np.float32)
    return pred, center, target, valid


def test_official_loss_equals_the_numpy_reference_and_paper_differs():
    pred, center, target, valid = _loss_inputs()
    ref = official_loss(pred, center, target)
    t = [torch.from_numpy(a) for a in (pred, center, target, valid)]
    tcfg = OFFICIAL.uplift_config().train
    got = uplift_loss(*t, root=tcfg.root_joint, w_seq=tcfg.loss_weight_seq, w_center=tcfg.loss_weight_center,
                      mode=tcfg.loss).total
    assert float(got) == pytest.approx(ref, rel=1e-6)
    paper = uplift_loss(*t, mode=PAPER.uplift_config().train.loss).total
    assert float(paper) < 1e-6 and ref > 0.3


def test_official_loss_is_what_a_training_step_backpropagates():
    """``_train_step`` (what ``train`` calls) with the official recipe returns the reference's value."""
    ucfg = RunConfig(preset="tiny", recipe="official-code",
                     model={"drop_path_joint": 0.0, "drop_path_temp": 0.0}).uplift_config()
    model = build_model(ucfg, seed=0)
    rng = np.random.default_rng(1)
    n_out, J = ucfg.model.n_out, 17
    batch = {"keypoints_2d": torch.from_numpy(rng.normal(scale=0.3, size=(4, n_out, J, 2)).astype(np.float32)),
             "keyframe": torch.ones(4, n_out, dtype=torch.bool),
             "joints_3d": torch.from_numpy(rng.normal(size=(4, n_out, J, 3)).astype(np.float32)),
             "valid": torch.from_numpy(np.arange(n_out)[None].repeat(4, 0) > 2)}
    with torch.no_grad():
        out = model(batch["keypoints_2d"], batch["keyframe"])
    ref = official_loss(out.seq.numpy(), out.center.numpy(), batch["joints_3d"].numpy())
    bundle = make_optimizer(model, ucfg)
    loss = _train_step(model, bundle, model, batch, ucfg.train, D.DistInfo(), torch.device("cpu"), False)[0]
    assert loss == pytest.approx(ref, rel=1e-5)


# ------------------------------------------------------------------------------------------------
# 3. the key-frame generators


@pytest.mark.parametrize("choices, s_out", [((4, 10, 20), 2), ((5, 10, 20), 5), ((2, 4), 2)])
def test_coupled_draw_equals_the_two_official_generators(choices, s_out):
    for seed in (0, 7, 12345):
        ref = official_keyframes(seed, 3000, list(choices), s_out)
        s_in, shift = draw_keyframes_coupled(seed, 3000, choices, s_out)
        np.testing.assert_array_equal(s_in, ref[:, 0])
        np.testing.assert_array_equal(shift, ref[:, 1])


def test_n81_lockstep_phases():
    """N = 81: s_in 4 always -1, s_in 10 -1/0/+1 with 0.2/0.6/0.2, s_in 20 only 1..4."""
    s_in, shift = draw_keyframes_coupled(3, 60000, (4, 10, 20), 2)
    assert set(shift[s_in == 4].tolist()) == {-1}
    f10 = np.bincount(shift[s_in == 10] + 1, minlength=3) / (s_in == 10).sum()
    np.testing.assert_allclose(f10, [0.2, 0.6, 0.2], atol=0.02)
    assert set(shift[s_in == 20].tolist()) == {1, 2, 3, 4}


def _centre_key_rate(draw: str, s_in_value: int) -> float:
    """Share of training windows of an N=81-like stream whose centre token is a key frame."""
    from tests.uplift.test_views import _walk  # a plain world walk
    from pipelines.writer import CorpusWriter
    from schemas.records import SequenceData, ViewData
    import tempfile

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        w = CorpusWriter(f"{d}/c", num_joints=17, fps=50.0)
        n = 4000
        j = _walk(n, rng)
        w.add(SequenceData(key="h/0", source="h36m", joints_world=j, split="train", subject="S1", action="a",
                           views=[ViewData("h36m", "0", "S1", "gt", np.zeros((n, 17, 2), np.float32), j,
                                           np.ones((n, 17), bool), np.zeros(11), np.zeros((3, 4)))]))
        w.commit("kf", tag="v1")
        cfg = StreamConfig(seq_len=81, s_out=2, s_in=(4, 10, 20), batch_size=256, block_frames=512, buffer_blocks=8,
                           keyframe_draw=draw)
        ds = WindowStream(f"{d}/c@v1", cfg, split="train")
        keys, s_ins = [], []
        for b in ds:
            keys.append(b["keyframe"][:, 40].numpy())
            s_ins.append(b["s_in"].numpy())
        keys, s_ins = np.concatenate(keys), np.concatenate(s_ins)
        return float(keys[s_ins == s_in_value].mean())


def test_stream_draws_coupled_key_frames_under_the_official_recipe():
    assert OFFICIAL.uplift_config().train.keyframe_draw == "coupled"
    # coupled: the centre is never a key frame at s_in 4 or 20; uniform: 1 in 2 and 1 in 10
    assert _centre_key_rate("coupled", 4) == 0.0 and _centre_key_rate("coupled", 20) == 0.0
    assert 0.4 < _centre_key_rate("uniform", 4) < 0.6 and 0.05 < _centre_key_rate("uniform", 20) < 0.15


# ------------------------------------------------------------------------------------------------
# 4. drop path, q/k/v init, EMA start


def test_released_temporal_drop_path_rates():
    cfg351 = get_preset("amass_351")
    official = build_model(cfg351.model.replace(**{k: v for k, v in recipe_values("official-code").items()
                                                    if RECIPE_ITEMS[k][0] == "model"}))
    got = [blk.drop_path.p for blk in official.temporal_blocks]
    np.testing.assert_allclose(got, official_temporal_drop_path(0.1, 384, 4), rtol=1e-6)
    np.testing.assert_allclose(got, [0, 2.6e-4, 5.2e-4, 7.8e-4], atol=1e-5)  # the figures
    paper = build_model(cfg351.model)
    np.testing.assert_allclose([blk.drop_path.p for blk in paper.temporal_blocks], np.linspace(0, 0.1, 4), rtol=1e-6)


def test_split_qkv_init_is_three_glorot_layers():
    d = 384
    cfg = get_preset("amass_351").model
    split = build_model(cfg.replace(qkv_init="split"), seed=0).temporal_blocks[0].attn.qkv.weight.detach()
    fused = build_model(cfg, seed=0).temporal_blocks[0].attn.qkv.weight.detach()
    for w in split.chunk(3):  # Glorot-uniform (d, d): U(-a, a), a = sqrt(6 / 2d), std a / sqrt(3)
        a = np.sqrt(6 / (2 * d))
        assert float(w.abs().max()) <= a and float(w.abs().max()) > 0.99 * a
        assert float(w.std()) == pytest.approx(a / np.sqrt(3), rel=0.02)
    assert float(fused.abs().max()) <= np.sqrt(6 / (4 * d)) + 1e-7  # one (3d, d) layer: a smaller bound


def test_ema_start_mixes_in_a_tenth_of_the_initial_weights():
    """train.py: ema_w -= (1 - d) (ema_w - w) with d = min(decay, (1 + step) / (10 + step)), the EMA
    starting as a copy of the initial weights: after step 0, 0.1 of them remain."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    w0 = [p.detach().clone() for p in model.parameters()]
    ema = make_ema(model, 0.999, start=OFFICIAL.uplift_config().train.ema_start)
    copy = make_ema(model, 0.999, start=PAPER.uplift_config().train.ema_start)
    ref = [p.clone() for p in w0]
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        d = min(0.999, (1 + step) / (10 + step))
        ref = [r - (1 - d) * (r - p.detach()) for r, p in zip(ref, model.parameters())]
        ema.update_parameters(model)
        copy.update_parameters(model)
        if step == 0:
            for e, p in zip(copy.module.parameters(), model.parameters()):
                assert torch.equal(e, p)  # paper's start: a plain copy
    for e, r in zip(ema.module.parameters(), ref):
        torch.testing.assert_close(e, r)


# ------------------------------------------------------------------------------------------------
# 2. placement and mirror of per-window AMASS windows


@pytest.fixture(scope="module")
def pw_corpus(tmp_path_factory):
    from pipelines.writer import CorpusWriter
    from schemas.reader import open_corpus
    from schemas.records import SequenceData, ViewData
    from tests.uplift.test_views import _walk

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("raw") / "c"
    w = CorpusWriter(path, num_joints=17, fps=50.0)
    for i, n in enumerate((70, 130)):
        jw = _walk(n, rng)
        w.add(SequenceData(key=f"CMU/{i}", source="amass", joints_world=jw, split="train", subject="S1", action="",
                           views=[ViewData("h36m", "0", "S1", "projected", np.zeros((n, 17, 2), np.float32),
                                           jw, np.ones((n, 17), bool), np.zeros(11), np.zeros((3, 4)))]))
    w.commit("raw", tag="v1", build_info={"settings": {"placement": "raw"}})
    return open_corpus(f"{path}@v1")


def test_official_placement_and_mirror_equal_the_reference(pw_corpus):
    from schemas.cameras import H36M_SUBJECTS, h36m_rig
    from uplift.windows import window_indices

    pool = [c for s in H36M_SUBJECTS for c in h36m_rig(s)]
    perm = H36M_17.flip_permutation
    sc = StreamConfig.for_training(RunConfig(preset="tiny", recipe="official-code", cameras="per-window"),
                                   RunConfig(preset="tiny").uplift_config()).replace(batch_size=16, block_frames=32,
                                                                                     buffer_blocks=3)
    ds = WindowStream(pw_corpus, sc, split="train")
    seqs = {k: pw_corpus.read_sequence(k)["joints_world"] for k in pw_corpus.sequences["key"].to_pylist()}
    views = ds.views
    checked = 0
    for b in ds:
        h = len(b["view"]) // 2
        for i in range(len(b["view"])):
            v, t, cam = int(b["view"][i]), int(b["frame"][i]), int(b["camera"][i])
            idx, _ = window_indices(t, int(views["n_frames"][v].as_py()), sc.n_out, sc.s_out)
            world = seqs[views["key"][v].as_py()][idx]
            kp, j3 = official_per_window(world, pool[cam], mirror=i >= h, perm=perm)
            np.testing.assert_allclose(b["keypoints_2d"][i].numpy(), kp, atol=2e-4)
            np.testing.assert_allclose(b["joints_3d"][i].numpy(), j3, atol=2e-5)
            checked += 1
    assert checked > 50
    # the paper's per-window windows are centred and mirrored about the volume centre: different
    paper = WindowStream(pw_corpus, sc.replace(placement="centred", mirror="volume-centre"), split="train")
    a, b = next(iter(ds)), next(iter(paper))
    assert torch.equal(a["camera"], b["camera"])
    assert (a["keypoints_2d"] - b["keypoints_2d"]).abs().max() > 0.05


def test_raw_placement_needs_a_corpus_stored_unplaced(tmp_path):
    # an AMASS corpus built with the default placement (rig): raw projection would be meaningless
    from tests.uplift.test_views import _walk
    from pipelines.writer import CorpusWriter
    from schemas.records import SequenceData, ViewData

    w = CorpusWriter(tmp_path / "rig", num_joints=17, fps=50.0)
    jw = _walk(90, np.random.default_rng(0))
    w.add(SequenceData(key="CMU/0", source="amass", joints_world=jw, split="train", subject="S1", action="",
                       views=[ViewData("h36m", "0", "S1", "projected", np.zeros((90, 17, 2), np.float32), jw,
                                       np.ones((90, 17), bool), np.zeros(11), np.zeros((3, 4)))]))
    w.commit("rig", tag="v1", build_info={"settings": {"rig": "h36m"}})
    cfg = RunConfig(preset="tiny", recipe="official-code", cameras="per-window", train={"batch_size": 8, "epochs": 1},
                    steps_per_epoch=1, block_frames=32, buffer_blocks=2, eval_every=0)
    with pytest.raises(ConfigError, match="placement 'raw'.*built with placement 'rig'"):
        train(cfg, tmp_path / "run", f"{tmp_path / 'rig'}@v1")
    train(cfg.replace(placement="centred"), tmp_path / "run2", f"{tmp_path / 'rig'}@v1")  # the item flipped: fine


def test_project_in_place_keeps_the_motion_as_it_is():
    from pipelines.placement import place_and_project, project_in_place
    from tests.uplift.test_views import _walk

    jw = _walk(200, np.random.default_rng(0)) + np.array([30.0, -12.0, 0.0], np.float32)  # far from the rig
    seg, = project_in_place(jw, rng=0)
    np.testing.assert_array_equal(seg.joints_world, jw)
    assert (seg.start, seg.stop, seg.yaw, seg.offset_xy) == (0, 200, 0.0, (0.0, 0.0))
    assert len(seg.views) == 4 and not seg.fits  # 30 m away: not in view, and flagged so
    placed = place_and_project(jw, rng=0)
    assert placed[0].fits and not np.allclose(placed[0].joints_world, jw[placed[0].start:placed[0].stop])


# ------------------------------------------------------------------------------------------------
# 6. epochs of exactly steps_per_epoch steps over a repeating stream


def _steps_cfg(epoch_length):
    return RunConfig(preset="tiny", train={"batch_size": 8, "epochs": 2, "epoch_length": epoch_length},
                     steps_per_epoch=8, block_frames=64, buffer_blocks=2, eval_every=0)


@pytest.mark.slow
def test_epochs_of_exactly_steps_over_a_repeating_stream(tmp_path):
    corpus = projected_corpus(tmp_path / "c", n_seq=2, n_frames=24)  # 24 training windows: 6 batches of 4 + 4 flips
    assert WindowStream(corpus, StreamConfig.for_training(_steps_cfg("steps"), _steps_cfg("steps").uplift_config()),
                        split="train").batches_per_epoch() == 6
    full = train(_steps_cfg("steps"), tmp_path / "steps", corpus)
    assert [h["steps"] for h in full.history] == [8, 8]
    short = train(_steps_cfg("pass-or-steps"), tmp_path / "pass", corpus)
    assert [h["steps"] for h in short.history] == [6, 6]  # the shorter of a pass and 8
    # the stream repeats (a new order each pass); a resume anywhere continues it exactly
    train(_steps_cfg("steps"), tmp_path / "resumed", corpus, max_steps=7)
    train(_steps_cfg("steps"), tmp_path / "resumed", corpus, max_steps=4)  # crosses the epoch end and pass 2
    rest = train(_steps_cfg("steps"), tmp_path / "resumed", corpus)
    read = lambda d: [json.loads(x)["loss"] for x in (d / "steps.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = read(tmp_path / "steps"), read(tmp_path / "resumed")
    assert len(a) == len(b) == 16
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert rest.history[-1]["loss"] == pytest.approx(full.history[-1]["loss"], rel=1e-5)
