"""The AMASS build's workers get typed settings (``pipelines.sequence.WorkerSettings``); a version records
them exactly as the untyped dict did, and the config hash is still of ``BuildConfig.data_settings()``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.build_amass import BuildConfig
from pipelines.sequence import WorkerSettings


def _cfg(tmp_path, **kw):
    return BuildConfig(amass_root=tmp_path, body_models=tmp_path, corpus=tmp_path / "c", **kw)


def test_the_record_is_the_settings_as_given(tmp_path):
    data = _cfg(tmp_path).data_settings()
    assert "placement" not in data and "calibration_sha256" not in data  # versions built before keep their hash
    extra = {"regressor_order": "auto", "perms": {"smplh": [0, 4, 5, 6, 1, 2, 3]}, "deftrafo": None,
             "smplx_regressor": None, "source_root": str(tmp_path)}
    settings = WorkerSettings(**data, **extra)
    assert settings.record() == {**data, **extra}
    assert list(settings.record()) == list({**data, **extra})  # and in the same order
    raw = _cfg(tmp_path, placement="raw", rig="3dhp", fps=30.0, seed=2).data_settings()
    assert WorkerSettings(**raw, calibration_sha256="ab").record() == {**raw, "calibration_sha256": "ab"}
    assert WorkerSettings(**raw).placement == "raw" and WorkerSettings(**data).placement == "rig"


def test_worker_settings_are_typed_and_frozen(tmp_path):
    data = _cfg(tmp_path).data_settings()
    with pytest.raises(ValidationError):
        WorkerSettings(**data, regressor_ordr="auto")  # a misspelt key is refused
    with pytest.raises(ValidationError):
        WorkerSettings(**{**data, "rig": "vicon"})
    settings = WorkerSettings(**data)
    with pytest.raises(ValidationError):
        settings.seed = 3
