"""Killed training: SIGKILL a run inside its n-th ``save_checkpoint``, resume it from the CLI, and compare
the final weights with an uninterrupted run.

Equal weights alone cannot tell a resume from a restart (training is deterministic), so a trial also
reads what the restarted training itself did (``train_start:EPOCH:BATCH``, ``train_steps:N`` in its
trace, recorded from outside by ``tests.support.faults``): the position it loaded must be the last
complete checkpoint and the optimizer steps it took exactly the rest of the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.support import REPO
from tests.support.builds import kill_group
from tests.support.faults import FAULT_ENV, TRACE_ENV, trial_cli
from uplift.checkpoint import find_checkpoint


def train_cmd(config: Path, corpus: str, out_dir: Path) -> list[str]:
    """The CLI training run, with the checkpoint points and the training trace installed from outside."""
    return [*trial_cli("training"), "train", "--config", str(config), "--corpus", corpus, "--out", str(out_dir)]


def write_train_config(path: Path) -> Path:
    """A tiny config that checkpoints every 2 steps inside an epoch."""
    path.write_text(json.dumps({"preset": "tiny", "train": {"batch_size": 16, "epochs": 3, "lr": 1e-3},
                                "steps_per_epoch": 8, "checkpoint_every": 2, "block_frames": 64,
                                "buffer_blocks": 2, "eval_every": 0, "seed": 3}))
    return path


_TRAIN_ENV = {"OMP_NUM_THREADS": "1"}  # same thread count in every run: bit-identical CPU results


def run_training(config: Path, corpus: str, out_dir: Path, trace: Path | None = None) -> None:
    """Train (or resume an interrupted run in ``out_dir``) to the end, as a user would from the CLI;
    ``trace``: where training's trace goes (what it loaded, how many steps it took)."""
    env = {**os.environ, **_TRAIN_ENV}
    env.pop(FAULT_ENV, None)
    if trace is not None:
        trace.unlink(missing_ok=True)
        env[TRACE_ENV] = str(trace)
    subprocess.run(train_cmd(config, corpus, out_dir), check=True, cwd=REPO, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def total_steps(config: Path) -> int:
    """Optimizer steps of a whole run of ``config`` (epochs x steps_per_epoch)."""
    cfg = json.loads(config.read_text())
    return int(cfg["train"]["epochs"]) * int(cfg["steps_per_epoch"])


@dataclass
class TrainingTrace:
    """What one ``train`` call reported: the position it started from (the checkpoint it loaded, or
    (0, 0) for a fresh start) and the optimizer steps it performed."""

    started_at: tuple | None
    steps: int | None


def read_training_trace(trace: Path) -> TrainingTrace:
    events = trace.read_text().split() if trace.exists() else []
    starts = [e.split(":")[1:] for e in events if e.startswith("train_start:")]
    steps = [e.split(":")[1] for e in events if e.startswith("train_steps:")]
    return TrainingTrace(tuple(int(x) for x in starts[-1]) if starts else None,
                         int(steps[-1]) if steps else None)


def final_weights(run_dir: Path) -> dict:
    return load_file(str(run_dir / "checkpoints" / "final" / "model.safetensors"))


# Kill points inside ``save_checkpoint`` (the n-th save): while the new files are written, after they
# are written, with the old one aside and the new one not yet in, after it moved in.
CHECKPOINT_KILLS = ["ckpt_aside:2", "ckpt_files:3", "ckpt_written:4", "ckpt_aside:6", "ckpt_in:5", "ckpt_aside:9"]


@dataclass
class CheckpointKill:
    fault: str
    killed: bool  # verified: died by SIGKILL at the named point
    last_complete: tuple | None  # (epoch, batch) of the last checkpoint that finished moving in
    resumed_from: tuple | None  # (epoch, batch) training itself reported loading when restarted
    steps_after: int | None  # optimizer steps the restarted training performed
    expected_steps: int | None  # what a resume from last_complete must perform (the rest of the run)
    equal: bool  # final weights equal to the uninterrupted run
    found: tuple | None = None  # (epoch, batch) of the checkpoint find_checkpoint names (diagnostics only)

    @property
    def resumed(self) -> bool:
        """Training loaded the last complete checkpoint and performed exactly the remaining steps:
        a restart from zero (or from an older checkpoint) fails this even when its weights end equal."""
        return (self.last_complete is not None and self.resumed_from == self.last_complete
                and self.steps_after is not None and self.steps_after == self.expected_steps)

    @property
    def ok(self) -> bool:
        return self.killed and self.resumed and self.equal


def _ckpt_meta(run_dir: Path) -> tuple | None:
    try:
        meta = json.loads((find_checkpoint(run_dir / "checkpoints" / "last") / "meta.json").read_text())
    except Exception:  # noqa: BLE001 - no checkpoint at all
        return None
    return int(meta["epoch"]), int(meta["batch"])


def checkpoint_kill_trial(config: Path, corpus: str, out_dir: Path, fault: str, straight: dict) -> CheckpointKill:
    """SIGKILL training inside its n-th ``save_checkpoint``, resume it to the end, compare with ``straight``."""
    trace = out_dir.with_name(out_dir.name + ".trace")
    trace.unlink(missing_ok=True)
    env = {**os.environ, **_TRAIN_ENV, FAULT_ENV: fault, TRACE_ENV: str(trace)}
    proc = subprocess.Popen(train_cmd(config, corpus, out_dir), start_new_session=True, cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(timeout=600)
    kill_group(proc)
    events = trace.read_text().split() if trace.exists() else []
    killed = proc.returncode == -signal.SIGKILL and events[-1:] == [f"kill:{fault.partition(':')[0]}"]
    done = [e.split(":") for e in events if e.startswith("ckpt_complete:last:")]
    last_complete = (int(done[-1][2]), int(done[-1][3])) if done else None
    found = _ckpt_meta(out_dir)
    resume_trace = out_dir.with_name(out_dir.name + ".resume.trace")
    run_training(config, corpus, out_dir, trace=resume_trace)
    loaded = read_training_trace(resume_trace)
    b = final_weights(out_dir)
    equal = straight.keys() == b.keys() and all(torch.equal(straight[k], b[k]) for k in straight)
    spe = int(json.loads(config.read_text())["steps_per_epoch"])
    expected = None if last_complete is None else total_steps(config) - (last_complete[0] * spe + last_complete[1])
    return CheckpointKill(fault, killed, last_complete, loaded.started_at, loaded.steps, expected, equal, found)
