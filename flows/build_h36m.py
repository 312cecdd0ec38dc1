"""Prefect flow ``build-h36m``: VideoPose3D-format 3D + CPN (or GT) 2D files -> a committed corpus version."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.build_amass import report_fields, validate_and_publish
from flows.common import fail_with_reason, retry_transient, run_logger
from schemas.storage import CorpusLocation

FLOW_NAME = "build-h36m"


@task(name="build-h36m-corpus", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def run_build(data_dir: str, corpus: str, detections: str, tag: str | None):
    from pipelines.h36m import build_h36m

    return build_h36m(data_dir, corpus, detections=detections, tag=tag)


@flow(name=FLOW_NAME, log_prints=True)
@fail_with_reason
def build_h36m_flow(data_dir: Path, corpus: CorpusLocation, detections: Literal["cpn", "gt"] = "cpn",
                    tag: str | None = None, validate_version: bool = True) -> dict:
    """Import Human3.6M in VideoPose3D format as a corpus version and validate it.

    Args:
        data_dir: Folder with data_3d_h36m.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz (or data_2d_h36m_gt.npz).
        corpus: Corpus repository: a local folder or s3://bucket/prefix (created on first import).
        detections: 2D keypoints to import: cpn (detected) or gt (projected ground truth).
        tag: Tag for the committed version, e.g. h36m-cpn-v1.
        validate_version: Check the committed version with schemas.validate afterwards.
    """
    logger = run_logger()
    report = run_build(str(data_dir), str(corpus), detections, tag or None)
    f = report_fields(report)
    vid = f["version_id"]
    logger.info("build-h36m: version %s: %d sequences, %d views, %d rejects",
                vid, f["n_sequences"], f["n_views"], f["n_rejects"])
    for r in f["rejects"]:
        logger.warning("rejected %s (%s): %s", r["source_path"], r["kind"], r["reason"])
    return validate_and_publish(FLOW_NAME, "H36M", corpus, report, validate_version)
