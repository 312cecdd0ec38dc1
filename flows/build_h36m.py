"""Prefect flow ``build-h36m``: VideoPose3D-format 3D + CPN (or GT) 2D files -> a committed corpus version."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.build_report import validate_and_publish
from flows.failures import fail_with_reason, retry_transient
from flows.logs import run_logger
from flows.paths import resolve_config_paths
from pipelines.build_h36m import H36MBuildConfig
from pipelines.build_result import BuildResult

FLOW_NAME = "build-h36m"


@task(name="build-h36m-corpus", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def run_build(config: H36MBuildConfig) -> BuildResult:
    """Run ``pipelines.build_h36m.build_h36m`` once."""
    from pipelines.build_h36m import build_h36m

    return build_h36m(config)


@flow(name=FLOW_NAME, log_prints=True)
@fail_with_reason
def build_h36m_flow(config: H36MBuildConfig, validate_version: bool = True) -> dict:
    """Import Human3.6M in VideoPose3D format as a corpus version and validate it.

    Args:
        config: What to import and where (``pipelines.build_h36m.H36MBuildConfig``: folder with the
            VideoPose3D files, corpus, detections cpn | gt, tag).
        validate_version: Check the committed version with schemas.validate afterwards.

    Relative paths resolve against the directory the deployments are served from.
    """
    logger = run_logger()
    config = resolve_config_paths(config, ("data_dir", "corpus"))
    result = run_build(config)
    logger.info("build-h36m: version %s: %d sequences, %d views, %d rejects",
                result.version_id, result.n_sequences, result.n_views, len(result.rejects))
    for r in result.rejects:
        logger.warning("rejected %s (%s): %s", r.source_path, r.kind, r.reason)
    return validate_and_publish(FLOW_NAME, "H36M", config.corpus, result, validate_version)
