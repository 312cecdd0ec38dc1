"""Pure helpers of the flows: tables, keys, retry policy, version specs, checkpoints, overrides."""

from __future__ import annotations


import pytest

from flows.artifacts import artifact_key, markdown_table, rejects_markdown, table_rows
from flows.failures import infrastructure_errors
from flows.training import find_checkpoint
from schemas.versions import split_path_at_version as split_spec
from schemas.records import Reject
from schemas.errors import AmassFormatError, ConfigError, VersionConflictError, is_transient


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


class KilledWorker(Exception):  # named like distributed's, but not it: the policy goes by class, not name
    pass


class LostConnection(ConnectionResetError):
    pass


class StillMissing(FileNotFoundError):
    pass


def _killed_worker():
    from distributed import KilledWorker as DaskKilledWorker

    return DaskKilledWorker("task", "worker", allowed_failures=3)


@pytest.mark.parametrize("exc,transient", [
    (_killed_worker(), True), (ConnectionResetError(), True), (LostConnection(), True),
    (TimeoutError(), True), (OSError("disk hiccup"), True),
    # a version conflict is retried by the build itself (pipelines.build_result.on_top_of_conflicts), not again here
    (VersionConflictError("raced"), False),
    (AmassFormatError("/x.npz", "bad"), False), (ConfigError("bad"), False), (FileNotFoundError("x"), False),
    (StillMissing("x"), False), (KilledWorker("w"), False), (ValueError("x"), False), (RuntimeError("x"), False)])
def test_retry_only_transient_failures_by_class(exc, transient):
    assert is_transient(exc, infrastructure_errors()) is transient


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


def test_table_rows_from_dict_rows_and_arrow():
    header, rows = table_rows([{"action": "Walk", "mpjpe": 41.234}, {"action": "Sit", "pmpjpe": 30.0}])
    assert header == ["action", "mpjpe", "pmpjpe"] and rows == [["Walk", "41.23", ""], ["Sit", "", "30.00"]]
    import pyarrow as pa

    h2, r2 = table_rows(pa.table({"a": [1], "b": ["x"]}))
    assert h2 == ["a", "b"] and r2 == [[1, "x"]]


def test_one_line_folds_and_drops_keyerror_quotes_for_flows_and_cli():
    from flows.cli.output import error_line
    from flows.failures import state_message as one_line

    # Before one shared helper, the flows kept str(KeyError)'s quotes ("'no key x'") and the CLI dropped
    # them; the message without quotes is what a reader wants, in both places.
    assert one_line(KeyError("no key x")) == "no key x"
    assert error_line(KeyError("no key x")) == "no key x"  # never a class name on the command line
    assert "ValueError" not in error_line(ValueError(""))
    assert one_line(ValueError("a\n  b")) == "a b" and one_line(ValueError("")) == "ValueError"
    assert len(one_line(ValueError("x" * 5000))) == 1000 and len(error_line(ValueError("x" * 5000))) == 5000  # never cut
    assert error_line(ConfigError("bad")) == "bad"  # typed errors already say what is wrong


def test_training_report_reads_the_real_run_result():
    """The flows once probed result dicts for keys RunResult does not have (no metrics artifact for real
    runs): the report reads RunResult's fields, and the persisted JSON turns back into one."""
    from pathlib import Path

    from flows.training import report_markdown, result_from_json, result_to_json
    from uplift.train import RunResult

    run = RunResult(run_dir=Path("/runs/a"), checkpoint=Path("/runs/a/checkpoints/final"),
                    history=[{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "mpjpe_mm_s4": 80.0}],
                    eval_table=[], corpora={"/c@v1": ["h36m/S1/Walking"]})
    assert result_from_json(result_to_json(run)) == run
    md = report_markdown("pretrain", run, ["/c@SNAP"], "tiny", None)
    assert "### Metrics" in md and "| loss | 0.25 |" in md and "| mpjpe_mm_s4 | 80 |" in md
    assert "### Per epoch" in md and "/runs/a/checkpoints/final" in md
    with pytest.raises(TypeError):  # a field the trainer renamed fails loudly, never a silent gap
        result_from_json({**result_to_json(run), "metrics": {}})


def test_the_failed_run_log_filter_is_installed_where_flows_start_not_on_import():
    """Importing the flows changes no logging; a flow run starting (``fail_with_reason``) installs the
    filter that keeps Prefect's engine traceback of an expected failure out of the run's logs."""
    import subprocess
    import sys

    code = ("import logging, flows.build_amass, flows.training, flows.serve\n"
            "from flows.failures import fail_with_reason\n"
            "from flows.logs import FailedRunWithoutTraceback as F\n"
            "has = lambda: any(isinstance(f, F) for f in logging.getLogger('prefect.flow_runs').filters)\n"
            "before = has()\n"
            "fail_with_reason(lambda: None)()\n"
            "print(before, has())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["False", "True"], r.stdout
