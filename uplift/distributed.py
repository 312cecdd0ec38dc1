"""Data-parallel training: process group setup and the global-batch bookkeeping.

``uplift.launch.launch_train(nproc, ...)`` starts the processes; a multi-node job runs
``torchrun ... -m flows.cli train`` on every node instead, and ``train`` joins the process group that
torchrun's environment describes (``setup``). NCCL on CUDA, gloo on CPU.

Same global batch, same samples
    Every rank streams the *same* global batch order (the 1-process order: the window stream is built
    with rank 0 of 1) and keeps rows ``rank::world`` of each batch (``rank_slice``). The union of the
    ranks' rows is exactly the 1-process batch, so a run's samples do not depend on the number of
    processes, and resuming with another N continues the same order. The loss is normalised by the
    global batch's counts (``global_counts``: valid frames and windows summed over ranks), so after
    DistributedDataParallel averages the gradients they equal the 1-process gradient of batch B.
    The price: each rank reads and decodes every block (the loader runs ~100x faster than a GPU
    step consumes windows, see DESIGN.md), instead of a disjoint 1/N of them.

Only rank 0 writes metrics, plots and checkpoints and runs the evaluation; the other ranks wait for
it at their next collective.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from schemas.errors import ConfigError

log = logging.getLogger(__name__)

# Rank 0 evaluates and writes checkpoints while the others wait at a collective: allow for it.
TIMEOUT_ENV = "MOCAP_CORPUS_DIST_TIMEOUT_S"


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False  # setup() created the process group (teardown() destroys it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, ...), if any.

    Returns rank 0 of 1 when not launched by torchrun / ``launch_train``. Idempotent.
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    backend = "nccl" if device_type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "7200")))
    dist.init_process_group(backend=backend, timeout=timeout)
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), owned=True)
    log.info("joined process group: rank %d of %d (%s)", info.rank, info.world_size, backend)
    return info


def teardown() -> None:
    """Leave the process group (after a final barrier), if one is up."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as asked; None: cuda when available, else cpu."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_for(info: DistInfo, device: str | None) -> torch.device:
    """The rank's device: ``cuda:LOCAL_RANK`` when CUDA is used, else what was asked (or cpu)."""
    want = pick_device(device)
    if want.type == "cuda" and info.enabled:
        want = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(want)
    return want


def check_batch(batch_size: int, info: DistInfo) -> None:
    """Every rank needs at least one row of every global batch."""
    if info.enabled and batch_size < info.world_size:
        raise ConfigError(f"global batch {batch_size} is smaller than the {info.world_size} processes")


def rank_slice(batch: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """Rows ``rank::world`` of a global batch (every tensor's first axis is the batch)."""
    if not info.enabled:
        return batch
    return {k: v[info.rank::info.world_size] for k, v in batch.items()}


def global_counts(valid: torch.Tensor, info: DistInfo) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """Per-rank loss normalisers ``(valid frames, windows)`` of the global batch divided by world size.

    With these, each rank's loss is ``world * (its share of the global loss)``; DDP's gradient average
    (sum / world) then gives exactly the gradient of the global batch's loss. ``valid``: (B_r, N).
    """
    if not info.enabled:
        return None, None
    c = torch.stack([valid.float().sum(), torch.tensor(float(valid.shape[0]), device=valid.device)])
    dist.all_reduce(c)
    c = c / info.world_size
    return c[0], c[1]


def global_mean(values: list[float], info: DistInfo, device) -> list[float]:
    """Per-rank loss terms (each ``world x`` its share) -> the global batch's terms, on every rank."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64 if device.type != "mps" else torch.float32, device=device)
    dist.all_reduce(t)
    return (t / info.world_size).tolist()


def wrap_model(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """The module to call in training: DistributedDataParallel(model) when world > 1, else ``model``.

    Checkpoints and evaluation keep using the plain ``model`` (same parameters, no ``module.`` prefix).
    """
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def rng_state_entries(info: DistInfo) -> dict:
    """Checkpoint entries for every rank's CPU RNG state (gathered: a collective on all ranks)."""
    if not info.enabled:
        return {}
    states = [None] * info.world_size
    dist.all_gather_object(states, torch.get_rng_state())
    return {"world_size": torch.tensor(info.world_size), "torch_rng_ranks": torch.stack(states)}


def restore_rank_rng(state: dict, seed: int, info: DistInfo) -> None:
    """On resume: this rank's own RNG state when the run had the same N, else a fresh per-rank seed.

    The sample order never depends on N; only stochastic-depth draws do.
    """
    if not info.enabled:
        return
    ranks = state.get("torch_rng_ranks")
    if ranks is not None and int(state.get("world_size", 0)) == info.world_size:
        torch.set_rng_state(ranks[info.rank].cpu().clone())  # a fresh tensor: a row view segfaults
    else:
        log.warning("resuming with %d processes, the checkpoint had %s: per-rank RNG reseeded",
                    info.world_size, int(state.get("world_size", 1)))
        torch.manual_seed(int(seed) * 1_000_003 + info.rank + 7919 * int(state.get("epoch", 0)))


def seed_rank(seed: int, info: DistInfo) -> None:
    """Distinct stochastic-depth / dropout draws per rank (rank 0 of 1 keeps the 1-process stream)."""
    if info.enabled:
        torch.manual_seed(int(seed) * 1_000_003 + info.rank)


# ----------------------------------------------------------------------------------------------
# Launching N local processes (torchrun's elastic agent, in-process)
# ----------------------------------------------------------------------------------------------

def check_same_corpora(corpora: dict, info: DistInfo) -> None:
    """Every rank resolved the same snapshots (under torchrun each rank opens ``PATH@main`` itself)."""
    if not info.enabled:
        return
    seen = [None] * info.world_size
    dist.all_gather_object(seen, corpora)
    if any(s != seen[0] for s in seen):
        raise ConfigError(f"ranks opened different corpus versions ({seen[0]} vs others): a commit landed while "
                          f"they started; pin PATH@SNAPSHOT or a tag")
