"""What both build flows publish about a committed corpus version: the result's fields (the flow run's
return value), a markdown report (summary, regressor rows, notes, rejects, validation), a link to
the corpus and a contact sheet; and the checks that fail a run (validation problems, every source
rejected)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import markdown_table, publish_image, publish_link, publish_markdown, rejects_markdown
from flows.failures import ExpectedFailure, retry_transient
from flows.logs import run_logger
from pipelines.build_result import BuildResult
from schemas.errors import one_line


@task(name="validate-corpus", retries=1, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def run_validate(corpus: str, version: str, keys: list[str] | None = None) -> list[str]:
    """Validate the version: manifests, layout and cameras whole; array values of the sequences
    ``keys`` only when given (what an incremental build recomputed: the rest was validated when
    it was first written). ``mocap-corpus validate`` checks everything."""
    from schemas.validate import validate_corpus

    return list(validate_corpus(corpus, version) if keys is None else validate_corpus(corpus, version, keys=keys))


def report_fields(result: BuildResult) -> dict:
    """The fields the flows report (JSON-able), the same for every build."""
    return {"corpus": result.corpus, "version_id": result.version_id, "tag": result.tag,
            "up_to_date": result.up_to_date, "n_sequences": result.n_sequences, "n_frames": result.n_frames,
            "n_views": result.n_views, "n_rejects": len(result.rejects),
            "in_view_fraction": result.in_view_fraction, "out_of_view_fraction": result.out_of_view_fraction,
            "n_flagged": result.n_flagged, "elapsed_s": result.elapsed_s,
            "rejects": [{"source_path": r.source_path, "kind": r.kind, "reason": r.reason} for r in result.rejects],
            "regressor_order": result.regressor_order, "smplx_regressor_order": result.smplx_regressor_order,
            "body_models_used": dict(result.body_models_used), "notes": list(result.notes)}


def report_markdown(result: BuildResult, problems: list[str] | None, title: str) -> str:
    """The build artifact: summary table (version, counts, in-view fraction), rejects with reasons, validation."""
    parts = [f"## {title}", markdown_table(result.summary_rows(), ["", "value"])]
    order = result.regressor_order
    if order:
        swapped = ", ".join(order.get("swapped_pairs") or []) or "none"
        parts.append(f"### Regressor\n\n{order.get('message', '')} (order `{order.get('order')}`, swapped pairs: "
                     f"{swapped}, sha256 `{order.get('sha256', '')[:16]}`)")
    smplx = result.smplx_regressor_order
    if smplx:
        parts.append(f"### Regressor for SMPL-X sequences\n\n{smplx.get('message', '')} (order `{smplx.get('order')}`, "
                     f"regressor sha256 `{smplx.get('sha256', '')[:16]}`, deformation transfer sha256 "
                     f"`{smplx.get('deftrafo_sha256', '')[:16] or 'none (a ready 17 x 10475 regressor)'}`)")
    if result.body_models_used:
        parts.append("### Body models\n\n" + markdown_table(
            [tuple(k.split("/", 1)) + (str(v),) for k, v in result.body_models_used.items()],
            ["family", "gender", "sequences"]))
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
        run_logger().warning("no contact sheet for %s @ %s: %s", corpus, version_id, one_line(exc, 200))
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
    # an up-to-date build wrote nothing new: its version was validated when it was committed
    keys = [] if result.up_to_date else result.recomputed_keys
    problems = run_validate(str(corpus), vid, keys) if validate_version else None
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
