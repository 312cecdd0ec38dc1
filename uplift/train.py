"""Trainer: pre-train on a corpus version, fine-tune from a checkpoint on another, evaluate every k epochs.

A run directory holds::

    config.json          the RunConfig and the resolved UpliftConfig
    corpora.json         the corpus versions (PATH@SNAPSHOT) used for training and evaluation
    metrics.json/.csv    one row per epoch (loss terms, lr, evaluation summary)
    metrics.png          loss and MPJPE curves
    eval_epochXXX.json   full evaluation tables
    checkpoints/last/    model.safetensors, ema.safetensors, state.pt, meta.json (latest, for resume)
    checkpoints/final/   the same after the last epoch

``state.pt`` holds optimizer / scheduler / RNG state and the data position (epoch, batches consumed);
it is read with ``torch.load(weights_only=True)`` only. Resuming a run continues the exact sample order.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from schemas.faults import fault_point, trace
from schemas.errors import ConfigError
from uplift.config import FINETUNE_351, ModelConfig, TrainConfig, UpliftConfig, finetune_overrides, get_preset
from uplift import distributed as D
from uplift.loader import close_loader, make_loader
from uplift.stream import StreamConfig, WindowStream
from uplift.evaluate import evaluate_model, summary
from uplift.losses import uplift_loss
from uplift.model import build_model
from uplift.optim import make_optimizer

log = logging.getLogger(__name__)

# Official fine-tuning config (config/h36m_351_pt.json): 3 epochs, lower learning rate and weight
# decay. Per preset: uplift.config.finetune_overrides (the N=81 analogue is documented there).
FINETUNE_OVERRIDES = FINETUNE_351


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs besides the corpora. Load with ``load_run_config(path_or_preset)``."""

    preset: str = "tiny"  # uplift.config preset: amass_351, h36m_351, h36m_81, tiny
    train: dict = field(default_factory=dict)  # TrainConfig overrides, e.g. {"epochs": 3}
    model: dict = field(default_factory=dict)  # ModelConfig overrides
    finetune: bool | None = None  # None: apply FINETUNE_OVERRIDES when starting from --init
    train_split: str | None = "train"
    train_subjects: list | None = None
    eval_split: str | None = "test"
    eval_subjects: list | None = None
    eval_every: int = 1  # epochs; 0 disables evaluation during training
    eval_s_in: list | None = None  # default: train.in_strides
    eval_batch_size: int = 256
    steps_per_epoch: int | None = None  # None: the train config's; 0: a full pass over the corpus
    checkpoint_every: int = 0  # also checkpoint every k steps inside an epoch (0: epoch ends only)
    num_workers: int = 0
    buffer_blocks: int = 512  # blocks shuffled together (memory ~ buffer_blocks * (block_frames + N) frames)
    block_frames: int = 256
    seed: int = 0
    device: str | None = None  # None: cuda if available else cpu
    # AMASS views: "precomputed" (the corpus's build-time cameras) or "per-window" (a camera drawn
    # from the rig's pool per window and epoch, projected on the fly); None: per-window for the
    # amass_* presets, precomputed otherwise. H36M detections (cpn, gt) always keep their views.
    cameras: str | None = None
    camera_rig: str | None = None  # per-window pool: "h36m" (28 cameras) or "3dhp" (14); None: each view's rig
    precision: str = "bf16"  # training autocast on CUDA: "bf16" or "fp32" (heads and losses always fp32)
    eval_precision: str = "fp32"  # evaluation: fp32 unless "bf16" is asked for
    compile: str | None = None  # torch.compile mode for training ("default", "max-autotune", ...); None: eager
    prefetch_factor: int = 4  # batches each DataLoader worker keeps ready

    def __post_init__(self):
        if self.cameras not in (None, "precomputed", "per-window"):
            raise ConfigError(f"cameras must be 'precomputed' or 'per-window', got {self.cameras!r}")
        if self.camera_rig not in (None, "h36m", "3dhp"):
            raise ConfigError(f"camera_rig must be 'h36m' or '3dhp', got {self.camera_rig!r}")
        for k in ("precision", "eval_precision"):
            if getattr(self, k) not in ("bf16", "fp32"):
                raise ConfigError(f"{k} must be 'bf16' or 'fp32', got {getattr(self, k)!r}")

    @property
    def camera_mode(self) -> str:
        """``cameras`` resolved: per-window for the AMASS pre-training presets unless set."""
        if self.cameras is not None:
            return self.cameras
        return "per-window" if self.preset.startswith("amass") else "precomputed"

    def uplift_config(self, finetuning: bool = False) -> UpliftConfig:
        base = get_preset(self.preset)
        tr = dict(self.train)
        if finetuning if self.finetune is None else self.finetune:
            tr = {**finetune_overrides(self.preset), **tr}
        model = replace(base.model, **_tuples(self.model)) if self.model else base.model
        return replace(base, model=model, train=replace(base.train, **_tuples(tr)))


def _tuples(d: dict) -> dict:
    """JSON lists back to the tuples the frozen configs use (nested: paddings)."""
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in d.items()}


def load_run_config(spec: str | os.PathLike | RunConfig | None) -> RunConfig:
    """A preset name (``"tiny"``) or a JSON / TOML / YAML file with RunConfig fields."""
    if spec is None:
        return RunConfig()
    if isinstance(spec, RunConfig):
        return spec
    p = Path(spec)
    if not p.exists():
        get_preset(str(spec))  # ConfigError when unknown
        return RunConfig(preset=str(spec))
    text = p.read_text()
    if p.suffix == ".toml":
        data = tomllib.loads(text)
    elif p.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    known = {f.name for f in fields(RunConfig)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{p}: unknown config keys {sorted(unknown)}")
    return RunConfig(**data)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    model: torch.nn.Module
    ema_model: torch.nn.Module | None
    config: UpliftConfig
    meta: dict
    state: dict | None


def _config_from_dict(d: dict) -> UpliftConfig:
    return UpliftConfig(name=d["name"], model=ModelConfig(**_tuples(d["model"])),
                        train=TrainConfig(**_tuples(d["train"])))


def save_checkpoint(path: Path, model, bundle, ucfg: UpliftConfig, meta: dict, state: dict) -> None:
    """Replace the checkpoint directory ``path`` so that a complete checkpoint exists at every moment.

    Write the new one beside it (``.tmp``) and fsync it, move the old one aside (``.old``), move the new
    one in, fsync the parent, then delete the old one. A kill at any point leaves either ``path`` or
    ``path.old`` complete; ``find_checkpoint`` / ``recover_checkpoint`` fall back to the aside copy.
    """
    path = Path(path)
    tmp, aside = _tmp_dir(path), aside_dir(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(tmp / "model.safetensors"))
    fault_point("ckpt_files")  # a kill while the new checkpoint's files are being written
    if bundle is not None and bundle.ema is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in bundle.ema.module.state_dict().items()},
                  str(tmp / "ema.safetensors"))
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "config": asdict(ucfg)}, indent=1))
    _fsync_tree(tmp)
    fault_point("ckpt_written")
    if _complete(path):  # keep an existing aside copy while it is the only complete one
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(path, aside)
    else:
        shutil.rmtree(path, ignore_errors=True)
    fault_point("ckpt_aside")  # the old one aside, the new one not yet in: only the aside copy is whole
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    trace(f"ckpt_complete:{path.name}:{meta.get('epoch')}:{meta.get('batch')}")
    fault_point("ckpt_in")
    shutil.rmtree(aside, ignore_errors=True)


def aside_dir(path: Path) -> Path:
    """Where ``save_checkpoint`` keeps the previous checkpoint while the new one moves in."""
    return path.with_name(path.name + ".old")


def _tmp_dir(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _complete(path: Path) -> bool:
    # a directory only ever gets its final (or aside) name when it is whole
    return (path / "model.safetensors").is_file()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(path)


def recover_checkpoint(path: str | os.PathLike) -> bool:
    """If a kill left only the aside copy of checkpoint dir ``path``, move it back; True if it did."""
    path = Path(path)
    aside = aside_dir(path)
    if not _complete(path) and _complete(aside):
        shutil.rmtree(path, ignore_errors=True)
        os.replace(aside, path)
        _fsync_dir(path.parent)
        log.warning("%s: restored the previous checkpoint from %s (a save was interrupted)", path, aside)
        return True
    return False


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint directory for ``path``: a checkpoint dir, a file inside one, or a run dir (its
    ``.old`` aside copy when an interrupted save left only that)."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    for cand in (p, p / "checkpoints" / "final", p / "checkpoints" / "last"):
        for d in (cand, aside_dir(cand)):
            if _complete(d):
                return d
    raise ConfigError(f"{p}: no checkpoint (model.safetensors) here or under checkpoints/final|last")


def load_checkpoint(path: str | os.PathLike, device=None, with_state: bool = False) -> Checkpoint:
    """Model (and EMA copy) from a checkpoint dir or a run dir; state only with ``with_state``."""
    p = find_checkpoint(path)
    meta = json.loads((p / "meta.json").read_text())
    ucfg = _config_from_dict(meta["config"])
    device = pick_device(device)
    model = build_model(ucfg).to(device)
    model.load_state_dict(load_file(str(p / "model.safetensors"), device=str(device)))
    ema = None
    if (p / "ema.safetensors").exists():
        ema = build_model(ucfg).to(device)
        ema.load_state_dict(load_file(str(p / "ema.safetensors"), device=str(device)))
    state = torch.load(p / "state.pt", weights_only=True, map_location=device) if with_state else None
    return Checkpoint(model, ema, ucfg, meta, state)


def rng_state() -> dict:
    """RNG states for ``state.pt``: the CPU generator (a CPU ByteTensor) and, when CUDA is available,
    every CUDA device's generator (dropout and drop-path draw from them on a GPU)."""
    out = {"torch_rng": torch.get_rng_state().cpu()}
    if torch.cuda.is_available():
        out["cuda_rng"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return out


def _cpu_bytes(t) -> torch.Tensor:
    """An RNG state as ``torch.set_rng_state`` wants it: a CPU uint8 tensor (``state.pt`` loaded with
    ``map_location=cuda`` puts it on the GPU, where ``set_rng_state`` refuses it)."""
    return torch.as_tensor(t).to(device="cpu", dtype=torch.uint8)


def restore_rng(state: dict) -> None:
    """Inverse of ``rng_state`` for a state loaded with any ``map_location``."""
    torch.set_rng_state(_cpu_bytes(state["torch_rng"]))
    cuda = state.get("cuda_rng")
    if cuda is not None and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([_cpu_bytes(s) for s in cuda[:n]])


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------

@dataclass
class RunResult:
    run_dir: Path
    checkpoint: Path  # checkpoints/final
    history: list[dict]  # one row per epoch
    eval_table: list[dict]  # the last evaluation's full table ([] if none ran)
    corpora: dict[str, list[str]]


def _spec(r) -> str:
    return f"{r.path}@{r.version_id}"


def _open_all(specs) -> list:
    from schemas.reader import open_corpus

    if specs is None:
        return []
    specs = specs if isinstance(specs, (list, tuple)) else [specs]
    return [open_corpus(s) if isinstance(s, (str, os.PathLike)) else s for s in specs]


def _plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for k in ("loss", "loss_seq", "loss_center"):
        ax[0].plot(ep, [h[k] * 1000 for h in history], label=k)
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("mm"), ax[0].legend(), ax[0].set_title("training loss")
    keys = sorted({k for h in history for k in h if k.startswith("mpjpe_mm_s")})
    for k in keys:
        pts = [(h["epoch"], h[k]) for h in history if k in h]
        ax[1].plot(*zip(*pts), marker="o", label=k)
    ax[1].set_xlabel("epoch"), ax[1].set_ylabel("MPJPE (mm)"), ax[1].set_title("evaluation")
    if keys:
        ax[1].legend()
    else:  # e.g. an AMASS corpus: every sequence is in the train split
        ax[1].text(0.5, 0.5, "no evaluation split in this run's corpora", ha="center", va="center",
                   transform=ax[1].transAxes)
        ax[1].set_xticks([]), ax[1].set_yticks([])
    ax[0].xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _write_history(run_dir: Path, history: list[dict]) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(history, indent=1))
    keys = list(dict.fromkeys(k for h in history for k in h))
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    _plot(history, run_dir / "metrics.png")


def train(cfg: RunConfig | str | os.PathLike | None, out_dir: str | os.PathLike, corpus, *,
          init: str | os.PathLike | None = None, eval_corpus=None, resume: bool = True,
          max_steps: int | None = None, progress=None) -> RunResult:
    """Train (or fine-tune from ``init``) on ``corpus`` ("PATH@VERSION", a reader, or a list).

    ``eval_corpus`` defaults to ``corpus`` (its ``eval_split``). With ``resume`` an interrupted run
    in ``out_dir`` continues from ``checkpoints/last`` with the same sample order. ``max_steps``
    stops after that many optimizer steps in this call (to simulate an interruption). ``progress``:
    optional ``callback(step, steps_in_epoch, {"epoch", "epochs", "loss"})`` after every step (CLI bars).
    """
    rcfg = load_run_config(cfg)
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dinfo = D.setup(pick_device(rcfg.device).type)  # torchrun / launch_train: join the process group
    device = D.device_for(dinfo, rcfg.device)
    amp = device.type == "cuda" and rcfg.precision == "bf16"
    train_src = _open_all(corpus)
    eval_src = _open_all(eval_corpus) or train_src
    if not train_src:
        raise ConfigError("no training corpus given")
    ucfg = rcfg.uplift_config(finetuning=init is not None)
    tcfg, mcfg = ucfg.train, ucfg.model
    corpora = {"train": [_spec(r) for r in train_src], "eval": [_spec(r) for r in eval_src]}
    D.check_same_corpora(corpora, dinfo)

    torch.manual_seed(rcfg.seed)
    model = build_model(ucfg, seed=rcfg.seed).to(device)
    last = run_dir / "checkpoints" / "last"
    recover_checkpoint(last)  # a kill during a save may have left only the previous one, aside
    state = None
    if resume and (last / "model.safetensors").exists():
        ck = load_checkpoint(last, device=device, with_state=True)
        model.load_state_dict(ck.model.state_dict())
        state = ck.state
        log.info("resuming %s at epoch %d batch %d", run_dir, state["epoch"], state["batch"])
    elif init is not None:
        ck = load_checkpoint(init, device=device)
        src = ck.ema_model if ck.ema_model is not None else ck.model
        model.load_state_dict(src.state_dict())
        log.info("fine-tuning from %s", init)
    bundle = make_optimizer(model, ucfg)
    if state is not None:
        bundle.optimizer.load_state_dict(state["optimizer"])
        bundle.scheduler.load_state_dict(state["scheduler"])
        if bundle.ema is not None and (last / "ema.safetensors").exists():
            bundle.ema.module.load_state_dict(load_file(str(last / "ema.safetensors"), device=str(device)))
            bundle.ema.n_averaged.fill_(int(state["ema_n_averaged"]))
        restore_rng(state)
        D.restore_rank_rng(state, rcfg.seed, dinfo)
    else:
        D.seed_rank(rcfg.seed, dinfo)

    if dinfo.is_main:
        (run_dir / "config.json").write_text(json.dumps({"run": asdict(rcfg), "uplift": asdict(ucfg),
                                                         "init": str(init) if init else None,
                                                         "world_size": dinfo.world_size}, indent=1))
        (run_dir / "corpora.json").write_text(json.dumps(corpora, indent=1))
        if state is None:
            (run_dir / "steps.jsonl").unlink(missing_ok=True)
    D.check_batch(tcfg.batch_size, dinfo)

    scfg = StreamConfig(seq_len=mcfg.seq_len, s_out=mcfg.out_stride, s_in=tuple(tcfg.in_strides),
                        batch_size=tcfg.batch_size, flip=True, random_shift=tcfg.keyframe_random_shift,
                        block_frames=rcfg.block_frames, buffer_blocks=rcfg.buffer_blocks, seed=rcfg.seed,
                        in_batch_flip=tcfg.in_batch_flip, cameras=rcfg.camera_mode, camera_rig=rcfg.camera_rig)
    tfilters = {"split": rcfg.train_split}
    if rcfg.train_subjects is not None:
        tfilters["subjects"] = rcfg.train_subjects
    # every rank streams the 1-process batch order and keeps its rows (uplift.distributed)
    stream = WindowStream(train_src, scfg, train=True, rank=0, world_size=1, **tfilters)
    if stream.num_windows == 0:
        raise ConfigError(f"no training windows in {corpora['train']} with {tfilters}")
    spe = tcfg.steps_per_epoch if rcfg.steps_per_epoch is None else rcfg.steps_per_epoch
    hist_file = run_dir / "metrics.json"
    history: list[dict] = json.loads(hist_file.read_text()) if state and hist_file.exists() else []
    epoch0, batch0 = (int(state["epoch"]), int(state["batch"])) if state else (0, 0)
    sums = state["sums"].tolist() if state else [0.0, 0.0, 0.0, 0]
    eval_table: list[dict] = []
    eval_filters = {"split": rcfg.eval_split}
    if rcfg.eval_subjects is not None:
        eval_filters["subjects"] = rcfg.eval_subjects
    steps_this_call = 0

    def make_state(epoch, batch):
        return {"epoch": torch.tensor(epoch), "batch": torch.tensor(batch),
                "optimizer": bundle.optimizer.state_dict(), "scheduler": bundle.scheduler.state_dict(),
                "sums": torch.tensor(sums, dtype=torch.float64),
                "ema_n_averaged": torch.tensor(int(bundle.ema.n_averaged) if bundle.ema is not None else 0),
                **rng_state(), **D.rng_state_entries(dinfo)}

    def checkpoint(path, epoch, batch):  # collective (RNG gather); only rank 0 writes
        st = make_state(epoch, batch)
        if dinfo.is_main:
            save_checkpoint(path, model, bundle, ucfg, {**meta, "epoch": epoch, "batch": batch}, st)

    fwd = D.wrap_model(model, dinfo, device)  # DistributedDataParallel when world > 1
    if rcfg.compile is not None:
        fwd = torch.compile(fwd, mode=rcfg.compile)
    loader = make_loader(stream, rcfg.num_workers, pin_memory=device.type == "cuda", persistent=True,
                         prefetch_factor=rcfg.prefetch_factor)

    meta = {"corpora": corpora, "init": str(init) if init else None}
    model.train()
    for epoch in range(epoch0, tcfg.epochs):
        stream.set_epoch(epoch, batch0 if epoch == epoch0 else 0)
        n_batches = stream.batches_per_epoch(rcfg.num_workers)
        limit = min(n_batches, spe) if spe else n_batches
        batch = batch0 if epoch == epoch0 else 0
        if batch == 0:
            sums = [0.0, 0.0, 0.0, 0]
        t0 = time.perf_counter()
        for b in loader:
            if batch >= limit:
                break
            if max_steps is not None and steps_this_call >= max_steps:  # simulated interruption
                checkpoint(last, epoch, batch)
                close_loader(loader)
                return RunResult(run_dir, last, history, eval_table, corpora)
            b = D.rank_slice(b, dinfo)
            x = b["keypoints_2d"].to(device, non_blocking=True)
            kf = b["keyframe"].to(device, non_blocking=True)
            y = b["joints_3d"].to(device, non_blocking=True)
            valid = b["valid"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                out = fwd(x, kf)  # heads in fp32 inside the model
            seq_count, center_count = D.global_counts(valid, dinfo)
            terms = uplift_loss(out.seq.float(), out.center.float(), y, valid, root=tcfg.root_joint,
                                w_seq=tcfg.loss_weight_seq, w_center=tcfg.loss_weight_center,
                                seq_count=seq_count, center_count=center_count)
            bundle.optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            bundle.optimizer.step()
            if bundle.ema is not None:
                bundle.ema.update_parameters(model)
            step_terms = D.global_mean([terms.total.item(), terms.seq.item(), terms.center.item()], dinfo, device)
            sums = [sums[0] + step_terms[0], sums[1] + step_terms[1], sums[2] + step_terms[2], sums[3] + 1]
            if dinfo.is_main:
                D.log_step(run_dir, epoch, batch, step_terms)
            batch += 1
            steps_this_call += 1
            if progress is not None:
                progress(batch, limit, {"epoch": epoch + 1, "epochs": tcfg.epochs, "loss": sums[0] / sums[3]})
            if rcfg.checkpoint_every and batch % rcfg.checkpoint_every == 0 and batch < limit:
                checkpoint(last, epoch, batch)
        n = max(sums[3], 1)
        row: dict[str, Any] = {"epoch": epoch + 1, "steps": int(sums[3]), "loss": sums[0] / n,
                               "loss_seq": sums[1] / n, "loss_center": sums[2] / n,
                               "lr": bundle.optimizer.param_groups[0]["lr"],
                               "seconds": time.perf_counter() - t0}
        bundle.scheduler.step()
        if rcfg.eval_every and ((epoch + 1) % rcfg.eval_every == 0 or epoch + 1 == tcfg.epochs) and dinfo.is_main:
            emodel = bundle.ema.module if bundle.ema is not None else model
            eval_table = evaluate_model(emodel, eval_src, seq_len=mcfg.seq_len, s_out=mcfg.out_stride,
                                        s_in=list(rcfg.eval_s_in or tcfg.in_strides),
                                        batch_size=rcfg.eval_batch_size, test_flip=tcfg.test_flip,
                                        root=tcfg.root_joint, device=device, precision=rcfg.eval_precision,
                                        **eval_filters)
            (run_dir / f"eval_epoch{epoch + 1:03d}.json").write_text(json.dumps(eval_table, indent=1))
            row.update(summary(eval_table))
            model.train()
        history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        batch0 = 0
        sums = [0.0, 0.0, 0.0, 0]
        if dinfo.is_main:
            _write_history(run_dir, history)
        checkpoint(last, epoch + 1, 0)
    close_loader(loader)
    final = run_dir / "checkpoints" / "final"
    checkpoint(final, tcfg.epochs, 0)
    return RunResult(run_dir, final, history, eval_table, corpora)
