"""Prefect flow ``build-amass``: AMASS files -> one committed, validated corpus version.

One coarse Prefect task runs the whole build; the build fans sequences out on Dask itself (a
LocalCluster, or ``scheduler``), so thousands of sequences cost one task run, not thousands. The
build is its own cache: it recomputes only sources whose (sha256, config hash) changed and commits
nothing when nothing did, which is sharper than a Prefect input cache over paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import (ExpectedFailure, Progress, fail_with_reason, markdown_table, publish_image,
                          publish_link, publish_markdown, rejects_markdown, retry_transient, run_logger)
from schemas.storage import CorpusLocation

FLOW_NAME = "build-amass"


@task(name="build-amass-corpus", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def run_build(cfg: dict):
    """Run ``pipelines.build.build_amass`` once; returns its BuildReport."""
    from pipelines.build import BuildConfig, build_amass

    return build_amass(BuildConfig(**cfg), progress=Progress("build-amass sources"))


@task(name="validate-corpus", retries=1, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def run_validate(corpus: str, version: str) -> list[str]:
    from schemas.validate import validate_corpus

    return list(validate_corpus(corpus, version))


def report_fields(report) -> dict:
    """The fields the flows report, from an AMASS BuildReport or an H36M build summary."""
    rejects = list(getattr(report, "rejects", None) or [])
    return {"corpus": str(getattr(report, "corpus", "")),
            "version_id": str(getattr(report, "version_id", None) or getattr(report, "snapshot", "")),
            "tag": getattr(report, "tag", None), "up_to_date": bool(getattr(report, "up_to_date", False)),
            "n_sequences": int(getattr(report, "n_sequences", 0)), "n_frames": getattr(report, "n_frames", None),
            "n_views": int(getattr(report, "n_views", 0)), "n_rejects": len(rejects),
            "in_view_fraction": getattr(report, "in_view_fraction", None),
            "elapsed_s": getattr(report, "elapsed_s", None),
            "rejects": [{"source_path": r.source_path, "kind": r.kind, "reason": r.reason} for r in rejects],
            "regressor_order": getattr(report, "regressor_order", None), "notes": list(getattr(report, "notes", None) or [])}


def report_markdown(report, problems: list[str] | None, title: str) -> str:
    """The build artifact: summary table (version, counts, in-view fraction), rejects with reasons, validation."""
    if hasattr(report, "summary_rows"):
        rows = report.summary_rows()
    else:
        rows = [(k, v) for k, v in report_fields(report).items()
                if k not in ("rejects", "notes", "regressor_order") and v is not None]
    parts = [f"## {title}", markdown_table(rows, ["", "value"])]
    order = getattr(report, "regressor_order", None)
    if order:
        swapped = ", ".join(order.get("swapped_pairs") or []) or "none"
        parts.append(f"### Regressor\n\n{order.get('message', '')} (order `{order.get('order')}`, swapped pairs: "
                     f"{swapped}, sha256 `{order.get('sha256', '')[:16]}`)")
    notes = list(getattr(report, "notes", None) or [])
    if notes:
        parts.append("### Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    parts.append(rejects_markdown(getattr(report, "rejects", [])))
    if problems is not None:
        parts.append("### Validation\n\n" + ("valid" if not problems else
                                              markdown_table([(p,) for p in problems], ["problem"])))
    return "\n\n".join(parts)


def summary(report, problems: list[str] | None) -> dict:
    """What the flow run returns (JSON-able)."""
    return {**report_fields(report), "problems": problems or []}


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


def validate_and_publish(flow_name: str, label: str, corpus: Path, report, validate_version: bool) -> dict:
    """Validate the committed version, publish the report and corpus artifacts, fail on problems."""
    vid = report_fields(report)["version_id"]
    problems = run_validate(str(corpus), vid) if validate_version else None
    publish_markdown(report_markdown(report, problems, f"{flow_name}: {vid}"),
                     key=f"{flow_name}-report", description=f"{label} corpus version {vid}")
    publish_link(corpus, key=f"{flow_name}-corpus", text=f"corpus {corpus} @ {vid}")
    publish_preview(flow_name, corpus, vid)
    if problems:
        raise ExpectedFailure(f"{corpus}: version {vid} failed validation ({len(problems)} problems): "
                              f"{'; '.join(problems[:3])}")
    f = report_fields(report)
    if f["n_sequences"] == 0 and f["n_rejects"]:
        first = f["rejects"][0]
        raise ExpectedFailure(f"{corpus}: every source was rejected ({f['n_rejects']} files), e.g. "
                              f"{first['source_path']}: {first['reason']}")
    return summary(report, problems)


@flow(name=FLOW_NAME, log_prints=True)
@fail_with_reason
def build_amass_flow(
    amass_root: Path,
    body_models: Path,
    corpus: CorpusLocation,
    regressor: Path | None = None,
    tag: str | None = None,
    rig: Literal["h36m", "3dhp"] = "h36m",
    calibration: Path | None = None,
    cameras_per_sequence: int = 4,
    fps: float = 50.0,
    seed: int = 0,
    val_fraction: float = 0.0,
    scheduler: str | None = None,
    n_workers: int = 2,
    validate_version: bool = True,
    regressor_order: Literal["auto", "as-is"] = "auto",
) -> dict:
    """Build (or incrementally rebuild) an AMASS corpus version and validate it.

    Args:
        amass_root: AMASS root folder (<root>/<Dataset>/<Subject>/*.npz).
        body_models: Folder with smplh/{gender}/model.npz (and dmpls/), usually also the regressor.
        corpus: Corpus repository: a local folder or s3://bucket/prefix (created on first build).
        regressor: (17, 6890) joint regressor .npy; default BODY_MODELS/J_regressor_h36m.npy.
        tag: Tag for the committed version, e.g. amass-h36m-v1.
        rig: Camera rig used to place virtual cameras: h36m or 3dhp.
        calibration: MPI-INF-3DHP camera.calibration file whose cameras replace the shipped 3DHP figures.
        cameras_per_sequence: Virtual cameras per sequence.
        fps: Target frame rate in Hz.
        seed: Seed for camera placement.
        val_fraction: Share of sequences put into the val split (by key hash).
        scheduler: Dask scheduler address (tcp://host:8786); empty = a LocalCluster per build.
        n_workers: LocalCluster worker processes when no scheduler is given.
        validate_version: Check the committed version with schemas.validate afterwards.
        regressor_order: auto = check the regressor's left/right rows on the template and swap mismatched
            pairs (reported in the artifact); as-is = trust the file's row order.
    """
    logger = run_logger()
    cfg = {"amass_root": str(amass_root), "body_models": str(body_models), "corpus": str(corpus),
           "regressor": str(regressor) if regressor else None, "tag": tag or None, "rig": rig,
           "calibration": str(calibration) if calibration else None,
           "cameras_per_sequence": cameras_per_sequence, "fps": fps, "seed": seed, "val_fraction": val_fraction,
           "scheduler": scheduler or None, "n_workers": n_workers, "regressor_order": regressor_order}
    report = run_build(cfg)
    logger.info("build-amass: version %s (%s): %d sequences, %d frames, %d views, %d rejects in %.1f s",
                report.version_id, "up to date" if report.up_to_date else "committed", report.n_sequences,
                report.n_frames, report.n_views, len(report.rejects), report.elapsed_s)
    order = getattr(report, "regressor_order", None)
    if order:
        logger.info("build-amass: regressor: %s", order.get("message"))
    for r in report.rejects:
        logger.warning("rejected %s (%s): %s", r.source_path, r.kind, r.reason)
    return validate_and_publish(FLOW_NAME, "AMASS", corpus, report, validate_version)
