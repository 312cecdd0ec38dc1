"""Pure helpers of the flows: tables, keys, retry policy, version specs, checkpoints, overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from flows.common import artifact_key, is_transient, markdown_table, rejects_markdown
from flows.evaluate import table_rows
from flows.training import DONE_MARKER, apply_overrides, find_checkpoint, split_spec
from pipelines.records import Reject
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


def test_find_checkpoint_file_run_dir_and_marker(tmp_path):
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    (run / "sub" / "model.pt").write_bytes(b"x")
    (run / "checkpoint_last.safetensors").write_bytes(b"x")
    assert find_checkpoint(run).name == "checkpoint_last.safetensors"
    other = tmp_path / "best.pt"
    other.write_bytes(b"y")
    (run / DONE_MARKER).write_text('{"checkpoint": "%s"}' % other)
    assert find_checkpoint(run) == other
    assert find_checkpoint(other) == other
    from schemas.errors import InputError

    with pytest.raises(InputError):
        find_checkpoint(tmp_path / "empty")


@dataclass(frozen=True)
class _Train:
    epochs: int = 10
    in_strides: tuple = (5, 10)


@dataclass(frozen=True)
class _Cfg:
    name: str = "x"
    train: _Train = field(default_factory=_Train)


def test_apply_overrides_goes_into_train_fields_and_top_level():
    cfg = apply_overrides(_Cfg(), {"epochs": 1, "in_strides": [2, 4], "name": "y"})
    assert cfg == _Cfg(name="y", train=_Train(epochs=1, in_strides=(2, 4)))
    assert apply_overrides(_Cfg(), {}) == _Cfg()


def test_table_rows_from_dict_rows_and_arrow():
    header, rows = table_rows([{"action": "Walk", "mpjpe": 41.234}, {"action": "Sit", "pmpjpe": 30.0}])
    assert header == ["action", "mpjpe", "pmpjpe"] and rows == [["Walk", "41.23", ""], ["Sit", "", "30.00"]]
    import pyarrow as pa

    h2, r2 = table_rows(pa.table({"a": [1], "b": ["x"]}))
    assert h2 == ["a", "b"] and r2 == [[1, "x"]]
