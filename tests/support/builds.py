"""Synthetic build inputs and the build command the trials run (and kill).

``make_inputs`` writes synthetic body models and an AMASS-like tree; ``build_cmd`` is the CLI build a
trial starts in its own process group; ``kill_group`` ends that group (the build and its Dask workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from pipelines.build_amass import BuildConfig
from pipelines.synthetic.body_model import write_body_model_tree
from pipelines.synthetic.motions import write_amass_tree

CLI = (sys.executable, "-m", "flows.cli")  # the command-line entry point, as a user runs it


def make_inputs(root: Path, n_sequences: int = 8, seed: int = 5, duration_s=(2.0, 6.0), broken: bool = False) -> Path:
    """Synthetic body models under ``root/body_models`` and an AMASS-like tree under ``root/amass``
    (SMPL+H only); with ``broken``, one truncated file ``Broken/s1/cut_poses.npz`` among them."""
    write_body_model_tree(root / "body_models", seed=0)
    files = write_amass_tree(root / "amass", n_sequences=n_sequences, seed=seed, duration_s=duration_s,
                             smplx_fraction=0.0)
    if broken:
        bad = root / "amass" / "Broken" / "s1" / "cut_poses.npz"
        bad.parent.mkdir(parents=True)
        bad.write_bytes(files[0].read_bytes()[:200])  # a truncated zip
    return root


def build_config(root: Path, corpus: Path, **kw) -> BuildConfig:
    """A one-worker build (unless ``kw`` says otherwise) of the tree ``make_inputs`` wrote into ``corpus``;
    ``kw``: other BuildConfig fields."""
    return BuildConfig(amass_root=root / "amass", body_models=root / "body_models", corpus=corpus,
                       **{"n_workers": 1, **kw})


def build_cmd(root: Path, corpus: Path, *extra: str) -> list[str]:
    """The CLI build of that tree, one worker; ``extra``: more CLI options."""
    return [*CLI, "build-amass", str(root / "amass"), "--body-models", str(root / "body_models"),
            "--corpus", str(corpus), "--workers", "1", *extra]


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads (started with ``start_new_session=True``) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
