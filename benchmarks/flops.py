"""Forward FLOPs of a model with ``torch.utils.flop_counter``.

Convention (torch's): one multiply-add = 2 FLOPs; only matrix products, convolutions and attention
are counted (LayerNorm, softmax, activations and adds are not). PyTorch 2.13 has no formula for the
CPU fused attention kernel (``_scaled_dot_product_flash_attention_for_cpu``), so it would count 0;
``forward_flops`` registers the same formula torch uses for the CUDA kernels.
"""

from __future__ import annotations

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

_registered = False


def _register_cpu_sdpa() -> None:
    global _registered
    if _registered:
        return
    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if op.default not in flop_counter.flop_registry:  # a later torch may ship it

        @flop_counter.register_flop_formula(op)
        def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    _registered = True


def forward_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs (2 per multiply-add) of one ``model(*inputs)`` call under ``torch.no_grad``."""
    _register_cpu_sdpa()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return int(counter.get_total_flops())
