"""Prefect flow ``evaluate``: checkpoint + corpus version -> metrics table (per action, key vs all frames, each s_in)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import markdown_table, publish_image, publish_markdown, table_rows
from flows.failures import fail_with_reason, retry_transient
from flows.logs import run_logger
from flows.paths import file_stat_fingerprint, log_resolved, resolve_path, resolve_spec
from flows.training import find_checkpoint, resolve_specs
from pipelines.hashing import json_hash
from schemas.errors import one_line


def eval_cache_key(context, parameters: dict) -> str:
    """Same checkpoint file (path, size, mtime) on the same pinned corpus version: same table."""
    return "evaluate-" + json_hash([file_stat_fingerprint(parameters["checkpoint"]), parameters["corpus"]], 24)


@task(name="evaluate", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_key_fn=eval_cache_key, persist_result=True, result_serializer="json")
def run_evaluate(checkpoint: str, corpus: str) -> dict:
    from uplift.evaluate import evaluate

    header, rows = table_rows(evaluate(Path(checkpoint), corpus))
    return {"header": header, "rows": rows}


@task(name="render-median-and-worst", retries=0, cache_policy=NO_CACHE)
def render_examples(checkpoint: str, corpus: str) -> dict:
    """Prediction over ground truth for the median and the worst window (PNG files beside the checkpoint)."""
    from flows.rendering import render_median_and_worst

    out_dir = Path(checkpoint).resolve().parent / "renders" / json_hash([corpus], 12)
    return render_median_and_worst(checkpoint, corpus, out_dir)


def publish_examples(ck: str, pinned: str) -> dict:
    """Render and publish the median / worst windows; a picture that cannot be drawn is a warning only."""
    try:
        shown = render_examples(ck, pinned)
    except Exception as exc:  # noqa: BLE001 - the metrics table is the result; pictures are a bonus
        run_logger().warning("no median/worst renders: %s", one_line(exc, 200))
        return {}
    for name, info in shown.items():
        publish_image(info["path"], key=f"evaluate-{name}-window",
                      description=f"{name} window ({info['mpjpe_mm']:.1f} mm, s_in {info['s_in']}): {info['key']} "
                                  f"view {info['view_id']} frames {info['frames'][0]}-{info['frames'][1] - 1}; "
                                  f"dashed = prediction")
    return shown


@flow(name="evaluate", log_prints=True)
@fail_with_reason
def evaluate_flow(checkpoint: Path, corpus: str) -> dict:
    """Evaluate a checkpoint on a pinned corpus version: MPJPE / P-MPJPE per action, key frames vs all, each s_in.

    Args:
        checkpoint: Checkpoint file, or a run directory holding one.
        corpus: Corpus version as PATH@VERSION (tag or snapshot id).

    Relative paths resolve against the directory the deployments are served from.
    """
    logger = run_logger()
    given = (checkpoint, corpus)
    checkpoint, corpus = resolve_path(checkpoint), resolve_spec(corpus)
    log_resolved(zip(given, (checkpoint, corpus)))
    ck = str(find_checkpoint(checkpoint))
    pinned = resolve_specs([corpus])[0]
    table = run_evaluate(ck, pinned)
    md = markdown_table(table["rows"], table["header"])
    publish_markdown(f"## evaluate: {Path(ck).name} on {pinned}\n\n{md}", key="evaluate-metrics",
                     description=f"metrics of {ck} on {pinned}")
    logger.info("evaluate %s on %s:\n%s", ck, pinned, md)
    shown = publish_examples(ck, pinned)
    return {"checkpoint": ck, "corpus": pinned, **table,
            "renders": {k: v["path"] for k, v in shown.items()}}
