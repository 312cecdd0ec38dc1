"""AdamW, the per-epoch exponential decay of learning rate and weight decay, and an EMA of the weights.

The official (TensorFlow Addons) AdamW applies decoupled weight decay as ``p -= wd_t * p`` with
``wd_t = 4e-6 * 0.99^epoch`` and ``lr_t = 4e-5 * 0.99^epoch``. PyTorch's AdamW applies
``p -= lr_t * weight_decay * p``, so with ``weight_decay = wd / lr`` (= 0.1) a single
``ExponentialLR(gamma=0.99)`` scheduler decays both exactly as the official schedule does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import ExponentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from uplift.config import TrainConfig, UpliftConfig


@dataclass
class OptimBundle:
    """What a trainer needs.

    Per step: ``optimizer.step()`` then ``ema.update_parameters(model)`` if ``ema`` is not None.
    Per epoch: ``scheduler.step()`` (decays lr and weight decay by ``decay_rate``).
    Evaluate with ``ema.module`` when present. All three have ``state_dict()`` for checkpoints.
    """

    optimizer: torch.optim.AdamW
    scheduler: ExponentialLR
    ema: AveragedModel | None


def ema_decay_at(decay: float, t: int) -> float:
    """EMA decay of update ``t`` (0-based) with warm-up: ``min(decay, (1 + t) / (10 + t))`` (official)."""
    return min(decay, (1.0 + t) / (10.0 + t))


def _warmup_ema_fn(decay: float, first: int = 0):
    """``multi_avg_fn`` for AveragedModel: ``ema = d_t * ema + (1 - d_t) * w`` with the warm-up decay.

    ``num_averaged`` counts the updates so far (the first call, t = 0, copies the weights), so the
    t-th averaging step uses ``ema_decay_at(decay, t)`` and the schedule survives a resume through
    ``n_averaged``. ``first``: the count the EMA starts from (1 when the initial weights count as
    the first average, see ``make_ema``); update t then uses ``ema_decay_at(decay, t - first)``.
    """

    @torch.no_grad()
    def fn(ema_params, current_params, num_averaged):
        d = ema_decay_at(decay, int(num_averaged) - first)
        torch._foreach_lerp_(ema_params, current_params, 1.0 - d)

    return fn


def make_ema(model: nn.Module, decay: float, warmup: bool = True, start: str = "copy") -> AveragedModel:
    """EMA copy: ``ema = d_t * ema + (1 - d_t) * w`` after each ``update_parameters``, ``d_t`` warming up
    as ``min(decay, (1 + t) / (10 + t))`` (``warmup=False``: constant ``decay``). Buffers are averaged too.

    ``start`` (``TrainConfig.ema_start``): "copy", the first update copies the weights (t = 0 has
    d = 0); "mix", the EMA starts as the model's current (initial) weights and the first update already
    averages, with ``d_0 = min(decay, 0.1)``: 0.1 of the initial weights stay in (the released code).
    """
    first = 1 if start == "mix" else 0
    fn = _warmup_ema_fn(decay, first) if warmup else get_ema_multi_avg_fn(decay)
    ema = AveragedModel(model, multi_avg_fn=fn, use_buffers=True)
    if first:
        ema.n_averaged.fill_(1)  # the deep copy of the initial weights counts: no copy on the first update
    return ema


def make_optimizer(model: nn.Module, cfg: TrainConfig | UpliftConfig) -> OptimBundle:
    """AdamW (lr, absolute weight decay from ``cfg``), per-epoch ``ExponentialLR``, optional EMA."""
    tcfg = cfg.train if isinstance(cfg, UpliftConfig) else cfg
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay / tcfg.lr)
    scheduler = ExponentialLR(optimizer, gamma=tcfg.decay_rate)
    ema = make_ema(model, tcfg.ema_decay, start=tcfg.ema_start) if tcfg.ema_decay is not None else None
    return OptimBundle(optimizer, scheduler, ema)
