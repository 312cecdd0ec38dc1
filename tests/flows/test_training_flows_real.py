"""The real trainer and evaluator through the flows, against a real local Prefect server: a pretrain run
publishes its metrics table and plot link; the evaluate flow publishes the metrics table; a missing
checkpoint fails the evaluate run with its one-line reason."""

from __future__ import annotations

import json

import pytest

from tests.flows.conftest import artifacts_of
from tests.flows.test_flow_failures import server_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from tests.support.training_corpus import projected_corpus

    return projected_corpus(tmp_path_factory.mktemp("flows-train") / "c", n_seq=3, n_frames=160)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps({"preset": "tiny", "train": {"batch_size": 16, "epochs": 2, "lr": 1e-3},
                                "steps_per_epoch": 3, "block_frames": 64, "buffer_blocks": 2, "seed": 1}))
    return str(path)


def test_real_pretrain_publishes_metrics_and_plot_then_evaluate_runs(prefect_api, corpus, config, tmp_path):
    from flows.evaluate import evaluate_flow
    from flows.training import pretrain_flow

    run = tmp_path / "pre"
    state = pretrain_flow(corpus=[corpus], out_dir=run, config=config, return_state=True)
    assert state.is_completed(), state
    history = json.loads((run / "metrics.json").read_text())
    arts = {a.key: a for a in artifacts_of(state.state_details.flow_run_id)}
    report = arts["pretrain-report"].data
    assert "### Metrics" in report and "### Per epoch" in report
    last_loss = f"{history[-1]['loss']:.4g}"
    assert f"| loss | {last_loss} |" in report  # the real RunResult's last epoch, not a fake's keys
    assert any(k.startswith("mpjpe_mm_s") for k in history[-1]) and "mpjpe_mm_s" in report
    assert "metrics.png" in arts["pretrain-plot"].data and (run / "metrics.png").is_file()

    ev = evaluate_flow(checkpoint=run, corpus=corpus, return_state=True)
    assert ev.is_completed(), ev
    out = ev.result()
    assert "mpjpe_mm" in out["header"] and out["rows"]
    table = {a.key: a for a in artifacts_of(ev.state_details.flow_run_id)}["evaluate-metrics"].data
    assert "mpjpe_mm" in table and str(run) in json.dumps(out)


def test_evaluate_without_a_checkpoint_fails_with_its_reason(prefect_api, corpus, tmp_path):
    from flows.evaluate import evaluate_flow

    state = evaluate_flow(checkpoint=tmp_path / "nothing", corpus=corpus, return_state=True)
    on_server = server_state(state.state_details.flow_run_id)
    assert on_server.is_failed()
    assert on_server.message.startswith(f"{tmp_path / 'nothing'}: no checkpoint"), on_server.message
