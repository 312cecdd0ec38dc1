"""The build-amass artifact says how the regressor's rows were resolved and lists the build's notes."""

from __future__ import annotations

from flows.build_amass import report_fields, report_markdown
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
