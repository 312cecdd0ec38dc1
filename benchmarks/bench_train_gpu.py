"""GPU training throughput of the N=351 Uplift-Upsample Transformer (one CUDA device, < 5 minutes).

Measured in one run, side by side:

* compute-bound train step (random inputs already on the GPU, per-window s_in draw as in training,
  batch 512 = 256 windows + flipped copies): windows/s for fp32 eager, bf16 eager, bf16 with
  ``torch.compile`` (``--compile-mode``), and bf16 compiled with the static-shape key-frame gather;
* loader-fed: the same bf16 eager step fed by ``WindowStream`` through ``make_loader`` from a small
  synthetic corpus, with 0 and ``--workers`` persistent DataLoader workers;
* agreement: mean loss over the first ``--loss-steps`` steps on identical batches, each variant vs fp32
  eager (relative difference; noise is ~1e-3 at bf16);
* ``bench_model.py``'s CUDA part: inference poses/s at batch 1024, fp32 and bf16 (bf16 at batch 1024
  used to fail with "CUDA error: invalid argument" in the spatial attention before it was chunked).

Without CUDA it prints a skip line and ``{"skipped": "no CUDA device"}``. Last line: one JSON object.
Usage: ``python -m benchmarks.bench_train_gpu [--steps 60] [--workers 4] [--compile-mode default]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from uplift.config import AMASS_351
from uplift.keyframes import draw_keyframes, keyframe_mask
from uplift.losses import uplift_loss
from uplift.model import build_model, max_keyframes
from uplift.optim import make_optimizer

CFG = AMASS_351
BATCH = CFG.train.batch_size
DEVICE = "cuda"


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def random_batches(n: int, device, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """``n`` training-like batches on ``device``: 2D input, key frames (per-window s_in), 3D target."""
    m = CFG.model
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        s_in, shift = draw_keyframes(rng, BATCH, CFG.train.s_in, m.s_out)
        kf = torch.as_tensor(keyframe_mask(m.n_out, m.s_out, s_in, shift))
        x = torch.randn(BATCH, m.n_out, m.num_joints, 2, generator=g)
        y = 0.3 * torch.randn(BATCH, m.n_out, m.num_joints, 3, generator=g)
        out.append(tuple(t.to(device) for t in (x, kf, y, torch.ones(BATCH, m.n_out, dtype=torch.bool))))
    return out


def make_step(bf16: bool, compile_mode: str | None, static: bool, device):
    """A fresh model + optimizer and its train-step function ``step(x, kf, y, valid) -> loss tensor``."""
    model = build_model(CFG, seed=0).to(device)
    if static:
        model.static_keyframes = max_keyframes(CFG.model.n_out, CFG.model.s_out, min(CFG.train.s_in))
    bundle = make_optimizer(model, CFG)
    fwd = torch.compile(model, mode=compile_mode) if compile_mode else model

    def step(x, kf, y, valid):
        with torch.autocast(device_type=DEVICE, dtype=torch.bfloat16, enabled=bf16):
            out = fwd(x, kf)
        terms = uplift_loss(out.seq, out.center, y, valid)
        bundle.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        bundle.optimizer.step()
        return terms.total.detach()

    return step


def timed(step, batches, steps: int, warmup: int = 5) -> tuple[float, list[float]]:
    """Windows/s over ``steps`` steps (after ``warmup``) and the losses of every step."""
    losses = []
    for i in range(warmup):
        losses.append(step(*batches[i % len(batches)]))
    _sync()
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        losses.append(step(*batches[i % len(batches)]))
    _sync()
    dt = time.perf_counter() - t0
    return steps * BATCH / dt, [float(v) for v in losses]


def loader_fed(workers: int, steps: int, device, corpus: str) -> float:
    """bf16 eager train steps fed by the streaming loader (host->device copies included)."""
    from uplift.loader import close_loader, make_loader
    from uplift.stream import StreamConfig, WindowStream

    m = CFG.model
    ds = WindowStream(corpus, StreamConfig(seq_len=m.seq_len, s_out=m.s_out, s_in=CFG.train.s_in,
                                           batch_size=BATCH))
    loader = make_loader(ds, workers, pin_memory=DEVICE == "cuda", persistent=True, prefetch_factor=4)
    step = make_step(True, None, False, device)
    n, t0 = 0, None
    try:
        for b in loader:
            args = [b[k].to(device, non_blocking=True) for k in ("keypoints_2d", "keyframe", "joints_3d", "valid")]
            step(*args)
            n += 1
            if n == 5:  # warm-up (worker start, cuBLAS) excluded
                _sync()
                t0 = time.perf_counter()
            if n == 5 + steps:
                break
        _sync()
    finally:
        close_loader(loader)
    return (n - 5) * BATCH / (time.perf_counter() - t0)


def small_corpus(path: Path, frames: int) -> str:
    from benchmarks.bench_loader import build_corpus

    return build_corpus(path, frames)


def main() -> None:
    global BATCH, DEVICE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="timed steps per compute-bound variant")
    ap.add_argument("--loss-steps", type=int, default=100, help="steps compared against fp32 eager")
    ap.add_argument("--loader-steps", type=int, default=60)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--frames", type=int, default=200_000, help="synthetic corpus for the loader-fed runs")
    ap.add_argument("--compile-mode", default="default", help='torch.compile mode, e.g. "max-autotune"; "" skips')
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--dry-run-cpu", action="store_true", help="run every path on the CPU (checks the script)")
    a = ap.parse_args()
    BATCH = a.batch
    if a.dry_run_cpu:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("SKIP bench_train_gpu: no CUDA device on this machine (run it on a GPU machine)")
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    dev = torch.device(DEVICE)
    torch.backends.cuda.matmul.allow_tf32 = False
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run)"
    print(f"torch {torch.__version__}, {name}, N={CFG.model.seq_len}, batch {BATCH}", flush=True)
    res: dict = {"device": name, "batch": BATCH}
    batches = random_batches(8, dev)
    loss_batches = batches
    variants = {"fp32_eager": (False, None, False), "bf16_eager": (True, None, False)}
    if a.compile_mode:
        variants["bf16_compiled"] = (True, a.compile_mode, False)
        variants["bf16_compiled_static"] = (True, a.compile_mode, True)
    losses = {}
    for key, (bf16, mode, static) in variants.items():
        try:
            t = time.perf_counter()
            step = make_step(bf16, mode, static, dev)
            # agreement first (a fresh model from the same seed, the same batches), then speed
            _, ls = timed(step, loss_batches, a.loss_steps, warmup=0)
            losses[key] = ls
            wps, _ = timed(step, batches, a.steps)
            res[f"wps_{key}"] = round(wps)
            print(f"{key:22s} {wps:9.0f} windows/s  ({time.perf_counter() - t:.0f} s incl. compile)", flush=True)
        except Exception as e:  # a failing variant is a result, not the end of the run
            res[f"error_{key}"] = f"{type(e).__name__}: {e}"[:300]
            traceback.print_exc()
    ref = np.mean(losses.get("fp32_eager", [np.nan]))
    for key, ls in losses.items():
        if key != "fp32_eager":
            res[f"loss_rel_diff_{key}"] = round(float(abs(np.mean(ls) - ref) / ref), 5)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            corpus = small_corpus(Path(tmp) / "c", a.frames)
            for w in (0, a.workers):
                wps = loader_fed(w, a.loader_steps, dev, corpus)
                res[f"wps_loader_fed_w{w}"] = round(wps)
                print(f"loader-fed, {w} workers: {wps:9.0f} windows/s", flush=True)
        except Exception as e:
            res["error_loader_fed"] = f"{type(e).__name__}: {e}"[:300]
            traceback.print_exc()
    try:
        from benchmarks.bench_model import throughput_table
        from uplift.config import H36M_81, H36M_351

        configs = (H36M_351, H36M_81)
        models = {c.name: build_model(c, seed=0).eval().to(dev) for c in configs}
        for label, dt in (("fp32", None), ("bf16", torch.bfloat16)):
            pps = throughput_table(configs, models, 1024 if DEVICE == "cuda" else 4, 5 if DEVICE == "cuda" else 1,
                                   DEVICE, _sync, dt, label=f"GPU {name} {label}")
            res[f"pps_gpu_{label}_351"] = round(pps[("h36m_351", 20, False)])
            res[f"pps_gpu_{label}_81"] = round(pps[("h36m_81", 20, False)])
    except Exception as e:
        res["error_inference"] = f"{type(e).__name__}: {e}"[:300]
        traceback.print_exc()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
