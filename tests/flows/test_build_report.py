"""The build artifact (both build flows): how the regressor's rows were resolved, the notes, and one result type."""

from __future__ import annotations

from flows.build_report import report_fields, report_markdown
from pipelines.build_result import BuildResult


def test_artifact_names_the_swapped_pairs_and_notes():
    order = {"order": "auto", "perm": [0, 4, 5, 6, 1, 2, 3] + list(range(7, 17)),
             "swapped_pairs": ["l_hip/r_hip", "l_knee/r_knee", "l_ankle/r_ankle"], "sha256": "ab" * 32,
             "message": "regressor rows swapped to fix sides: l_hip/r_hip, l_knee/r_knee, l_ankle/r_ankle"}
    report = BuildResult(corpus="c", version_id="v", up_to_date=False, n_sources=2, n_sequences=2, n_frames=10,
                         n_views=8, n_recomputed=2, n_carried=0, n_flagged=0, source_frames=20,
                         regressor_order=order, notes=["a_poses.npz: 300 betas, the 284 beyond ... all zero"])
    md = report_markdown(report, [], "build-amass: v")
    assert "l_hip/r_hip, l_knee/r_knee, l_ankle/r_ankle" in md and "`auto`" in md
    assert "300 betas" in md
    assert report_fields(report)["regressor_order"]["swapped_pairs"] == order["swapped_pairs"]
    assert ("regressor rows", order["message"]) in report.summary_rows()


def test_both_builds_return_one_result_type_with_the_same_report_keys(tmp_path):
    """The flows and the CLI read one type: an H36M build that returned its own summary type (the old
    H36MBuildSummary, no up_to_date / in_view_fraction / notes) fails here."""
    import json

    from pipelines.build_amass import BuildConfig, build_amass
    from pipelines.build_h36m import H36MBuildConfig, build_h36m
    from pipelines.synthetic.h36m import write_h36m_files
    from tests.support.builds import make_inputs

    root = make_inputs(tmp_path / "in", n_sequences=2, seed=4, duration_s=(1.0, 1.5))
    amass = build_amass(BuildConfig(amass_root=root / "amass", body_models=root / "body_models",
                                    corpus=tmp_path / "amass", n_workers=1))
    write_h36m_files(tmp_path / "h36m", seed=1, subjects=("S1",), actions=("Walking",), frames=30)
    h36m = build_h36m(H36MBuildConfig(data_dir=tmp_path / "h36m", corpus=tmp_path / "h36m_corpus"))
    assert type(amass) is BuildResult and type(h36m) is BuildResult
    a, h = report_fields(amass), report_fields(h36m)
    assert a.keys() == h.keys()
    assert json.loads(json.dumps(h)) == h  # what a flow run returns must be JSON
    assert h["n_sequences"] == 1 and h["n_frames"] > 0 and 0.0 <= h["in_view_fraction"] <= 1.0
    assert a["n_sequences"] >= 2 and a["regressor_order"] and h["regressor_order"] is None
