"""Prefect flows ``pretrain`` and ``finetune``: pinned corpus versions + config (+ checkpoint) -> a run dir.

Corpus specs are ``PATH@VERSION`` (a tag or a snapshot id; no ``@`` = the newest version). Tags are
resolved to snapshot ids before training, so the run records exactly what it read and the cache key
changes when a tag would point elsewhere. A training task is cached on its inputs (resolved versions,
config, initial checkpoint's identity, run dir) with persisted results; a cached result is only reused
while its run dir still holds the marker this flow writes after a finished run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import markdown_table, publish_image, publish_link, publish_markdown
from flows.failures import fail_with_reason, retry_transient
from flows.logs import run_logger
from flows.paths import file_stat_fingerprint, log_resolved, resolve_path, resolve_spec
from pipelines.hashing import json_hash
from schemas.versions import pin_version

if TYPE_CHECKING:
    from uplift.train import RunResult

DONE_MARKER = ".flow-done.json"


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint dir of a pretrain/finetune run (or a checkpoint dir, or a file inside one)."""
    from uplift.checkpoint import find_checkpoint as _find

    return _find(path)


def _config_identity(config: str) -> str:
    """A preset name stands for itself; a config file for its path, size and mtime."""
    p = Path(config)
    return file_stat_fingerprint(p) if p.exists() else config


def train_cache_key(context, parameters: dict) -> str:
    """Prefect ``cache_key_fn``: resolved corpus versions, config, overrides, init checkpoint, run dir."""
    return "train-" + json_hash([parameters["corpus"], _config_identity(parameters["config"]),
                                 parameters.get("overrides") or {}, file_stat_fingerprint(parameters.get("init")),
                                 str(Path(parameters["out_dir"]).resolve())], 24)


def result_to_json(result: "RunResult") -> dict:
    """``uplift.train.RunResult`` as the JSON the training task persists (paths become strings)."""
    return json.loads(json.dumps(asdict(result), default=str))


def result_from_json(data: dict) -> "RunResult":
    """The persisted JSON back as a ``RunResult`` (a field the trainer renamed fails here, loudly)."""
    from uplift.train import RunResult

    return RunResult(**{**data, "run_dir": Path(data["run_dir"]), "checkpoint": Path(data["checkpoint"])})


class TrainProgress:
    """``uplift.train.train``'s progress callback in a flow: the run's optimizer steps over all epochs as
    one ``Progress`` (log lines with steps/s, a progress artifact that ends at 100 %), and each
    evaluation pass (windows/s) as another."""

    def __init__(self, name: str):
        from flows.progress import Progress

        self.steps = Progress(f"training {name}: optimizer steps")
        self.evaluation = Progress(f"evaluation {name}: windows (each pass)")
        self._pass = None
        self._last_call = time.perf_counter()

    def __call__(self, done: int, total: int, info: dict) -> None:
        epoch, epochs = info["epoch"], info["epochs"]
        began, self._last_call = self._last_call, time.perf_counter()
        if info.get("phase") == "evaluate":
            key = (epoch, info.get("s_in"))
            if key != self._pass:  # a new pass began when the previous step or pass ended
                self._pass = key
                self.evaluation.restart(f"evaluation after epoch {epoch}/{epochs}, s_in {info.get('s_in')}: windows",
                                        since=began)
            self.evaluation(done, total)
            return
        # the steps of earlier epochs count in full (an epoch ends early only on a step budget)
        self.steps((epoch - 1) * total + done, epochs * total, {"epoch": f"{epoch}/{epochs}", "loss": info["loss"]})


@task(name="train", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_key_fn=train_cache_key, persist_result=True, result_serializer="json")
def run_train(corpus: list[str], config: str, out_dir: str, init: str | None, overrides: dict, nproc: int = 1) -> dict:
    """Train once (in ``nproc`` data-parallel processes); returns the RunResult as JSON (``result_to_json``)
    and marks the run dir as finished. ``nproc`` is not in the cache key: N processes train on the same samples."""
    from uplift.launch import launch_train
    from uplift.run_config import load_run_config

    cfg = load_run_config(config, overrides)  # loaded once: the launcher and the trainer take this RunConfig
    extra = {"progress": TrainProgress(Path(out_dir).name)} if nproc == 1 else {}  # a closure stays in-process
    result = launch_train(nproc, cfg, Path(out_dir), list(corpus), init=Path(init) if init else None, **extra)
    (Path(out_dir) / DONE_MARKER).write_text(json.dumps({"corpus": corpus, "config": config, "init": init,
                                                         "overrides": overrides,
                                                         "checkpoint": str(result.checkpoint)}, indent=1))
    return result_to_json(result)


@task(name="resolve-corpus-versions", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def resolve_specs(specs: list[str]) -> list[str]:
    return [pin_version(s) for s in specs]


def _train_flow(kind: str, corpus: list[str], config: str, out_dir: Path, init: Path | None,
                overrides: dict | None, nproc: int = 1) -> dict:
    logger = run_logger()
    corpus, config, out_dir, init = resolve_train_paths(corpus, config, out_dir, init)
    pinned = resolve_specs(list(corpus))
    for spec, pin in zip(corpus, pinned):
        logger.info("%s: corpus %s -> %s", kind, spec, pin)
    init_ck = str(find_checkpoint(init)) if init else None
    out = Path(out_dir)
    done = (out / DONE_MARKER).is_file()
    # A persisted cache entry is reused only while its run dir still holds a finished run.
    data = run_train.with_options(refresh_cache=not done)(pinned, config, str(out), init_ck, overrides or {}, nproc)
    result = result_from_json(data)
    publish_markdown(report_markdown(kind, result, pinned, config, init_ck), key=f"{kind}-report",
                     description=f"{kind} run {out}")
    publish_link(out, key=f"{kind}-run-dir", text=f"run dir {out}")
    plot = result.run_dir / "metrics.png"  # the loss / MPJPE plot the trainer writes
    if plot.is_file():
        publish_image(plot, key=f"{kind}-plot",
                      description=f"{kind} {out.name}: training loss and evaluation MPJPE per epoch")
    publish_link(result.checkpoint, key=f"{kind}-checkpoint", text=f"checkpoint {result.checkpoint.name}")
    logger.info("%s: run dir %s, checkpoint %s", kind, out, result.checkpoint)
    return {**data, "corpus": pinned, "config": config, "init": init_ck}


def resolve_train_paths(corpus: list[str], config: str, out_dir, init):
    """The training flows' path parameters made absolute (``flows.paths.resolve_path``): corpus specs,
    a config file (a preset name stays a name), the run dir and the initial checkpoint."""
    from uplift.config import PRESETS

    new_corpus = [resolve_spec(c) for c in corpus]
    new_config = config if config in PRESETS else str(resolve_path(config))
    new_out, new_init = resolve_path(out_dir), resolve_path(init)
    log_resolved([*zip(corpus, new_corpus), (config, new_config), (out_dir, new_out), (init, new_init)])
    return new_corpus, new_config, new_out, new_init


def report_markdown(kind: str, result: "RunResult", pinned: list[str], config: str, init_ck: str | None) -> str:
    """The run's report artifact: inputs and outputs, the last epoch's metrics, every epoch."""
    rows = [("corpus versions", ", ".join(pinned)), ("config", config), ("initial checkpoint", init_ck or "none"),
            ("run_dir", result.run_dir), ("checkpoint", result.checkpoint)]
    md = [f"## {kind}: {result.run_dir}", markdown_table(rows, ["", "value"])]
    metrics = final_metrics(result.history)
    if metrics:
        md.append("### Metrics\n\n" + markdown_table([(k, _short(v)) for k, v in metrics.items()], ["metric", "value"]))
    if result.history:
        md.append(history_markdown(result.history))
    return "\n\n".join(md)


def final_metrics(history: list[dict]) -> dict:
    """The last epoch's row of ``RunResult.history`` without its epoch number (loss, MPJPE per input stride, ...)."""
    return {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}


def history_markdown(history: list[dict]) -> str:
    """Every epoch of a run as a table (the metrics.csv the trainer writes)."""
    keys = list(dict.fromkeys(k for h in history for k in h))
    return "### Per epoch\n\n" + markdown_table([[_short(h.get(k, "")) for k in keys] for h in history], keys)


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
