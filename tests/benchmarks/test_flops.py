"""The FLOP counter ``benchmarks/bench_model.py`` reports with (benchmark-only code)."""

from __future__ import annotations

import torch

from benchmarks.flops import forward_flops


def test_forward_flops_counts_attention():
    import torch.nn.functional as F

    class Attn(torch.nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q)

    b, h, l, d = 2, 4, 10, 8
    # QK^T and AV: two (l x d) @ (d x l)-sized products per head, 2 FLOPs per multiply-add
    assert forward_flops(Attn(), torch.randn(b, h, l, d)) == 2 * (2 * b * h * l * l * d)
    lin = torch.nn.Linear(16, 32)
    assert forward_flops(lin, torch.randn(5, 16)) == 2 * 5 * 16 * 32
