"""Proxy ablation: does pre-training on AMASS help a Human3.6M/CPN-like task, under which recipe?

The corpora go through the code paths a user runs (``uplift`` never sees anything else):
* pre-training corpus: ``synth body-model`` + ``synth amass`` (SMPL+H motion files, 8 motion kinds)
  through ``build-amass`` twice: ``placement: rig`` (turned, moved into the H36M volume, cut where
  needed; the paper recipe) and ``placement: raw`` (the mocap trajectory as stored; official-code);
* target task: ``synth h36m`` (a procedural H36M-layout body seen by the real H36M cameras, CPN-like
  2D: jitter, left/right swaps, outliers) through ``build-h36m --detections cpn``; train S1, S5-S8,
  test S9 and S11, as the protocol.
A run, per seed (all through ``uplift.train.train``, a small model on CPU): *scratch* trains
``--steps`` steps on the H36M corpus; *pretrained* trains ``--pretrain-steps`` on AMASS (per-window
cameras of the 28 H36M cameras, as ``amass_351``) and then the same ``--steps`` on H36M from those
weights (same optimiser settings: only the initialisation differs). Both report test MPJPE (mm, all
frames, action-averaged) at s_in 5 and 20.

Variants: the ``paper`` recipe, the ``official-code`` recipe, and each item of ``official-code``
added alone to ``paper`` (``uplift.config.RECIPE_ITEMS``); items that cannot change a CPU run of this
proxy are listed with the reason instead of run (``precision``: CPU trains in fp32 either way;
``ema_start``: these configs keep no EMA, as ``amass_351`` / ``h36m_351``). Seeds run two at a
time in separate processes, one thread each (on 2 cores that is faster than one process on two).

Usage: ``python -m benchmarks.pretrain_gain [--steps 300] [--pretrain-steps 600] [--seeds 3] [--quick]``
(``--quick``: 150 and 300 steps).
Last line: JSON with ``mpjpe_scratch_mm`` / ``mpjpe_pretrained_mm`` (means over seeds, s_in 20, the
default recipe, ``uplift.train.RunConfig().recipe``; scratch trains with it too), their ``*_std_mm``,
``seeds``, ``gain_mm`` and ``ablation``: one entry per variant (mean and std over seeds at s_in 5 and 20).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

S_IN = (5, 10, 20)  # drawn in training
EVAL_S_IN = (5, 20)
MODEL = {"seq_len": 81, "s_out": 5, "strides": [3, 3], "paddings": [[0, 0], [0, 0]], "d_joint": 16,
         "d_temp": 64, "depth_joint": 2, "depth_temp": 2, "num_heads": 4}
FLIPS_FROM = "paper"  # the ablation adds each official-code item alone to this recipe
NOT_APPLICABLE = {"precision": "CPU trains in fp32 whatever the setting",
                  "ema_start": "the proxy keeps no EMA (as amass_351 and h36m_351)"}


def prepare(work: Path, amass_sequences: int, h36m_frames: int) -> dict[str, str]:
    """Synthetic inputs through the builds a user runs; returns corpus specs."""
    from pipelines.build_amass import BuildConfig, build_amass
    from pipelines.build_h36m import H36MBuildConfig, build_h36m
    from pipelines.synthetic.body_model import write_body_model_tree
    from pipelines.synthetic.h36m import write_h36m_files
    from pipelines.synthetic.motions import write_amass_tree

    if (work / "specs.json").exists():  # a --workdir kept from an earlier run with the same sizes
        return json.loads((work / "specs.json").read_text())
    write_body_model_tree(work / "body_models", seed=0)
    write_amass_tree(work / "amass", n_sequences=amass_sequences, seed=0, duration_s=(4.0, 20.0), smplx_fraction=0.0)
    specs = {}
    for placement in ("rig", "raw"):
        build_amass(BuildConfig(amass_root=work / "amass", body_models=work / "body_models",
                                corpus=work / f"amass_{placement}", tag="v1", placement=placement, n_workers=2))
        specs[placement] = f"{work / f'amass_{placement}'}@v1"
    write_h36m_files(work / "h36m", seed=0, frames=h36m_frames)
    build_h36m(H36MBuildConfig(data_dir=work / "h36m", corpus=work / "h36m_cpn", detections="cpn", tag="v1"))
    specs["h36m"] = f"{work / 'h36m_cpn'}@v1"
    (work / "specs.json").write_text(json.dumps(specs))
    return specs


def variants(default: str = FLIPS_FROM) -> dict[str, dict]:
    """name -> run-config overrides: both recipes, then each item flipped alone from ``default``."""
    from uplift.config import RECIPE_ITEMS, RECIPES, recipe_values

    out = {r: {"recipe": r} for r in RECIPES}
    other = recipe_values([r for r in RECIPES if r != default][0])
    for item, (where, _) in RECIPE_ITEMS.items():
        if item in NOT_APPLICABLE:
            continue
        value = other[item]
        out[f"{item}={value}"] = {"recipe": default, **({item: value} if where == "run" else {where: {item: value}})}
    return out


def _run_config(overrides: dict, steps: int, seed: int, batch: int, lr: float, pretraining: bool):
    from uplift.run_config import RunConfig

    epochs = 4
    train = {"s_in": list(S_IN), "batch_size": batch, "epochs": epochs, "lr": lr, "weight_decay": lr * 0.01,
             "decay_rate": 0.9, "ema_decay": None, **overrides.get("train", {})}
    run = {k: v for k, v in overrides.items() if k not in ("train", "model")}
    return RunConfig(preset="tiny", model={**MODEL, **overrides.get("model", {})}, train=train, finetune=False,
                     seed=seed, eval_every=0 if pretraining else epochs, eval_s_in=list(EVAL_S_IN),
                     steps_per_epoch=max(steps // epochs, 1), block_frames=256, buffer_blocks=16,
                     cameras="per-window" if pretraining else "precomputed", camera_rig="h36m", **run)


def one_seed(job: tuple) -> dict:
    """One seed of one variant (or of scratch): ``{"5": mm, "20": mm, "seconds": s}``."""
    name, overrides, specs, work, seed, a = job
    import torch

    torch.set_num_threads(1)
    from uplift.train import train

    t0 = time.perf_counter()
    out = Path(work) / "runs" / f"{name}-{seed}"
    init = None
    if name != "scratch":
        cfg = _run_config(overrides, a["pretrain_steps"], seed, a["batch"], a["lr"], pretraining=True)
        corpus = specs["raw" if cfg.recipe_items()["placement"] == "raw" else "rig"]
        init = train(cfg, out / "pretrain", corpus).checkpoint
    res = train(_run_config(overrides, a["steps"], seed, a["batch"], a["lr"], pretraining=False), out / "finetune",
                specs["h36m"], init=init)
    mm = {str(r["s_in"]): r["mpjpe_mm"] for r in res.eval_table if r["action"] == "*" and r["frames"] == "all"}
    shutil.rmtree(out, ignore_errors=True)
    return {**mm, "seconds": time.perf_counter() - t0}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300, help="steps on the H36M corpus (scratch and fine-tune)")
    ap.add_argument("--pretrain-steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--amass-sequences", type=int, default=60)
    ap.add_argument("--h36m-frames", type=int, default=600, help="3D frames a (subject, action) of synthetic H36M")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated variants (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller budgets: a smoke run of the whole ablation")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    if a.quick:
        a.steps, a.pretrain_steps = 150, 300

    t_start = time.perf_counter()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="pretrain_gain_"))
    specs = prepare(work, a.amass_sequences, a.h36m_frames)
    print(f"corpora built in {time.perf_counter() - t_start:.0f} s", flush=True)

    from uplift.run_config import RunConfig

    default = RunConfig().recipe
    todo = variants(FLIPS_FROM)
    if a.only:
        todo = {k: v for k, v in todo.items() if k in a.only.split(",") or k == default}
    budget = {"steps": a.steps, "pretrain_steps": a.pretrain_steps, "batch": a.batch, "lr": a.lr}
    jobs = [(name, ov, specs, str(work), seed, budget) for name, ov in [("scratch", {"recipe": default}), *todo.items()]
            for seed in range(a.seeds)]
    results: dict[str, list[dict]] = {}
    with ProcessPoolExecutor(a.processes, mp_context=mp.get_context("spawn")) as pool:
        for job, res in zip(jobs, pool.map(one_seed, jobs)):
            results.setdefault(job[0], []).append(res)
            print(f"{job[0]} seed {job[4]}: {json.dumps({k: round(v, 1) for k, v in res.items()})}", flush=True)

    def summary(name):
        rs = results[name]
        out = {}
        for s in EVAL_S_IN:
            m, sd = _stats([r[str(s)] for r in rs])
            out[f"s{s}_mm"], out[f"s{s}_std_mm"] = round(m, 2), round(sd, 2)
        return out

    ablation = {name: summary(name) for name in todo}
    scratch = summary("scratch")
    pre = ablation[default]
    res = {"mpjpe_scratch_mm": scratch["s20_mm"], "mpjpe_pretrained_mm": pre["s20_mm"],
           "scratch_std_mm": scratch["s20_std_mm"], "pretrained_std_mm": pre["s20_std_mm"],
           "gain_mm": round(scratch["s20_mm"] - pre["s20_mm"], 2), "seeds": a.seeds,
           "default_recipe": default, "flips_from": FLIPS_FROM, "scratch": scratch, "ablation": ablation,
           "not_applicable": NOT_APPLICABLE, "steps": a.steps, "pretrain_steps": a.pretrain_steps,
           "batch": a.batch, "amass_sequences": a.amass_sequences, "h36m_frames": a.h36m_frames,
           "seconds": round(time.perf_counter() - t_start, 1)}
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
