"""One config system: frozen pydantic models whose errors are one ConfigError line, one name per setting
(the training stream takes each setting of the run by its name), a RunConfig loaded once."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas.errors import ConfigError
from uplift.config import TINY, ModelConfig, TrainConfig, UpliftConfig
from uplift.run_config import RunConfig
from uplift.windows import StreamConfig


def test_configs_are_frozen_hashable_and_keep_tuples():
    with pytest.raises(ValidationError):  # pydantic's frozen-instance error: a programming error, not input
        TINY.model.seq_len = 3
    assert hash(TINY) == hash(UpliftConfig.model_validate(json.loads(json.dumps(TINY.model_dump()))))
    m = ModelConfig.model_validate({**TINY.model.model_dump(mode="json"), "strides": [3, 3], "paddings": [[0, 0], [0, 0]]})
    assert m.strides == (3, 3) and m.paddings == ((0, 0), (0, 0)) and m == TINY.model
    assert TrainConfig(s_in=[2, 4]).s_in == (2, 4)


@pytest.mark.parametrize("make", [
    lambda: TrainConfig(batch_size=True), lambda: TrainConfig(lr=float("inf")), lambda: ModelConfig(paddings=((0, 2),)),
    lambda: UpliftConfig.model_validate({"name": 3}), lambda: UpliftConfig.model_validate({1: 2}),
    lambda: UpliftConfig.model_validate({"name": "x", "model": {"num_heads": 3}}), lambda: RunConfig(train=[1]),
    lambda: RunConfig(model={"d_temp": "big"}), lambda: RunConfig(train={"in_strides": [2]}),
    lambda: RunConfig(eval_s_in=[0]), lambda: RunConfig(train_subjects=["S1", 2]), lambda: RunConfig(device="x" * 2000),
    lambda: StreamConfig(seq_len=10), lambda: StreamConfig(batch_size=3), lambda: StreamConfig(s_in=(3,)),
    lambda: StreamConfig(cameras="random"),
])
def test_every_problem_is_one_config_error_line(make):
    with pytest.raises(ConfigError) as err:  # never pydantic's own multi-line report
        make()
    assert "\n" not in str(err.value) and "pydantic" not in str(err.value) and len(str(err.value)) < 300


def test_nan_and_inf_are_refused_as_such():
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ConfigError, match="lr must be finite"):
            TrainConfig(lr=bad)
        with pytest.raises(ConfigError, match="mlp_ratio must be finite"):
            ModelConfig.model_validate({"mlp_ratio": bad})


def test_the_training_stream_takes_each_setting_of_the_run_by_its_name():
    run = RunConfig(preset="tiny", recipe="paper", train={"batch_size": 6, "keyframe_random_shift": False,
                                                          "in_batch_flip": False, "s_in": [4]},
                    block_frames=33, buffer_blocks=7, seed=5, camera_rig="3dhp", mirror="x0", cameras="per-window")
    ucfg = run.uplift_config()
    sc = StreamConfig.for_training(run, ucfg)
    assert (sc.seq_len, sc.s_out, sc.n_out) == (ucfg.model.seq_len, ucfg.model.s_out, ucfg.model.n_out)
    assert (sc.s_in, sc.batch_size, sc.keyframe_random_shift, sc.in_batch_flip) == ((4,), 6, False, False)
    assert (sc.block_frames, sc.buffer_blocks, sc.seed, sc.camera_rig) == (33, 7, 5, "3dhp")
    assert (sc.cameras, sc.keyframe_draw, sc.placement, sc.mirror) == ("per-window", "uniform", "centred", "x0")
    assert (sc.flip, sc.frame_step, sc.drop_last, sc.prefetch_group) == (True, 1, True, None)  # the stream's own
    amass = RunConfig(preset="amass_351")  # cameras unset: the preset's mode, resolved by the run
    assert StreamConfig.for_training(amass, amass.uplift_config()).cameras == amass.camera_mode == "per-window"
    # every other stream setting has a namesake in the run's settings
    named = set(ModelConfig.model_fields) | set(TrainConfig.model_fields) | set(RunConfig.model_fields)
    assert set(StreamConfig.model_fields) - set(StreamConfig.STREAM_ONLY) <= named


def test_train_takes_a_loaded_run_config(tmp_path):
    from uplift.train import train

    with pytest.raises(TypeError, match="load_run_config"):
        train("tiny", tmp_path / "run", [])
