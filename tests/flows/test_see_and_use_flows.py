"""Issue 14 in the flows: builds publish a contact sheet, ``evaluate`` the median / worst windows, and the
``infer`` flow writes poses (against the shared local Prefect server; small synthetic data)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.synthetic.h36m import write_h36m_files
from tests.flows.conftest import artifacts_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def h36m_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("flows-see")
    write_h36m_files(root / "h36m", seed=2, subjects=("S1", "S9"), actions=("Walking", "Sitting 1"), frames=60,
                     subjects_2d_only=())
    return root


def _png(path) -> tuple[int, int]:
    return Image.open(path).size


def _embedded(artifact) -> bytes:
    """The image a markdown artifact embeds (what the UI shows: no file:// link a browser refuses)."""
    import base64
    import re

    assert artifact.type == "markdown", artifact.type
    m = re.search(r"!\[[^\]]*\]\(data:image/(?:png|gif);base64,([^)]+)\)", artifact.data)
    assert m, artifact.data[:300]
    return base64.b64decode(m.group(1))


def test_build_publishes_contact_sheet_and_evaluate_median_worst_and_infer(prefect_api, h36m_files, tmp_path):
    from flows.build_report import preview_path
    from flows.build_h36m import build_h36m_flow
    from pipelines.build_h36m import H36MBuildConfig
    from flows.evaluate import evaluate_flow
    from flows.infer import infer_flow
    from uplift.run_config import RunConfig
    from uplift.train import train

    corpus = tmp_path / "corpus"
    state = build_h36m_flow(H36MBuildConfig(data_dir=h36m_files / "h36m", corpus=corpus, detections="gt", tag="gt"),
                            return_state=True)
    assert state.is_completed()
    vid = state.result()["version_id"]
    arts = {a.key: a for a in artifacts_of(state.state_details.flow_run_id)}
    sheet = preview_path(corpus, vid)
    assert _embedded(arts["build-h36m-contact-sheet"]) == sheet.read_bytes()
    assert str(sheet.resolve()) in arts["build-h36m-contact-sheet"].data
    w, h = _png(sheet)
    assert h > w  # 3 sequences x 2 views, one row each

    cfg = RunConfig(preset="tiny", train={"batch_size": 4, "epochs": 1}, steps_per_epoch=2, block_frames=64,
                    buffer_blocks=2, eval_every=0)
    run = train(cfg, tmp_path / "run", f"{corpus}@gt")
    state = evaluate_flow(checkpoint=run.run_dir, corpus=f"{corpus}@gt", return_state=True)
    assert state.is_completed()
    out = state.result()
    assert set(out["renders"]) == {"median", "worst"}
    arts = {a.key: a for a in artifacts_of(state.state_details.flow_run_id)}
    for name in ("median", "worst"):
        assert _embedded(arts[f"evaluate-{name}-window"]) == open(out["renders"][name], "rb").read()
        _png(out["renders"][name])

    from pipelines.h36m import load_positions_2d

    px = load_positions_2d(h36m_files / "h36m" / "data_2d_h36m_gt.npz")[0]["S1"]["Walking"][0]
    np.save(tmp_path / "px.npy", px)
    state = infer_flow(checkpoint=run.run_dir, input_path=tmp_path / "px.npy", out=tmp_path / "poses.npy",
                       width=1000, height=1002, render=tmp_path / "poses.png", return_state=True)
    assert state.is_completed()
    poses = np.load(tmp_path / "poses.npy")
    assert poses.shape == (len(px), 17, 3)
    arts = {a.key: a for a in artifacts_of(state.state_details.flow_run_id)}
    assert "infer-poses" in arts and _embedded(arts["infer-render"]) == (tmp_path / "poses.png").read_bytes()
    # an .mp4 cannot be an <img>: a PNG contact sheet beside it is shown instead
    state = infer_flow(checkpoint=run.run_dir, input_path=tmp_path / "px.npy", out=tmp_path / "poses2.npy",
                       width=1000, height=1002, render=tmp_path / "poses.mp4", return_state=True)
    assert state.is_completed()
    arts = {a.key: a for a in artifacts_of(state.state_details.flow_run_id)}
    assert _embedded(arts["infer-render"]) == (tmp_path / "poses.preview.png").read_bytes()
    bad = infer_flow(checkpoint=run.run_dir, input_path=tmp_path / "px.npy", out=tmp_path / "x.npy",
                     return_state=True)  # no --width/--height
    assert bad.is_failed() and not (tmp_path / "x.npy").exists()
