"""Run dirs and checkpoints written before the config system changed still load, to the same settings.

``data/runs_v1/<run>/config.json`` and ``meta.json`` were written by a tiny training run of the code as it was
(three runs: the official-code recipe with overrides in every section, a fine-tune with the paper recipe,
the h36m_81 preset). Each must load, resolve to exactly the UpliftConfig it recorded, and be written back
byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from uplift.config import config_from_dict
from uplift.train import RunConfig

RUNS = Path(__file__).parent / "data" / "runs_v1"
NAMES = sorted(p.name for p in RUNS.iterdir())


def test_the_fixtures_are_there():
    assert NAMES == ["h36m_81", "tiny-finetune", "tiny-official"]


@pytest.mark.parametrize("name", NAMES)
def test_a_run_dirs_config_json_loads_to_the_settings_it_recorded(name):
    record = json.loads((RUNS / name / "config.json").read_text())
    rcfg = RunConfig(**record["run"])
    ucfg = rcfg.uplift_config(finetuning=record["init"] is not None)
    assert json.loads(json.dumps(asdict(ucfg))) == record["uplift"]
    assert rcfg.recipe_items() == record["recipe"]["items"]
    assert json.loads(json.dumps(asdict(rcfg))) == record["run"]


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoints_meta_json_loads_to_the_config_it_recorded(name):
    meta = json.loads((RUNS / name / "meta.json").read_text())
    ucfg = config_from_dict(meta["config"])
    assert json.loads(json.dumps(asdict(ucfg))) == meta["config"]
    record = json.loads((RUNS / name / "config.json").read_text())
    assert meta["config"] == record["uplift"]


@pytest.mark.parametrize("name", NAMES)
def test_a_run_writes_its_config_json_as_before(name, tmp_path):
    from uplift.train import _write_run_files

    text = (RUNS / name / "config.json").read_text()
    record = json.loads(text)
    rcfg = RunConfig(**record["run"])
    ucfg = rcfg.uplift_config(finetuning=record["init"] is not None)
    _write_run_files(tmp_path, rcfg, ucfg, record["init"], {}, record["world_size"], fresh=False)
    assert (tmp_path / "config.json").read_text() == text
