"""Pure helpers of the flows: tables, keys, retry policy, version specs, checkpoints, overrides."""

from __future__ import annotations


import pytest

from flows.common import artifact_key, is_transient, markdown_table, rejects_markdown, table_rows
from flows.training import apply_overrides, find_checkpoint
from schemas.repository import split_path_at_version as split_spec
from schemas.records import Reject
from schemas.errors import AmassFormatError, ConfigError, VersionConflictError


def test_markdown_table_escapes_pipes_and_newlines():
    md = markdown_table([("a|b", "x\ny"), (1, 2.5)], ["k", "v"])
    assert md.splitlines() == ["| k | v |", "| --- | --- |", "| a\\|b | x y |", "| 1 | 2.5 |"]


def test_rejects_markdown_lists_each_reject_and_says_none_when_empty():
    md = rejects_markdown([Reject("/d/bad.npz", "truncated zip", "amass"), Reject("/d/b2.npz", "no poses", "amass")])
    assert "### Rejects (2)" in md and "| /d/bad.npz | amass | truncated zip |" in md and "/d/b2.npz" in md
    assert "None" in rejects_markdown([])
    many = rejects_markdown([Reject(f"/f{i}", "r") for i in range(5)], limit=2)
    assert "/f1" in many and "/f2" not in many and "3 more" in many


def test_artifact_key_is_lowercase_letters_digits_dashes():
    assert artifact_key("Build_AMASS", "Report v1.2") == "build-amass-report-v1-2"
    assert artifact_key("ü") == "artifact"


class KilledWorker(Exception):  # named like distributed's: the policy goes by class name
    pass


@pytest.mark.parametrize("exc,transient", [
    (VersionConflictError("raced"), True), (KilledWorker("w"), True), (ConnectionResetError(), True),
    (TimeoutError(), True), (OSError("disk hiccup"), True),
    (AmassFormatError("/x.npz", "bad"), False), (ConfigError("bad"), False), (FileNotFoundError("x"), False),
    (ValueError("x"), False), (RuntimeError("x"), False)])
def test_retry_only_transient_failures(exc, transient):
    assert is_transient(exc) is transient


def test_split_spec_uses_the_last_at():
    assert split_spec("/data/c@v1") == ("/data/c", "v1")
    assert split_spec("/data/u@host/c@abc") == ("/data/u@host/c", "abc")
    assert split_spec("/data/c") == ("/data/c", None)


def test_find_checkpoint_run_dir_checkpoint_dir_and_file(tmp_path):
    run = tmp_path / "run"
    for name in ("last", "final"):
        (run / "checkpoints" / name).mkdir(parents=True)
        (run / "checkpoints" / name / "model.safetensors").write_bytes(b"x")
    final = run / "checkpoints" / "final"
    assert find_checkpoint(run) == final  # a finished run's final weights, not the last periodic save
    assert find_checkpoint(run / "checkpoints" / "last") == run / "checkpoints" / "last"
    assert find_checkpoint(final / "model.safetensors") == final
    from schemas.errors import ConfigError

    with pytest.raises(ConfigError):
        find_checkpoint(tmp_path / "empty")


def test_apply_overrides_goes_into_train_overrides_and_top_level():
    from uplift.train import RunConfig

    base = RunConfig(preset="tiny", train={"lr": 1e-3})
    cfg = apply_overrides(base, {"epochs": 1, "steps_per_epoch": 2, "preset": "h36m_81"})
    assert cfg.preset == "h36m_81" and cfg.steps_per_epoch == 2
    assert cfg.train == {"lr": 1e-3, "epochs": 1}
    assert cfg.uplift_config().train.epochs == 1  # the override reaches the trainer's config
    assert apply_overrides(base, {}) == base


def test_table_rows_from_dict_rows_and_arrow():
    header, rows = table_rows([{"action": "Walk", "mpjpe": 41.234}, {"action": "Sit", "pmpjpe": 30.0}])
    assert header == ["action", "mpjpe", "pmpjpe"] and rows == [["Walk", "41.23", ""], ["Sit", "", "30.00"]]
    import pyarrow as pa

    h2, r2 = table_rows(pa.table({"a": [1], "b": ["x"]}))
    assert h2 == ["a", "b"] and r2 == [[1, "x"]]
