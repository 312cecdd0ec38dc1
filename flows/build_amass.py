"""Prefect flow ``build-amass``: AMASS files -> one committed, validated corpus version.

One coarse Prefect task runs the whole build; the build fans sequences out on Dask itself (a
LocalCluster, or ``scheduler``), so thousands of sequences cost one task run, not thousands. The
build is its own cache: it recomputes only sources whose (sha256, config hash) changed and commits
nothing when nothing did, which is sharper than a Prefect input cache over paths.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import (ExpectedFailure, Progress, fail_with_reason, markdown_table, publish_image,
                          publish_link, publish_markdown, rejects_markdown, retry_transient, run_logger)
from pipelines.build_amass import BuildConfig
from pipelines.build_result import BuildResult

FLOW_NAME = "build-amass"


@task(name="build-amass-corpus", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def run_build(config: BuildConfig) -> BuildResult:
    """Run ``pipelines.build_amass.build_amass`` once."""
    from pipelines import build_amass as build

    return build.build_amass(config, progress=Progress("build-amass sources"))


@task(name="validate-corpus", retries=1, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def run_validate(corpus: str, version: str) -> list[str]:
    from schemas.validate import validate_corpus

    return list(validate_corpus(corpus, version))


def report_fields(result: BuildResult) -> dict:
    """The fields the flows report (JSON-able), the same for every build."""
    return {"corpus": result.corpus, "version_id": result.version_id, "tag": result.tag,
            "up_to_date": result.up_to_date, "n_sequences": result.n_sequences, "n_frames": result.n_frames,
            "n_views": result.n_views, "n_rejects": len(result.rejects),
            "in_view_fraction": result.in_view_fraction, "elapsed_s": result.elapsed_s,
            "rejects": [{"source_path": r.source_path, "kind": r.kind, "reason": r.reason} for r in result.rejects],
            "regressor_order": result.regressor_order, "notes": list(result.notes)}


def report_markdown(result: BuildResult, problems: list[str] | None, title: str) -> str:
    """The build artifact: summary table (version, counts, in-view fraction), rejects with reasons, validation."""
    parts = [f"## {title}", markdown_table(result.summary_rows(), ["", "value"])]
    order = result.regressor_order
    if order:
        swapped = ", ".join(order.get("swapped_pairs") or []) or "none"
        parts.append(f"### Regressor\n\n{order.get('message', '')} (order `{order.get('order')}`, swapped pairs: "
                     f"{swapped}, sha256 `{order.get('sha256', '')[:16]}`)")
    if result.notes:
        parts.append("### Notes\n\n" + "\n".join(f"- {n}" for n in result.notes))
    parts.append(rejects_markdown(result.rejects))
    if problems is not None:
        parts.append("### Validation\n\n" + ("valid" if not problems else
                                              markdown_table([(p,) for p in problems], ["problem"])))
    return "\n\n".join(parts)


def summary(result: BuildResult, problems: list[str] | None) -> dict:
    """What the flow run returns (JSON-able)."""
    return {**report_fields(result), "problems": problems or []}


def preview_path(corpus: Path, version_id: str) -> Path:
    """Where a version's contact sheet goes: beside the corpus repository, never inside it."""
    corpus = Path(corpus)
    return corpus.parent / f"{corpus.name}.previews" / f"{version_id}.png"


def publish_preview(flow_name: str, corpus: Path, version_id: str, n_sequences: int = 3, views: int = 2) -> Path | None:
    """Render a contact sheet of a few sequences x views of the version and publish it as an image
    artifact. A picture is a convenience: if it cannot be drawn the build still stands (a warning)."""
    try:
        from schemas.reader import CorpusReader
        from pipelines.render import corpus_overview

        path = corpus_overview(CorpusReader.open(corpus, version_id), preview_path(corpus, version_id),
                               n_sequences=n_sequences, views=views)
    except Exception as exc:  # noqa: BLE001 - never fail a committed build over a picture
        run_logger().warning("no contact sheet for %s @ %s: %s", corpus, version_id, " ".join(str(exc).split())[:200])
        return None
    if path is not None:
        publish_image(path, key=f"{flow_name}-contact-sheet",
                      description=f"{n_sequences} sequences x {views} views of {corpus} @ {version_id}: 2D in the "
                                  f"camera image, 3D front and side; left blue, right orange")
    return path


def validate_and_publish(flow_name: str, label: str, corpus: Path, result: BuildResult,
                         validate_version: bool) -> dict:
    """Validate the committed version, publish the report and corpus artifacts, fail on problems."""
    vid = result.version_id
    problems = run_validate(str(corpus), vid) if validate_version else None
    publish_markdown(report_markdown(result, problems, f"{flow_name}: {vid}"),
                     key=f"{flow_name}-report", description=f"{label} corpus version {vid}")
    publish_link(corpus, key=f"{flow_name}-corpus", text=f"corpus {corpus} @ {vid}")
    publish_preview(flow_name, corpus, vid)
    if problems:
        raise ExpectedFailure(f"{corpus}: version {vid} failed validation ({len(problems)} problems): "
                              f"{'; '.join(problems[:3])}")
    if result.n_sequences == 0 and result.rejects:
        first = result.rejects[0]
        raise ExpectedFailure(f"{corpus}: every source was rejected ({len(result.rejects)} files), e.g. "
                              f"{first.source_path}: {first.reason}")
    return summary(result, problems)


@flow(name=FLOW_NAME, log_prints=True)
@fail_with_reason
def build_amass_flow(config: BuildConfig, validate_version: bool = True) -> dict:
    """Build (or incrementally rebuild) an AMASS corpus version and validate it.

    Args:
        config: What to build and where (``pipelines.build_amass.BuildConfig``: AMASS root, body models,
            corpus, tag, rig, cameras, fps, seed, Dask scheduler or workers, regressor row order).
        validate_version: Check the committed version with schemas.validate afterwards.
    """
    logger = run_logger()
    report = run_build(config)
    logger.info("build-amass: version %s (%s): %d sequences, %d frames, %d views, %d rejects in %.1f s",
                report.version_id, "up to date" if report.up_to_date else "committed", report.n_sequences,
                report.n_frames, report.n_views, len(report.rejects), report.elapsed_s)
    if report.regressor_order:
        logger.info("build-amass: regressor: %s", report.regressor_order.get("message"))
    for r in report.rejects:
        logger.warning("rejected %s (%s): %s", r.source_path, r.kind, r.reason)
    return validate_and_publish(FLOW_NAME, "AMASS", config.corpus, report, validate_version)
