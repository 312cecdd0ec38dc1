"""Run dirs and checkpoints written before the config system changed still load, to the same settings.

``data/runs_v1/<run>/config.json`` and ``meta.json`` were written by tiny training runs of the dataclass
configs, before they became pydantic models (three runs: the official-code recipe with overrides in every
section, a fine-tune with the paper recipe, the h36m_81 preset). Each must load, resolve to exactly the
UpliftConfig it recorded, and be written back byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uplift.checkpoint import read_meta
from uplift.config import UpliftConfig
from uplift.run_config import RunRecord, load_run_config

RUNS = Path(__file__).parent / "data" / "runs_v1"
NAMES = sorted(p.name for p in RUNS.iterdir())


def test_the_fixtures_are_there():
    assert NAMES == ["h36m_81", "tiny-finetune", "tiny-official"]


@pytest.mark.parametrize("name", NAMES)
def test_a_run_dirs_config_json_loads_to_the_settings_it_recorded(name):
    path = RUNS / name / "config.json"
    record = json.loads(path.read_text())
    rcfg = load_run_config(path)  # a run's config.json is a run config too: the run's settings again
    ucfg = rcfg.uplift_config(finetuning=record["init"] is not None)
    assert ucfg.model_dump(mode="json") == record["uplift"]
    assert rcfg.recipe_items() == record["recipe"]["items"]
    assert rcfg.model_dump(mode="json") == record["run"]
    assert RunRecord.model_validate(record).uplift == ucfg


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoints_meta_json_loads_to_the_config_it_recorded(name):
    meta = read_meta(RUNS / name / "meta.json")
    ucfg = meta.pop("_config")
    assert isinstance(ucfg, UpliftConfig)
    assert ucfg.model_dump(mode="json") == meta["config"]
    record = json.loads((RUNS / name / "config.json").read_text())
    assert meta["config"] == record["uplift"]


@pytest.mark.parametrize("name", NAMES)
def test_a_run_writes_its_config_json_as_before(name):
    text = (RUNS / name / "config.json").read_text()
    record = json.loads(text)
    rcfg = load_run_config(RUNS / name / "config.json")
    ucfg = rcfg.uplift_config(finetuning=record["init"] is not None)
    assert RunRecord.of(rcfg, ucfg, record["init"], record["world_size"]).to_json() == text
