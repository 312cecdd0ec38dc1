"""Checkpoints of a training run: save (atomic directory replace), find, recover, load; RNG state.

A checkpoint is a directory::

    model.safetensors   the trained weights
    ema.safetensors     the EMA copy (when the config keeps one)
    state.pt            optimizer / scheduler / RNG state, data position (epoch, batch), epoch statistics
    meta.json           the resolved UpliftConfig, corpora, init, epoch, batch

``state.pt`` is read with ``torch.load(weights_only=True)`` only. ``save_checkpoint`` replaces a
directory so that a complete checkpoint exists at every moment (a kill leaves ``path`` or its aside
copy ``path.old`` whole); ``recover_checkpoint`` / ``find_checkpoint`` fall back to the aside copy.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from schemas.errors import CheckpointError, ConfigError, one_line
from schemas.files import read_bounded
from uplift.config import UpliftConfig
from uplift.distributed import pick_device
from uplift.model import build_model

log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    model: torch.nn.Module
    ema_model: torch.nn.Module | None
    config: UpliftConfig
    meta: dict
    state: dict | None
    path: Path | None = None  # the checkpoint directory it was loaded from

    def weights_for_eval(self, use_ema: bool = True) -> torch.nn.Module:
        """The module evaluation and inference run: the EMA copy when there is one (and asked for)."""
        return self.ema_model if (use_ema and self.ema_model is not None) else self.model


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(path: Path, model, ema, ucfg: UpliftConfig, meta: dict, state: dict) -> None:
    """Replace the checkpoint directory ``path`` so that a complete checkpoint exists at every moment.

    ``ema``: the EMA copy's module or None. Write the new checkpoint beside the old one (``.tmp``) and
    fsync it, move the old one aside (``.old``), move the new one in, fsync the parent, then delete
    the old one. A kill at any point leaves either ``path`` or ``path.old`` complete.
    """
    path = Path(path)
    tmp, aside = _tmp_dir(path), aside_dir(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_weights(model), str(tmp / "model.safetensors"))
    if ema is not None:
        save_file(_weights(ema), str(tmp / "ema.safetensors"))
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "config": ucfg.model_dump(mode="json")}, indent=1))
    _fsync_tree(tmp)
    if is_checkpoint(path):  # keep an existing aside copy while it is the only complete one
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(path, aside)
    else:
        shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    shutil.rmtree(aside, ignore_errors=True)


def aside_dir(path: Path) -> Path:
    """Where ``save_checkpoint`` keeps the previous checkpoint while the new one moves in."""
    return path.with_name(path.name + ".old")


def _tmp_dir(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def is_checkpoint(path: Path) -> bool:
    """``path`` holds a whole checkpoint (a directory only gets its final or aside name when whole)."""
    return (Path(path) / "model.safetensors").is_file()


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
    if not is_checkpoint(path) and is_checkpoint(aside):
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
            if is_checkpoint(d):
                return d
    raise CheckpointError(p, "no checkpoint (model.safetensors) here or under checkpoints/final|last")


def load_checkpoint(path: str | os.PathLike, device=None, with_state: bool = False) -> Checkpoint:
    """Model (and EMA copy) from a checkpoint dir or a run dir; state only with ``with_state``.

    Every file goes through the bounded reader (``schemas.files``: a regular file within its kind's
    byte limit): ``meta.json`` must hold a valid config (types and documented ranges, the model's
    size bounded before it is built), the safetensors headers must name exactly the model's tensors
    with their shapes before any tensor is read, and the loaded weights must be finite. Any problem
    is a ``CheckpointError`` naming the file.
    """
    p = find_checkpoint(path)
    meta = read_meta(p / "meta.json")
    device = pick_device(device)
    model = _load_model(meta["_config"], p / "model.safetensors", device)
    ema_file = p / "ema.safetensors"
    ema = _load_model(meta["_config"], ema_file, device) if ema_file.exists() or ema_file.is_symlink() else None
    state = _load_state(p / "state.pt", device) if with_state else None
    ucfg = meta.pop("_config")
    return Checkpoint(model, ema, ucfg, meta, state, p)


def read_meta(path: Path) -> dict:
    """``meta.json`` as a dict, its ``config`` checked and resolved (under ``"_config"``)."""
    raw = read_bounded(path, "checkpoint_meta", CheckpointError).data
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(path, f"not valid JSON: {one_line(exc, 200)}") from None
    if not isinstance(meta, dict) or "config" not in meta:
        raise CheckpointError(path, "must be a JSON object with a 'config'")
    try:
        meta["_config"] = UpliftConfig.model_validate(meta["config"])  # earlier key names load too
    except ConfigError as exc:
        raise CheckpointError(path, f"config: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, f"config: {one_line(exc, 200)}") from None
    return meta


MAX_SAFETENSORS_HEADER = 16 << 20  # bytes of a safetensors JSON header (the model's: ~20 KB)


def _safetensors_header(path: Path, data: bytes) -> dict:
    """The JSON header of a safetensors file held in ``data``: an 8-byte little-endian length, then
    that many bytes of JSON, bounded (``MAX_SAFETENSORS_HEADER``) before anything is parsed."""
    if len(data) < 8:
        raise CheckpointError(path, "not a safetensors file (shorter than its 8-byte header length)")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_SAFETENSORS_HEADER or 8 + n > len(data):
        raise CheckpointError(path, f"safetensors header of {n} bytes is over the {MAX_SAFETENSORS_HEADER}-byte "
                                    f"limit or past the end of the {len(data)}-byte file")
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, RecursionError):
        raise CheckpointError(path, "safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def _check_tensors(path: Path, header: dict, expected: dict[str, torch.Tensor]) -> None:
    """The header must name exactly the model's tensors, each with its shape (nothing else is read)."""
    names = set(header)
    if names != set(expected):
        extra, missing = sorted(names - set(expected))[:3], sorted(set(expected) - names)[:3]
        raise CheckpointError(path, f"tensors do not match the model of its meta.json (unexpected: "
                                    f"{[str(x)[:60] for x in extra]}, missing: {missing})")
    for name, t in expected.items():
        info = header[name]
        shape = info.get("shape") if isinstance(info, dict) else None
        if shape != list(t.shape):
            raise CheckpointError(path, f"tensor {name!r} has shape {str(shape)[:80]}, the model expects {list(t.shape)}")


def _load_model(ucfg: UpliftConfig, weights: Path, device: torch.device) -> torch.nn.Module:
    from safetensors.torch import load as load_bytes

    model = build_model(ucfg)  # its size was bounded by the config's checks
    fb = read_bounded(weights, "checkpoint_weights", CheckpointError)
    _check_tensors(weights, _safetensors_header(weights, fb.data), model.state_dict())
    try:
        tensors = load_bytes(fb.data)
    except Exception as exc:  # noqa: BLE001 - safetensors' own checks (offsets, dtypes)
        raise CheckpointError(weights, f"unreadable safetensors: {one_line(exc, 200)}") from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(weights, f"{len(bad)} tensors hold NaN or inf (first {bad[0]!r}); refused")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:  # dtype mismatches the header check cannot see
        raise CheckpointError(weights, f"weights do not fit the model: {one_line(exc, 200)}") from None
    return model.to(device)


def _load_state(path: Path, device: torch.device) -> dict:
    """``state.pt`` (``torch.load(weights_only=True)`` of the bytes of one bounded read)."""
    fb = read_bounded(path, "checkpoint_state", CheckpointError)
    try:
        state = torch.load(io.BytesIO(fb.data), weights_only=True, map_location=device)
    except Exception as exc:  # noqa: BLE001 - torch's unpickler refuses what it does not allow
        raise CheckpointError(path, f"unreadable state: {one_line(exc, 200)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, expected the training state dict")
    return state


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
