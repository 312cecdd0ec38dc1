"""Every numeric setting has a documented range (uplift.config.RANGES), checked with its type before
anything is built; a value just outside a range is refused, one at its edge accepted."""

from __future__ import annotations

import dataclasses
import json

import pytest

from schemas.errors import ConfigError, ConfigFileError
from uplift.config import RANGES, ModelConfig, TrainConfig, config_from_dict, get_preset
from uplift.train import RunConfig, load_run_config

CLASSES = (ModelConfig, TrainConfig, RunConfig)
NUMERIC = ("int", "float", "tuple[int, ...]", "tuple[tuple[int, int], ...]", "list | None", "int | None",
           "float | None")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_numeric_field_has_a_documented_range(cls):
    """A new numeric key without a row in RANGES fails here (add its range next to the others)."""
    missing = [f.name for f in dataclasses.fields(cls)
               if f.type in NUMERIC and f.name not in RANGES[cls.__name__]
               and f.name not in ("train_subjects", "eval_subjects",  # lists of names, not numbers
                                  "amass_train_datasets", "amass_val_datasets")]
    assert not missing, f"{cls.__name__}: no documented range for {missing}"
    assert set(RANGES[cls.__name__]) <= {f.name for f in dataclasses.fields(cls)}


def _scalar_fields(cls):
    for f in dataclasses.fields(cls):
        if f.type in ("int", "float", "int | None", "float | None") and f.name in RANGES[cls.__name__]:
            yield f


def _make(cls, **kw):
    if cls is RunConfig:
        return RunConfig(**kw)
    base = get_preset("h36m_351")
    return dataclasses.replace(base.model if cls is ModelConfig else base.train, **kw)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_values_outside_each_range_are_refused_by_name(cls):
    for f in _scalar_fields(cls):
        lo, hi = RANGES[cls.__name__][f.name]
        for bad in (hi * 2 + 1, lo - 1, float("nan")):
            if f.type.startswith("int") and bad != bad:
                bad = 1.5  # a float where an int belongs
            with pytest.raises(ConfigError, match=f.name):
                _make(cls, **{f.name: int(bad) if f.type.startswith("int") and bad == int(bad) else bad})


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
    good = json.loads(json.dumps(dataclasses.asdict(get_preset("tiny"))))
    assert config_from_dict(good) == get_preset("tiny")
    for bad in ([1, 2], {**good, "model": [1]}, {**good, "model": {**good["model"], "bogus": 1}},
                {**good, "train": {**good["train"], "epochs": "3"}}):
        with pytest.raises(ConfigError):
            config_from_dict(bad)


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
