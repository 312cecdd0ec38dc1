"""The prepared GPU benchmark (issue 28) runs every path on the CPU (``--dry-run-cpu``), and without
CUDA and without the flag it says it skipped instead of failing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = ["-m", "benchmarks.bench_train_gpu"]
TINY = ["--steps", "1", "--loss-steps", "1", "--loader-steps", "1", "--workers", "1", "--frames", "5000",
        "--batch", "4", "--compile-mode", ""]


def _last_json(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, *SCRIPT, *argv], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_dry_run_on_the_cpu_runs_every_path():
    res = _last_json(["--dry-run-cpu", *TINY])
    errors = {k: v for k, v in res.items() if k.startswith("error_")}
    assert not errors, errors  # each variant reports its failure instead of ending the run
    for key in ("wps_fp32_eager", "wps_bf16_eager", "loss_rel_diff_bf16_eager", "wps_loader_fed_w0",
                "wps_loader_fed_w1", "pps_gpu_fp32_351", "pps_gpu_bf16_81"):
        assert res.get(key, 0) > 0, (key, res)
    assert res["device"] == "cpu (dry run)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would measure it")
def test_without_cuda_it_says_it_skipped():
    assert _last_json(TINY) == {"skipped": "no CUDA device"}
