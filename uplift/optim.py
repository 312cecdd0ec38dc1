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


def effective_weight_decay(optimizer: torch.optim.Optimizer) -> float:
    """The absolute decoupled decay per step of the first param group (``lr * weight_decay``)."""
    g = optimizer.param_groups[0]
    return float(g["lr"] * g["weight_decay"])


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """EMA copy: ``ema = decay * ema + (1 - decay) * w`` after each ``update_parameters``; the first
    call copies the weights. Buffers are averaged too."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def make_optimizer(model: nn.Module, cfg: TrainConfig | UpliftConfig) -> OptimBundle:
    """AdamW (lr, absolute weight decay from ``cfg``), per-epoch ``ExponentialLR``, optional EMA."""
    tcfg = cfg.train if isinstance(cfg, UpliftConfig) else cfg
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay / tcfg.lr)
    scheduler = ExponentialLR(optimizer, gamma=tcfg.decay_rate)
    ema = make_ema(model, tcfg.ema_decay) if tcfg.ema_decay is not None else None
    return OptimBundle(optimizer, scheduler, ema)
