"""Every numeric setting has a documented range (``Field(ge=, le=)``, read back by uplift.config.setting_range),
checked with its type before anything is built; a value just outside a range is refused, one at its edge accepted."""

from __future__ import annotations

import json
import typing

import pytest

from schemas.errors import ConfigError, ConfigFileError
from uplift.config import ModelConfig, TrainConfig, UpliftConfig, get_preset, setting_range
from uplift.run_config import RunConfig, load_run_config

CLASSES = (ModelConfig, TrainConfig, RunConfig)
NAME_LISTS = ("train_subjects", "eval_subjects", "amass_train_datasets", "amass_val_datasets")


def _numbers_in(tp, into_collections: bool = True) -> set:
    """The number types (int, float; never bool) a field's type holds, looking through Annotated,
    Optional and (with ``into_collections``) tuples and lists."""
    if tp in (int, float):
        return {tp}
    if not into_collections and typing.get_origin(tp) in (tuple, list, dict):
        return set()
    return set().union(*[_numbers_in(a, into_collections) for a in typing.get_args(tp) if a is not Ellipsis]) \
        if typing.get_args(tp) else set()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_numeric_field_has_a_documented_range(cls):
    """A new numeric key without a range fails here (give it ``Field(ge=, le=)``)."""
    numeric = [n for n, f in cls.model_fields.items() if _numbers_in(f.annotation) and n not in NAME_LISTS]
    assert len(numeric) >= 10
    missing = [n for n in numeric if setting_range(cls, n) is None]
    assert not missing, f"{cls.__name__}: no documented range for {missing}"


def _scalar_fields(cls):
    for name, f in cls.model_fields.items():
        kinds = _numbers_in(f.annotation, into_collections=False)
        if kinds and setting_range(cls, name) is not None:
            yield name, kinds.pop()


def _make(cls, **kw):
    if cls is RunConfig:
        return RunConfig(**kw)
    base = get_preset("h36m_351")
    return (base.model if cls is ModelConfig else base.train).replace(**kw)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_values_outside_each_range_are_refused_by_name(cls):
    fields = list(_scalar_fields(cls))
    assert len(fields) >= 8
    for name, kind in fields:
        lo, hi = setting_range(cls, name)[:2]
        for bad in (hi * 2 + 1, lo - 1, float("nan")):
            if kind is int and bad != bad:
                bad = 1.5  # a float where an int belongs
            with pytest.raises(ConfigError, match=name):
                _make(cls, **{name: int(bad) if kind is int and bad == int(bad) else bad})


def test_values_at_the_edges_of_a_closed_range_are_accepted():
    for name in ("num_workers", "prefetch_factor", "eval_every", "seed"):
        lo, hi, lo_open, hi_open = setting_range(RunConfig, name)
        assert not lo_open and not hi_open
        assert getattr(RunConfig(**{name: lo}), name) == lo and getattr(RunConfig(**{name: hi}), name) == hi
    assert TrainConfig(weight_decay=0.0, decay_rate=1.0).decay_rate == 1.0
    with pytest.raises(ConfigError, match=r"decay_rate = 0.0 is outside its documented range \(0, 1\]"):
        TrainConfig(decay_rate=0.0)


def test_wrong_types_are_refused():
    with pytest.raises(ConfigError, match="batch_size must be int"):
        TrainConfig(batch_size=16.0)
    with pytest.raises(ConfigError, match="qkv_bias must be bool"):
        ModelConfig(qkv_bias=1)
    with pytest.raises(ConfigError, match="strides must be"):
        ModelConfig(strides=(3, "10", 3))
    with pytest.raises(ConfigError, match="num_workers must be int"):
        RunConfig(num_workers=True)


def test_model_size_is_bounded_before_building():
    ok = ModelConfig(d_temp=1024, num_heads=8)  # ~90 M parameters: within the limit
    assert ok.approx_parameters < 100_000_000
    with pytest.raises(ConfigError, match="parameters is over the limit"):
        ModelConfig(d_temp=4096, depth_temp=16, num_heads=8)


def test_checkpoint_config_must_be_a_mapping_of_known_keys():
    good = json.loads(json.dumps(get_preset("tiny").model_dump()))
    assert UpliftConfig.model_validate(good) == get_preset("tiny")
    for bad in ([1, 2], {**good, "model": [1]}, {**good, "model": {**good["model"], "bogus": 1}},
                {**good, "train": {**good["train"], "epochs": "3"}}, {1: 2}, {**good, "model": {1: 2}}):
        with pytest.raises(ConfigError):
            UpliftConfig.model_validate(bad)


@pytest.mark.parametrize("name,text,match", [
    ("c.yaml", "", "empty"),
    ("c.yaml", "preset: tiny\ntrain_subjects: &a [S1]\neval_subjects: *a\n", "anchors and aliases"),
    ("c.json", "[1, 2]", "expected a mapping"),
    ("c.json", '{"preset": "tiny", "num_workers": 1e9}', "num_workers"),
    ("c.json", '{"preset": "tiny", "train": {"epochs": 1' + "0" * 5000 + "}}", "not a valid json"),
    ("c.toml", "preset = 'tiny'\nprefetch_factor = 100000\n", r"\[1, 64\]"),
    ("c.json", '{"preset": "tiny", "model": {"d_temp": 999999}}', "d_temp"),
    ("c.json", "[" * 100000 + "]" * 100000, "nests too deeply|not a valid"),
])
def test_config_files_name_the_file_and_the_problem(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigFileError, match=match) as err:
        load_run_config(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_a_missing_config_file_is_not_an_unknown_preset(tmp_path):
    with pytest.raises(ConfigFileError, match="config file not found"):
        load_run_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_run_config("no_such_preset")
