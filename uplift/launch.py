"""The training launcher: ``uplift.train.train`` in one process or ``nproc`` (torch's elastic launcher).

``launch_train(nproc, ...)`` starts ``nproc`` processes on this machine as ``torchrun --standalone``
would; each joins the process group (``uplift.distributed.setup``) and rank 0 returns the
``RunResult``. Corpus specs are pinned to snapshots first, so every rank reads the same version.
"""

from __future__ import annotations

import os
import uuid

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from schemas.errors import ConfigError, MocapCorpusError, one_line
from uplift.distributed import pick_device, teardown
from uplift.run_config import RunConfig
from uplift.train import train


@record
def _train_entry(cfg, out_dir, corpus, kwargs):
    """Runs in each launched process; rank 0 returns the RunResult."""
    try:
        result = train(cfg, out_dir, corpus, **kwargs)
    finally:
        teardown()
    return result if int(os.environ.get("RANK", "0")) == 0 else None


def launch_train(nproc: int, cfg: RunConfig, out_dir, corpus, **kwargs):
    """``uplift.train.train`` in ``nproc`` processes (1: in this process); returns rank 0's RunResult.

    Uses torch's elastic launcher with a local c10d rendezvous (as ``torchrun --standalone``);
    processes are spawned and import the project again (PYTHONPATH is inherited).
    """
    nproc = int(nproc)
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if nproc == 1:
        return train(cfg, out_dir, corpus, **kwargs)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(f"--nproc {nproc} under torchrun (WORLD_SIZE={os.environ['WORLD_SIZE']}): "
                          f"let torchrun start the processes, drop --nproc")
    if pick_device(cfg.device).type == "cuda" and nproc > torch.cuda.device_count():
        raise ConfigError(f"--nproc {nproc}: only {torch.cuda.device_count()} CUDA devices here (one process a GPU)")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    lc = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"mocap-{uuid.uuid4().hex[:8]}",
                      rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, start_method="spawn",
                      monitor_interval=0.2)
    # Spawned children re-open the corpora: pass PATH@SNAPSHOT, pinned here (a bad spec fails here, in
    # one line, and every rank reads the same snapshot even if the branch moves meanwhile).
    corpus = pin_specs(corpus)
    if kwargs.get("eval_corpus") is not None:
        kwargs["eval_corpus"] = pin_specs(kwargs["eval_corpus"])
    try:
        results = elastic_launch(lc, _train_entry)(cfg, out_dir, corpus, kwargs)
    except ChildFailedError as e:
        raise TrainingFailed(_first_failure(e)) from None
    return results[0]


class TrainingFailed(MocapCorpusError):
    """A launched training process failed; the message is its error, one line."""


def pin_specs(specs) -> list[str]:
    """Corpus specs or readers -> ``PATH@SNAPSHOT`` strings (opens each corpus once)."""
    from schemas.versions import pin_version

    return [pin_version(c) if isinstance(c, (str, os.PathLike)) else c.spec
            for c in (specs if isinstance(specs, (list, tuple)) else [specs])]


def _first_failure(e) -> str:
    rank, failure = min(e.failures.items())
    msg = failure.message
    if isinstance(msg, dict):  # error file written by @record: {"message": {"message": "Type: text", ...}}
        msg = (msg.get("message") or {}).get("message", msg) if isinstance(msg.get("message"), dict) else msg.get("message", msg)
    return f"training process rank {rank} failed: {one_line(str(msg), 400)}"
