"""Uplift-Upsample Transformer: parameters, forward FLOPs and inference throughput.

For both published configs (N = 351 / s_out = 5 and N = 81 / s_out = 2) this prints
- parameter counts next to the paper's Table 4 (10.39 M, 10.36 M);
- forward FLOPs per window from ``torch.utils.flop_counter`` (2 FLOPs per multiply-add; matmuls,
  convolutions and attention only) for each s_in, with the spatial Transformer on key frames only and
  on all frames, next to the paper's 966 M and 543 M;
- CPU throughput in poses per second (one centre pose per window, eval mode, batch of windows), key-frame
  spatial pass vs all-frame spatial pass, measured interleaved in the same run; the same on a GPU when
  CUDA is available.
The last line is one JSON object with params_351, params_81, flops_351, flops_81 (FLOPs at the
largest s_in), pps_cpu_351, pps_cpu_81 (key-frame path, largest s_in) and keyframe_speedup_351.

Usage: ``python -m benchmarks.bench_model [--batch 32] [--rounds 8]`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from uplift.config import H36M_81, H36M_351, UpliftConfig
from benchmarks.flops import forward_flops
from uplift.keyframes import keyframe_mask
from uplift.model import build_model, count_parameters

PAPER = {"h36m_351": {"params": 10.39e6, "flops": 966e6}, "h36m_81": {"params": 10.36e6, "flops": 543e6}}


def _inputs(cfg: UpliftConfig, batch: int, s_in: int, device="cpu"):
    m = cfg.model
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, m.n_out, m.num_joints, 2, generator=g).to(device)
    kf = torch.as_tensor(keyframe_mask(m.n_out, m.s_out, s_in)).expand(batch, -1).contiguous().to(device)
    return x, kf


def _time_call(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def _run(model, x, kf, all_frames: bool, autocast_dtype=None):
    model.spatial_on_all_frames = all_frames
    with torch.no_grad(), torch.autocast(device_type=x.device.type, dtype=autocast_dtype or torch.float32,
                                         enabled=autocast_dtype is not None):
        model(x, kf)
    model.spatial_on_all_frames = False


def measure(cases: dict, rounds: int, sync=lambda: None, autocast_dtype=None) -> dict:
    """Poses/s per case ``key -> (model, x, kf, all_frames)``.

    Every round times each case once, in turn, so the samples of a case are spread over the whole run
    and a burst of load from other processes on a shared machine cannot hit all of them; the best
    round counts (load only ever makes a call slower).
    """
    for model, x, kf, all_frames in cases.values():  # warm-up
        _run(model, x, kf, all_frames, autocast_dtype)
    times = {k: [] for k in cases}
    for _ in range(rounds):
        for k, (model, x, kf, all_frames) in cases.items():
            times[k].append(_time_call(lambda: _run(model, x, kf, all_frames, autocast_dtype), sync))
    return {k: cases[k][1].shape[0] / min(t) for k, t in times.items()}


def describe(cfg: UpliftConfig, model) -> dict:
    params = count_parameters(model)
    paper = PAPER[cfg.name]
    print(f"\n== {cfg.name}: N={cfg.model.seq_len} s_out={cfg.model.s_out} n_out={cfg.model.n_out}")
    print(f"params {params:,} ({params / 1e6:.3f} M; paper {paper['params'] / 1e6:.2f} M, "
          f"{100 * (params - paper['params']) / paper['params']:+.2f} %)")
    flops = {}
    for s_in in cfg.train.s_in:
        x1, kf1 = _inputs(cfg, 1, s_in)
        model.spatial_on_all_frames = True
        f_all = forward_flops(model, x1, kf1)
        model.spatial_on_all_frames = False
        flops[s_in] = forward_flops(model, x1, kf1)
        print(f"s_in={s_in:2d} ({int(kf1.sum())}/{cfg.model.n_out} key frames): forward FLOPs/window "
              f"{flops[s_in] / 1e6:7.1f} M key-frame spatial, {f_all / 1e6:7.1f} M all-frame spatial "
              f"(paper {paper['flops'] / 1e6:.0f} M; torch flop_counter, 2 FLOPs per MAC)")
    return {"params": params, "flops": flops}


def throughput_table(configs, models, batch: int, rounds: int, device: str, sync=lambda: None,
                     autocast_dtype=None, label="CPU") -> dict:
    cases = {}
    for cfg in configs:
        for s_in in cfg.train.s_in:
            x, kf = _inputs(cfg, batch, s_in, device)
            for all_frames in (False, True):
                cases[(cfg.name, s_in, all_frames)] = (models[cfg.name], x, kf, all_frames)
    pps = measure(cases, rounds, sync, autocast_dtype)
    for cfg in configs:
        print(f"\n{label} {cfg.name}, batch {batch}, best of {rounds} interleaved rounds:")
        for s_in in cfg.train.s_in:
            key, full = pps[(cfg.name, s_in, False)], pps[(cfg.name, s_in, True)]
            print(f"  s_in={s_in:2d}: {key:9.1f} poses/s key-frame spatial, {full:9.1f} poses/s all-frame "
                  f"spatial (x{key / full:.2f}); {key * cfg.model.s_out:9.1f} video frames/s after upsampling")
    return pps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA: {torch.cuda.is_available()}")
    configs = (H36M_351, H36M_81)
    models = {c.name: build_model(c, seed=0).eval() for c in configs}
    info = {c.name: describe(c, models[c.name]) for c in configs}
    pps = throughput_table(configs, models, args.batch, args.rounds, "cpu")
    s351, s81 = max(H36M_351.train.s_in), max(H36M_81.train.s_in)
    summary = {
        "params_351": info["h36m_351"]["params"], "params_81": info["h36m_81"]["params"],
        "flops_351": info["h36m_351"]["flops"][s351], "flops_81": info["h36m_81"]["flops"][s81],
        "pps_cpu_351": round(pps[("h36m_351", s351, False)], 1), "pps_cpu_81": round(pps[("h36m_81", s81, False)], 1),
        "keyframe_speedup_351": round(pps[("h36m_351", s351, False)] / pps[("h36m_351", s351, True)], 3),
    }
    if torch.cuda.is_available():
        gpu_models = {k: build_model(c, seed=0).eval().cuda() for k, c in zip(models, configs)}
        name = torch.cuda.get_device_name()
        for label, dt in (("fp32", None), ("bf16", torch.bfloat16)):
            gpps = throughput_table(configs, gpu_models, 1024, 10, "cuda", torch.cuda.synchronize, dt,
                                    label=f"GPU {name} {label}")
            summary[f"pps_gpu_{label}_351"] = round(gpps[("h36m_351", s351, False)])
            summary[f"pps_gpu_{label}_81"] = round(gpps[("h36m_81", s81, False)])
            summary[f"keyframe_speedup_gpu_{label}_351"] = round(
                gpps[("h36m_351", s351, False)] / gpps[("h36m_351", s351, True)], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
