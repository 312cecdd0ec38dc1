"""Trainer: pre-train on a corpus version, fine-tune from a checkpoint on another, evaluate every k epochs.

Read top to bottom: ``train`` (its settings: ``uplift.run_config.RunConfig``): set up, resume or start,
then the loop over epochs and steps, each step and each epoch end calling a named helper.

A run directory holds::

    config.json          the RunConfig, the resolved UpliftConfig and every recipe item's value (``RunRecord``)
    split.json           the AMASS training / validation split: sub-datasets and source keys of each side
    corpora.json         the corpus versions (PATH@SNAPSHOT) used for training and evaluation
    steps.jsonl          one row per optimizer step (the global batch's loss terms)
    metrics.json/.csv    one row per epoch (loss terms, lr, evaluation summary)
    metrics.png          loss and MPJPE curves
    eval_epochXXX.json   full evaluation tables
    val_epochXXX.json    validation tables (the AMASS validation datasets)
    checkpoints/last/    the latest checkpoint (``uplift.checkpoint``), for resume
    checkpoints/best/    the checkpoint of the best validation MPJPE so far (``keep_best``)
    checkpoints/final/   the same after the last epoch

Resuming a run continues the exact sample order and RNG streams (``state.pt``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from schemas.errors import ConfigError
from uplift import distributed as D
from uplift.checkpoint import (Checkpoint, is_checkpoint, load_checkpoint, recover_checkpoint, restore_rng, rng_state,
                               save_checkpoint)
from uplift import amass_split
from uplift.config import TrainConfig, UpliftConfig
from uplift.corpora import open_corpora
from uplift.loader import close_loader, make_loader
from uplift.stream import StreamConfig, WindowStream
from uplift.evaluate import evaluate_model, summary
from uplift.history import EpochStats, append_step, read_history, write_history
from uplift.losses import uplift_loss
from uplift.model import build_model
from uplift.optim import OptimBundle, make_optimizer
from uplift.run_config import RunConfig, RunRecord

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    checkpoint: Path  # checkpoints/final (checkpoints/last when max_steps stopped the call early)
    history: list[dict]  # one row per epoch
    eval_table: list[dict]  # the last evaluation's full table ([] if none ran)
    corpora: dict[str, list[str]]


def train(cfg: RunConfig, out_dir: str | os.PathLike, corpus, *,
          init: str | os.PathLike | None = None, eval_corpus=None, resume: bool = True,
          max_steps: int | None = None, progress=None) -> RunResult:
    """Train (or fine-tune from ``init``) on ``corpus`` ("PATH@VERSION", a reader, or a list) with the
    settings ``cfg`` (``load_run_config`` makes one from a preset name or a file).

    ``eval_corpus`` defaults to ``corpus`` (its ``eval_split``). With ``resume`` an interrupted run
    in ``out_dir`` continues from ``checkpoints/last`` with the same sample order.
    ``max_steps``: a step budget for this call (e.g. a scheduler's time slice): after that many
    optimizer steps the run checkpoints to ``checkpoints/last`` and returns; calling ``train`` again
    continues it exactly. ``progress``: optional ``callback(step, steps_in_epoch, {"phase": "train", "epoch",
    "epochs", "loss"})`` after every step, and ``callback(windows_done, windows, {"phase": "evaluate",
    "epoch", "epochs", "s_in"})`` during each evaluation (CLI bars, flow logs).
    """
    # -- settings, process group, corpora
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"train takes a RunConfig (load_run_config makes one), got a {type(cfg).__name__}")
    rcfg = cfg
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dinfo = D.setup(D.pick_device(rcfg.device).type)  # torchrun / launch_train: join the process group
    device = D.device_for(dinfo, rcfg.device)
    items = rcfg.recipe_items()
    amp = device.type == "cuda" and items["precision"] == "bf16"
    train_src = open_corpora(corpus)
    eval_src = open_corpora(eval_corpus) or train_src
    if not train_src:
        raise ConfigError("no training corpus given")
    ucfg = rcfg.uplift_config(finetuning=init is not None)
    tcfg = ucfg.train
    corpora = {"train": [r.spec for r in train_src], "eval": [r.spec for r in eval_src]}
    D.check_same_corpora(corpora, dinfo)

    # -- model and optimizer: resume checkpoints/last, or start (from init's weights when given)
    torch.manual_seed(rcfg.seed)
    model = build_model(ucfg, seed=rcfg.seed).to(device)
    last = run_dir / "checkpoints" / "last"
    recover_checkpoint(last)  # a kill during a save may have left only the previous one, aside
    resumed = _load_weights(model, last if resume else None, init, device)
    state = resumed.state if resumed is not None else None
    bundle = make_optimizer(model, ucfg)
    if resumed is not None:
        _restore_training_state(bundle, resumed)
        D.restore_rank_rng(state, rcfg.seed, dinfo)
    else:
        D.seed_rank(rcfg.seed, dinfo)
    split = _amass_split(rcfg, train_src, corpora["train"])
    if dinfo.is_main:
        _write_run_files(run_dir, rcfg, ucfg, init, corpora, dinfo.world_size, fresh=state is None)
        if split is not None:
            (run_dir / "split.json").write_text(json.dumps(split.report, indent=1))
    D.check_batch(tcfg.batch_size, dinfo)
    if rcfg.camera_mode == "per-window" and items["placement"] == "raw":
        _check_raw_corpora(train_src, corpora["train"])

    # -- data: every rank streams the 1-process batch order and keeps its rows (uplift.distributed)
    filters = _filters(rcfg.train_split, rcfg.train_subjects)
    if split is not None:
        filters["keys"] = split.train_keys
    stream = WindowStream(train_src, StreamConfig.for_training(rcfg, ucfg), train=True, rank=0, world_size=1, **filters)
    if stream.num_windows == 0:
        raise ConfigError(f"no training windows in {corpora['train']} with {filters}")
    loader = make_loader(stream, rcfg.num_workers, pin_memory=device.type == "cuda", persistent=True,
                         prefetch_factor=rcfg.prefetch_factor)
    fwd = D.wrap_model(model, dinfo, device)  # DistributedDataParallel when world > 1
    if rcfg.compile is not None:
        fwd = torch.compile(fwd, mode=rcfg.compile)

    spe = tcfg.steps_per_epoch if rcfg.steps_per_epoch is None else rcfg.steps_per_epoch
    repeating = tcfg.epoch_length == "steps" and spe > 0  # epochs of exactly spe steps over a repeating stream
    history = read_history(run_dir) if state is not None else []
    best = _best_so_far(history)
    epoch0, batch0 = (int(state["epoch"]), int(state["batch"])) if state is not None else (0, 0)
    stats = EpochStats.from_tensor(state["sums"]) if state is not None else EpochStats()
    budget = math.inf if max_steps is None else max_steps  # optimizer steps left in this call
    eval_table: list[dict] = []
    meta = {"corpora": corpora, "init": str(init) if init else None}

    def checkpoint(path: Path, epoch: int, batch: int) -> None:  # collective (RNG gather); rank 0 writes
        st = _training_state(bundle, epoch, batch, stats, dinfo)
        if dinfo.is_main:
            ema = bundle.ema.module if bundle.ema is not None else None
            save_checkpoint(path, model, ema, ucfg, {**meta, "epoch": epoch, "batch": batch}, st)

    def pause(epoch: int, batch: int) -> RunResult:  # the step budget is spent: save the position, return
        checkpoint(last, epoch, batch)
        close_loader(loader)
        return RunResult(run_dir, last, history, eval_table, corpora)

    # -- the loop
    model.train()
    for epoch in range(epoch0, tcfg.epochs):
        batch = batch0 if epoch == epoch0 else 0
        if budget <= 0:  # spent at an epoch boundary
            return pause(epoch, batch)
        if repeating:
            limit, batches = spe, _repeating(stream, loader, rcfg.num_workers, epoch * spe + batch)
        else:
            stream.set_epoch(epoch, batch)
            n_batches = stream.batches_per_epoch(rcfg.num_workers)
            limit, batches = (min(n_batches, spe) if spe else n_batches), loader
        stop = min(limit, batch + budget)
        if batch == 0:
            stats = EpochStats()
        t0, first = time.perf_counter(), batch
        for b in batches:
            if batch >= stop:
                break
            terms = _train_step(fwd, bundle, model, D.rank_slice(b, dinfo), tcfg, dinfo, device, amp)
            stats.add(*terms)
            if dinfo.is_main:
                append_step(run_dir, epoch, batch, terms)
            batch += 1
            if progress is not None:
                progress(batch, limit, {"phase": "train", "epoch": epoch + 1, "epochs": tcfg.epochs,
                                        "loss": stats.loss / stats.steps})
            if rcfg.checkpoint_every and batch % rcfg.checkpoint_every == 0 and batch < limit:
                checkpoint(last, epoch, batch)
        budget -= batch - first
        if stop < limit and batch == stop:  # spent inside the epoch
            return pause(epoch, batch)

        # -- epoch end: statistics, decay, evaluation, metrics files, checkpoint
        row = {"epoch": epoch + 1, **stats.means(), "lr": bundle.optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0}
        bundle.scheduler.step()
        if dinfo.is_main and rcfg.eval_every and ((epoch + 1) % rcfg.eval_every == 0 or epoch + 1 == tcfg.epochs):
            eval_table = _evaluate(bundle.ema.module if bundle.ema is not None else model, eval_src, rcfg, ucfg,
                                   device, _eval_progress(progress, epoch + 1, tcfg.epochs))
            (run_dir / f"eval_epoch{epoch + 1:03d}.json").write_text(json.dumps(eval_table, indent=1))
            row.update(summary(eval_table))
            model.train()
        if dinfo.is_main and split is not None and split.val_keys and rcfg.eval_every and (
                (epoch + 1) % rcfg.eval_every == 0 or epoch + 1 == tcfg.epochs):
            val_model = bundle.ema.module if bundle.ema is not None else model
            val_table = _evaluate(val_model, train_src, rcfg, ucfg, device, _eval_progress(progress, epoch + 1, tcfg.epochs),
                                  validation=split.val_keys)
            (run_dir / f"val_epoch{epoch + 1:03d}.json").write_text(json.dumps(val_table, indent=1))
            row.update(validation_summary(val_table))
            model.train()
        history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        batch0 = 0
        stats = EpochStats()
        if dinfo.is_main:
            write_history(run_dir, history)
        checkpoint(last, epoch + 1, 0)
        if dinfo.is_main and rcfg.keep_best and row.get(VAL_METRIC) is not None and (best is None or row[VAL_METRIC] < best):
            best = row[VAL_METRIC]  # weights only (rank 0 alone validates): not a resume point
            ema = bundle.ema.module if bundle.ema is not None else None
            save_checkpoint(run_dir / "checkpoints" / "best", model, ema, ucfg,
                            {**meta, "epoch": epoch + 1, "batch": 0, VAL_METRIC: best},
                            {"epoch": torch.tensor(epoch + 1), "batch": torch.tensor(0)})
    close_loader(loader)
    final = run_dir / "checkpoints" / "final"
    checkpoint(final, tcfg.epochs, 0)
    return RunResult(run_dir, final, history, eval_table, corpora)


# ----------------------------------------------------------------------------------------------
# The helpers ``train`` calls, in the order it calls them
# ----------------------------------------------------------------------------------------------

def _load_weights(model, last: Path | None, init, device) -> Checkpoint | None:
    """Weights from ``last`` (a resume: returns that checkpoint, state included) or else from ``init``
    (its EMA copy when it has one); None when the run does not resume."""
    if last is not None and is_checkpoint(last):
        ck = load_checkpoint(last, device=device, with_state=True)
        model.load_state_dict(ck.model.state_dict())
        log.info("resuming %s at epoch %d batch %d", last.parent.parent, ck.state["epoch"], ck.state["batch"])
        return ck
    if init is not None:
        ck = load_checkpoint(init, device=device)
        model.load_state_dict(ck.weights_for_eval().state_dict())
        log.info("fine-tuning from %s", init)
    return None


def _restore_training_state(bundle: OptimBundle, ck: Checkpoint) -> None:
    """Optimizer, scheduler, EMA copy and this process's RNG streams as ``_training_state`` saved them."""
    state = ck.state
    bundle.optimizer.load_state_dict(state["optimizer"])
    bundle.scheduler.load_state_dict(state["scheduler"])
    if bundle.ema is not None and ck.ema_model is not None:
        bundle.ema.module.load_state_dict(ck.ema_model.state_dict())
        bundle.ema.n_averaged.fill_(int(state["ema_n_averaged"]))
    restore_rng(state)


def _training_state(bundle: OptimBundle, epoch: int, batch: int, stats: EpochStats, dinfo) -> dict:
    """``state.pt``: data position, optimizer / scheduler / EMA count, epoch sums, RNG states (every
    rank's: a collective when data-parallel)."""
    return {"epoch": torch.tensor(epoch), "batch": torch.tensor(batch),
            "optimizer": bundle.optimizer.state_dict(), "scheduler": bundle.scheduler.state_dict(),
            "sums": stats.to_tensor(),
            "ema_n_averaged": torch.tensor(int(bundle.ema.n_averaged) if bundle.ema is not None else 0),
            **rng_state(), **D.rng_state_entries(dinfo)}


def _write_run_files(run_dir: Path, rcfg: RunConfig, ucfg: UpliftConfig, init, corpora: dict, world_size: int,
                     fresh: bool) -> None:
    (run_dir / "config.json").write_text(RunRecord.of(rcfg, ucfg, init, world_size).to_json())
    (run_dir / "corpora.json").write_text(json.dumps(corpora, indent=1))
    if fresh:
        (run_dir / "steps.jsonl").unlink(missing_ok=True)


def _filters(split, subjects) -> dict:
    return {"split": split} if subjects is None else {"split": split, "subjects": subjects}


@dataclass
class _Split:
    train_keys: list[str] | None  # the training stream's key filter (None: no AMASS sequence held out)
    val_keys: list[str]  # the validation sequences' keys ([]: no validation)
    report: dict  # split.json


def _amass_split(rcfg: RunConfig, readers: list, specs: list[str]) -> _Split | None:
    """The AMASS split of the training corpora (``uplift.amass_split``); None when they hold no AMASS."""
    tables = [(spec, r.sequences) for spec, r in zip(specs, readers)]
    if not any((t["source"].to_numpy(zero_copy_only=False) == "amass").any() for _, t in tables if t.num_rows):
        return None
    tr, val = rcfg.amass_lists()
    sides = [amass_split.split_sequences(t, tr, val) for _, t in tables]
    held_out = any(s["val"] or s["unused"] for s in sides)
    train_keys = sorted({k for s in sides for k in s["train"]}) if held_out else None
    val_keys = sorted({k for s in sides for k in s["val"]})
    report = amass_split.split_report(tables, tr, val)
    missing = [n for n in val if not any(amass_split.dataset_name(d) == amass_split.dataset_name(n)
                                         for e in report["corpora"].values() for d in e["val"])]
    if missing:
        log.warning("AMASS validation datasets %s are not in the training corpora", missing)
    report["missing_val_datasets"] = missing
    return _Split(train_keys, val_keys, report)


def _check_raw_corpora(readers: list, specs: list[str]) -> None:
    """``placement: raw`` projects the stored AMASS trajectories as they are: they must be stored so
    (a corpus built with ``placement: raw``), not turned, moved and cut into the rig's volume."""
    for spec, r in zip(specs, readers):
        seq = r.sequences
        if not (seq.num_rows and (seq["source"].to_numpy(zero_copy_only=False) == "amass").any()):
            continue
        built = (r.build_info.get("settings") or {}).get("placement", "rig")
        if built != "raw":
            raise ConfigError(f"{spec}: placement 'raw' projects AMASS motion as stored, but this version was "
                              f"built with placement {built!r} (turned, moved and cut into the rig's volume); "
                              f"build it with --placement raw, or train with placement 'centred'")


def _repeating(stream: WindowStream, loader, num_workers: int, start: int):
    """Batches of an endless stream of passes from global batch ``start`` on (``epoch_length: steps``):
    pass p is the stream's epoch p, so a resume at any step continues the same order."""
    p, skip = 0, start
    while True:
        stream.set_epoch(p, 0)
        n = stream.batches_per_epoch(num_workers)
        if n == 0:
            raise ConfigError("the training stream yields no full batch: a repeating stream needs one")
        if skip < n:
            break
        p, skip = p + 1, skip - n
    while True:
        stream.set_epoch(p, skip)
        yield from loader
        p, skip = p + 1, 0


VAL_METRIC = "val_mpjpe_mm"  # the mean over the validation s_in of the all-frames MPJPE


def validation_summary(table: list[dict]) -> dict[str, float]:
    """``{"val_mpjpe_mm": mean over s_in, "val_mpjpe_mm_s20": ..., ...}`` of a validation table."""
    per = {k.replace("mpjpe_mm", "val_mpjpe_mm").replace("p_val_", "val_p_"): v for k, v in summary(table).items()}
    means = [v for k, v in per.items() if k.startswith("val_mpjpe_mm_s")]
    return {VAL_METRIC: float(sum(means) / len(means)), **per} if means else {}


def _best_so_far(history: list[dict]) -> float | None:
    vals = [r[VAL_METRIC] for r in history if r.get(VAL_METRIC) is not None]
    return min(vals) if vals else None


def _train_step(fwd, bundle: OptimBundle, model, b: dict, tcfg: TrainConfig, dinfo, device, amp: bool
                ) -> list[float]:
    """One optimizer step on this rank's rows of a global batch; returns the global batch's
    ``[loss, loss_seq, loss_center]`` (metres)."""
    x = b["keypoints_2d"].to(device, non_blocking=True)  # (B, n_out, J, 2)
    kf = b["keyframe"].to(device, non_blocking=True)  # (B, n_out)
    y = b["joints_3d"].to(device, non_blocking=True)  # (B, n_out, J, 3)
    valid = b["valid"].to(device, non_blocking=True)  # (B, n_out)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        out = fwd(x, kf)  # heads in fp32 inside the model
    seq_count, center_count = D.global_counts(valid, dinfo)
    terms = uplift_loss(out.seq.float(), out.center.float(), y, valid, root=tcfg.root_joint,
                        w_seq=tcfg.loss_weight_seq, w_center=tcfg.loss_weight_center,
                        seq_count=seq_count, center_count=center_count, mode=tcfg.loss)
    bundle.optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    bundle.optimizer.step()
    if bundle.ema is not None:
        bundle.ema.update_parameters(model)
    return D.global_mean([terms.total.item(), terms.seq.item(), terms.center.item()], dinfo, device)


def _evaluate(model, eval_src: list, rcfg: RunConfig, ucfg: UpliftConfig, device, progress=None,
              validation: list[str] | None = None) -> list[dict]:
    """The evaluation table of ``model`` (the EMA copy when there is one) on the eval split, or with
    ``validation`` (sequence keys) on those sequences, window centres every ``val_frame_step`` frames."""
    m, t = ucfg.model, ucfg.train
    if validation is None:
        filters, step = _filters(rcfg.eval_split, rcfg.eval_subjects), None
    else:
        filters, step = {"split": None, "keys": validation}, rcfg.val_frame_step
        if step is not None and step % m.s_out:
            raise ConfigError(f"val_frame_step {step} must be a multiple of s_out {m.s_out}")
    return evaluate_model(model, eval_src, seq_len=m.seq_len, s_out=m.s_out, s_in=list(rcfg.eval_s_in or t.s_in),
                          batch_size=rcfg.eval_batch_size, test_flip=t.test_flip, root=t.root_joint, device=device,
                          precision=rcfg.eval_precision, progress=progress, frame_step=step, **filters)


def _eval_progress(progress, epoch: int, epochs: int):
    """``train``'s progress callback for an evaluation pass: ``(windows_done, windows, {"phase":
    "evaluate", "epoch", "epochs", "s_in"})`` (None when there is no callback)."""
    if progress is None:
        return None
    return lambda done, total, info: progress(done, total, {**info, "phase": "evaluate", "epoch": epoch,
                                                            "epochs": epochs})
