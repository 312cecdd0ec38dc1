"""Prefect flows ``pretrain`` and ``finetune``: pinned corpus versions + config (+ checkpoint) -> a run dir.

Corpus specs are ``PATH@VERSION`` (a tag or a snapshot id; no ``@`` = the newest version). Tags are
resolved to snapshot ids before training, so the run records exactly what it read and the cache key
changes when a tag would point elsewhere. A training task is cached on its inputs (resolved versions,
config, initial checkpoint's identity, run dir) with persisted results; a cached result is only reused
while its run dir still holds the marker this flow writes after a finished run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass, replace
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from schemas.repository import pin_version
from flows.common import (fail_with_reason, file_stat_fingerprint, fingerprint, markdown_table, publish_link,
                          publish_markdown, retry_transient, run_logger)

DONE_MARKER = ".flow-done.json"


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint dir of a pretrain/finetune run (or a checkpoint dir, or a file inside one)."""
    from uplift.train import find_checkpoint as _find

    return _find(path)


def _config_identity(config: str) -> str:
    """A preset name stands for itself; a config file for its path, size and mtime."""
    p = Path(config)
    return file_stat_fingerprint(p) if p.exists() else config


def train_cache_key(context, parameters: dict) -> str:
    """Prefect ``cache_key_fn``: resolved corpus versions, config, overrides, init checkpoint, run dir."""
    return "train-" + fingerprint(parameters["corpus"], _config_identity(parameters["config"]),
                                  parameters.get("overrides") or {}, file_stat_fingerprint(parameters.get("init")),
                                  str(Path(parameters["out_dir"]).resolve()))


def _as_dict(obj) -> dict:
    if is_dataclass(obj):
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(obj).items()}
    return dict(obj) if isinstance(obj, dict) else {"result": obj}


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def apply_overrides(cfg, overrides: dict):
    """Override a RunConfig: its own fields by name, anything else goes into its ``train`` overrides."""
    if not overrides:
        return cfg
    own = {f.name for f in fields(cfg)}
    top = {k: v for k, v in overrides.items() if k in own}
    train = {k: v for k, v in overrides.items() if k not in own}
    if train:
        top["train"] = {**dict(cfg.train), **train}
    return replace(cfg, **top)


@task(name="train", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_key_fn=train_cache_key, persist_result=True, result_serializer="json")
def run_train(corpus: list[str], config: str, out_dir: str, init: str | None, overrides: dict, nproc: int = 1) -> dict:
    """Train once (in ``nproc`` data-parallel processes); returns RunResult as a JSON-able dict and marks
    the run dir as finished. ``nproc`` is not in the cache key: N processes train on the same samples."""
    from uplift.distributed import launch_train
    from uplift.train import load_run_config

    cfg = apply_overrides(load_run_config(config), overrides)
    result = _jsonable(_as_dict(launch_train(nproc, cfg, Path(out_dir), list(corpus),
                                             init=Path(init) if init else None)))
    result.setdefault("run_dir", out_dir)
    ck = result.get("checkpoint") or result.get("checkpoint_path")
    (Path(out_dir) / DONE_MARKER).write_text(json.dumps({"corpus": corpus, "config": config, "init": init,
                                                         "overrides": overrides, "checkpoint": ck}, indent=1))
    return result


@task(name="resolve-corpus-versions", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def resolve_specs(specs: list[str]) -> list[str]:
    return [pin_version(s) for s in specs]


def _train_flow(kind: str, corpus: list[str], config: str, out_dir: Path, init: Path | None,
                overrides: dict | None, nproc: int = 1) -> dict:
    logger = run_logger()
    pinned = resolve_specs(list(corpus))
    for spec, pin in zip(corpus, pinned):
        logger.info("%s: corpus %s -> %s", kind, spec, pin)
    init_ck = str(find_checkpoint(init)) if init else None
    out = Path(out_dir)
    done = (out / DONE_MARKER).is_file()
    # A persisted cache entry is reused only while its run dir still holds a finished run.
    result = run_train.with_options(refresh_cache=not done)(pinned, config, str(out), init_ck, overrides or {},
                                                           nproc)
    rows = [(k, v) for k, v in result.items() if not isinstance(v, (dict, list))]
    metrics = result.get("metrics") or final_metrics(result)
    md = [f"## {kind}: {out}", markdown_table([("corpus versions", ", ".join(pinned)), ("config", config),
                                               ("initial checkpoint", init_ck or "none")] + rows, ["", "value"])]
    if isinstance(metrics, dict) and metrics:
        md.append("### Metrics\n\n" + markdown_table([(k, _short(v)) for k, v in metrics.items()], ["metric", "value"]))
    if result.get("history"):
        md.append(history_markdown(result["history"]))
    publish_markdown("\n\n".join(md), key=f"{kind}-report", description=f"{kind} run {out}")
    publish_link(out, key=f"{kind}-run-dir", text=f"run dir {out}")
    for name in ("plot", "plot_path", "plots", "metrics_plot"):
        v = result.get(name) if name != "metrics_plot" else metrics_plot(result)
        for p in (v if isinstance(v, list) else [v] if v else []):
            publish_link(p, key=f"{kind}-plot", text=f"plot {Path(p).name}")
    ck = result.get("checkpoint") or result.get("checkpoint_path")
    if ck:
        publish_link(ck, key=f"{kind}-checkpoint", text=f"checkpoint {Path(ck).name}")
    logger.info("%s: run dir %s, checkpoint %s", kind, out, ck)
    return {**result, "corpus": pinned, "config": config, "init": init_ck}


def final_metrics(result: dict) -> dict:
    """The last epoch's row of ``uplift.train.RunResult.history`` (loss, MPJPE per input stride, ...)."""
    history = result.get("history") or []
    return {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}


def history_markdown(history: list[dict]) -> str:
    """Every epoch of a run as a table (the metrics.csv the trainer writes)."""
    keys = list(dict.fromkeys(k for h in history for k in h))
    return "### Per epoch\n\n" + markdown_table([[_short(h.get(k, "")) for k in keys] for h in history], keys)


def metrics_plot(result: dict) -> str | None:
    """The loss / MPJPE plot the trainer writes into the run dir (``metrics.png``), if there."""
    run_dir = result.get("run_dir")
    p = Path(run_dir) / "metrics.png" if run_dir else None
    return str(p) if p is not None and p.is_file() and not result.get("plot") else None


def _short(v):
    return f"{v:.4g}" if isinstance(v, float) else (json.dumps(v)[:200] if isinstance(v, (list, dict)) else v)


@flow(name="pretrain", log_prints=True)
@fail_with_reason
def pretrain_flow(corpus: list[str], out_dir: Path, config: str = "tiny", init: Path | None = None,
                  overrides: dict | None = None, nproc: int = 1) -> dict:
    """Pre-train the Uplift-Upsample Transformer on pinned corpus versions.

    Args:
        corpus: Corpus versions as PATH@VERSION (tag or snapshot id); several are mixed.
        out_dir: Run directory (config, checkpoints, metrics, plots).
        config: Preset name (tiny, h36m_351, h36m_81) or a config file.
        init: Optional checkpoint (or run dir) to start from.
        overrides: TrainConfig fields to replace, e.g. {"epochs": 1, "steps_per_epoch": 2}.
        nproc: Data-parallel training processes on the worker's machine (one per GPU; gloo on CPU).
    """
    return _train_flow("pretrain", corpus, config, out_dir, init, overrides, nproc)


@flow(name="finetune", log_prints=True)
@fail_with_reason
def finetune_flow(corpus: list[str], init: Path, out_dir: Path, config: str = "tiny",
                  overrides: dict | None = None, nproc: int = 1) -> dict:
    """Fine-tune from a pre-train run's checkpoint on pinned corpus versions (e.g. the H36M import).

    Args:
        corpus: Corpus versions as PATH@VERSION (tag or snapshot id).
        init: The pre-train checkpoint, or the pre-train run directory.
        out_dir: Run directory of this fine-tuning run.
        config: Preset name (tiny, h36m_351, h36m_81) or a config file.
        overrides: TrainConfig fields to replace, e.g. {"lr": 1e-5, "epochs": 1}.
        nproc: Data-parallel training processes on the worker's machine (one per GPU; gloo on CPU).
    """
    return _train_flow("finetune", corpus, config, out_dir, init, overrides, nproc)
