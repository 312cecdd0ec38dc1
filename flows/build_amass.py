"""Prefect flow ``build-amass``: AMASS files -> one committed, validated corpus version.

One coarse Prefect task runs the whole build; the build fans sequences out on Dask itself (a
LocalCluster, or ``scheduler``), so thousands of sequences cost one task run, not thousands. The
build is its own cache: it recomputes only sources whose (sha256, config hash) changed and commits
nothing when nothing did, which is sharper than a Prefect input cache over paths.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.build_report import validate_and_publish
from flows.failures import fail_with_reason, retry_transient
from flows.logs import run_logger
from flows.paths import resolve_config_paths
from flows.progress import Progress
from pipelines.build_amass import BuildConfig
from pipelines.build_result import BuildResult

FLOW_NAME = "build-amass"


@task(name="build-amass-corpus", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def run_build(config: BuildConfig) -> BuildResult:
    """Run ``pipelines.build_amass.build_amass`` once."""
    from pipelines import build_amass as build

    return build.build_amass(config, progress=Progress("build-amass sources"))


@flow(name=FLOW_NAME, log_prints=True)
@fail_with_reason
def build_amass_flow(config: BuildConfig, validate_version: bool = True) -> dict:
    """Build (or incrementally rebuild) an AMASS corpus version and validate it.

    Args:
        config: What to build and where (``pipelines.build_amass.BuildConfig``: AMASS root, body models
            (SMPL+H and/or SMPL-X, with the SMPL-X -> SMPL deformation transfer), corpus, tag, rig, cameras,
            fps, seed, Dask scheduler or workers, regressor row order).
        validate_version: Check the committed version with schemas.validate afterwards.

    Relative paths resolve against the directory the deployments are served from.
    """
    logger = run_logger()
    config = resolve_config_paths(config, ("amass_root", "body_models", "regressor", "corpus", "calibration"))
    report = run_build(config)
    logger.info("build-amass: version %s (%s): %d sequences, %d frames, %d views, %d rejects in %.1f s",
                report.version_id, "up to date" if report.up_to_date else "committed", report.n_sequences,
                report.n_frames, report.n_views, len(report.rejects), report.elapsed_s)
    if report.regressor_order:
        logger.info("build-amass: regressor: %s", report.regressor_order.get("message"))
    if report.smplx_regressor_order:
        logger.info("build-amass: regressor for SMPL-X: %s", report.smplx_regressor_order.get("message"))
    if report.body_models_used:
        logger.info("build-amass: body models: %s", ", ".join(f"{k} {v}" for k, v in report.body_models_used.items()))
    for r in report.rejects:
        logger.warning("rejected %s (%s): %s", r.source_path, r.kind, r.reason)
    return validate_and_publish(FLOW_NAME, "AMASS", config.corpus, report, validate_version)
