"""The Uplift-Upsample Transformer (Einfalt, Ludwig, Lienhart, WACV 2023) in PyTorch.

Input: a window of ``n_out`` frames (every s_out-th frame of N) of normalised 2D poses ``(B, n_out, J, 2)``
and a key-frame mask ``(B, n_out)`` (True where 2D input exists, i.e. every s_in-th frame).

1. Spatial (joint-wise) Transformer, run on key frames only (gathered, then scattered back): linear
   2 -> d_joint, joint positional embedding, K_joint pre-norm ViT blocks (GELU), LayerNorm, flatten
   ``J * d_joint`` -> linear -> d_temp.
2. Temporal (pose-wise) Transformer: pose tokens at key frames, one learnable upsampling token
   elsewhere, temporal positional embedding, K_temp pre-norm blocks (ReLU); in the first
   ``masked_temporal_blocks`` blocks keys/values come only from key frames. A linear head gives the
   3D sequence ``(B, n_out, J, 3)``.
3. Strided Transformer: blocks whose MLP is a 1x1 conv (d -> 2d) and a kernel-3 conv with stride r_k
   (2d -> d); the residual is subsampled with the same stride (the official max-pool of size 1);
   a positional embedding per block. Reduces the tokens to one; a linear head gives the centre pose
   ``(B, J, 3)``.

Layer composition follows the official TensorFlow model (goldbricklemon/uplift-upsample-3dhpe), so
parameter counts match the paper's Table 4 (10.39 M / 10.36 M); weights are initialised as Keras
does (Glorot-uniform kernels, zero biases, truncated-normal(0.02) embeddings).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from uplift.config import ModelConfig, UpliftConfig


class UpliftOutput(NamedTuple):
    seq: torch.Tensor  # (B, n_out, J, 3) 3D poses for every window token
    center: torch.Tensor  # (B, J, 3) 3D pose of the centre frame from the strided Transformer


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample, rescale the kept ones by 1/keep."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


# CUDA launches attention kernels with batch x heads in a grid dimension limited to 65535 blocks
# (bf16 SDPA at 1024 windows x 71 key frames x 8 heads failed with "invalid argument"): larger
# batches run in chunks of at most this many batch x heads.
SDPA_MAX_BATCH_HEADS = 65535


def sdpa_chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                 dropout_p: float = 0.0, max_batch_heads: int | None = None) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` on ``(B, H, L, D)`` in batch chunks of ``B_c * H <= max_batch_heads``."""
    limit = SDPA_MAX_BATCH_HEADS if max_batch_heads is None else max_batch_heads
    b, h = q.shape[:2]
    step = max(1, limit // h)
    if b <= step:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    outs = []
    for i in range(0, b, step):
        m = None if mask is None else mask[i:i + step]
        outs.append(F.scaled_dot_product_attention(q[i:i + step], k[i:i + step], v[i:i + step], attn_mask=m,
                                                   dropout_p=dropout_p))
    return torch.cat(outs)


class Attention(nn.Module):
    """Multi-head self-attention with fused qkv (same parameters as separate q, k, v layers)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, C); key_mask: (B, L) bool, True for tokens that may be attended to."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        y = sdpa_chunked(q, k, v, mask, self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(y.transpose(1, 2).reshape(b, n, c)))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: type[nn.Module], drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm Transformer block: ``x + DP(Attn(LN(x)))``, then ``x + DP(MLP(LN(x)))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float,
                 act: type[nn.Module], drop: float = 0.0, attn_drop: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act, drop)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), key_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class StridedBlock(nn.Module):
    """Pre-norm attention, then a strided conv MLP; the residual is subsampled with the same stride.

    Maps ``(B, L, C)`` to ``(B, L_out, C)`` with ``L_out = (L + p0 + p1 - 3) // stride + 1``. Output
    token ``i`` is centred on input token ``i * stride + 1 - p0``, which is the residual it gets.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float,
                 stride: int, padding: tuple[int, int], drop: float = 0.0, attn_drop: float = 0.0):
        super().__init__()
        self.stride = stride
        self.padding = tuple(padding)
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.conv1 = nn.Conv1d(dim, hidden, kernel_size=1)
        self.conv2 = nn.Conv1d(hidden, dim, kernel_size=3, stride=stride)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        z = self.drop(F.relu(self.conv1(self.norm2(x).transpose(1, 2))))
        z = self.drop(self.conv2(F.pad(z, self.padding))).transpose(1, 2)
        start = 1 - self.padding[0]
        residual = x[:, start::self.stride][:, : z.shape[1]]
        return residual + self.drop_path(z)


def _trunc_normal(*shape: int) -> nn.Parameter:
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(*shape), std=0.02, a=-0.04, b=0.04))


class SpatialTransformer(nn.Module):
    """Per-frame joint Transformer: ``(F, J, 2)`` -> pose embedding ``(F, d_temp)``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dpr = torch.linspace(0, cfg.drop_path_joint, cfg.depth_joint).tolist()
        self.embed = nn.Linear(2, cfg.d_joint)
        self.pos = _trunc_normal(cfg.num_joints, cfg.d_joint)
        self.drop = nn.Dropout(cfg.drop)
        self.blocks = nn.ModuleList(
            Block(cfg.d_joint, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, dpr[i], nn.GELU, cfg.drop, cfg.attn_drop)
            for i in range(cfg.depth_joint))
        self.norm = nn.LayerNorm(cfg.d_joint, eps=1e-6)
        self.to_temporal = nn.Linear(cfg.num_joints * cfg.d_joint, cfg.d_temp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(x) + self.pos)
        for blk in self.blocks:
            x = blk(x)
        return self.to_temporal(self.norm(x).flatten(1))


class UpliftUpsampleTransformer(nn.Module):
    """See the module docstring. ``forward(x2d (B, n_out, J, 2), keyframes (B, n_out) bool) -> UpliftOutput``.

    Every window needs at least one key frame (normally its centre). ``spatial_on_all_frames = True``
    runs the spatial Transformer on every frame and discards the non-key ones, as the official code
    does; results are identical in eval mode and it exists only to measure the saving.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.spatial_on_all_frames = False
        # Static shapes for torch.compile / CUDA graphs: the key-frame gather returns exactly
        # ``B * static_keyframes`` rows (padding repeats a dummy row), so its size does not vary with
        # the per-window s_in draw. Set it to the most key frames a window can have (``max_keyframes``).
        self.static_keyframes: int | None = None
        n, d, j = cfg.n_out, cfg.d_temp, cfg.num_joints
        self.spatial = SpatialTransformer(cfg)
        self.upsample_token = _trunc_normal(d)
        self.temporal_pos = _trunc_normal(n, d)
        dpr = temporal_drop_path_rates(cfg)
        self.temporal_blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, dpr[i], nn.ReLU, cfg.drop, cfg.attn_drop)
            for i in range(cfg.depth_temp))
        self.head_seq = nn.Linear(d, 3 * j)
        lengths = cfg.strided_lengths
        dpr = torch.linspace(0, cfg.drop_path_strided, len(cfg.strides)).tolist()
        self.strided_pos = nn.ParameterList(_trunc_normal(lengths[i], d) for i in range(len(cfg.strides)))
        self.strided_blocks = nn.ModuleList(
            StridedBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, dpr[i], s, p, cfg.drop, cfg.attn_drop)
            for i, (s, p) in enumerate(zip(cfg.strides, cfg.paddings)))
        self.head_center = nn.Linear(d, 3 * j)
        self.apply(_init_weights)
        if cfg.qkv_init == "split":
            for m in self.modules():
                if isinstance(m, Attention):
                    split_qkv_init(m.qkv)

    def pose_tokens(self, x2d: torch.Tensor, keyframes: torch.Tensor) -> torch.Tensor:
        """Pose embeddings at key frames, the upsampling token elsewhere: ``(B, n_out, d_temp)``."""
        b, n, j, _ = x2d.shape
        flat_kf = keyframes.reshape(b * n)
        flat_x = x2d.reshape(b * n, j, 2)
        if self.spatial_on_all_frames:
            emb = self.spatial(flat_x)
        elif self.static_keyframes is not None:
            # nonzero_static: fixed-size index (no host sync); padded entries point at a dummy row b*n
            # whose embedding is dropped.
            idx = torch.nonzero_static(flat_kf, size=b * self.static_keyframes, fill_value=b * n).squeeze(1)
            padded = torch.cat([flat_x, flat_x.new_zeros(1, j, 2)])
            feats = self.spatial(padded.index_select(0, idx))
            emb = feats.new_zeros(b * n + 1, feats.shape[-1]).index_copy(0, idx, feats)[: b * n]
        else:
            # Gather key frames, embed them, scatter back: s_in / s_out times less spatial work.
            idx = flat_kf.nonzero(as_tuple=True)[0]
            feats = self.spatial(flat_x.index_select(0, idx))
            emb = feats.new_zeros(b * n, feats.shape[-1]).index_copy(0, idx, feats)
        tokens = torch.where(flat_kf[:, None], emb, self.upsample_token.to(emb.dtype))
        return tokens.reshape(b, n, -1)

    def forward(self, x2d: torch.Tensor, keyframes: torch.Tensor) -> UpliftOutput:
        b, n, j, _ = x2d.shape
        if n != self.cfg.n_out or j != self.cfg.num_joints:
            raise ValueError(f"expected (B, {self.cfg.n_out}, {self.cfg.num_joints}, 2), got {tuple(x2d.shape)}")
        keyframes = keyframes.to(torch.bool)
        x = self.pose_tokens(x2d, keyframes) + self.temporal_pos
        for i, blk in enumerate(self.temporal_blocks):
            x = blk(x, keyframes if i < self.cfg.masked_temporal_blocks else None)
        seq = _fp32_head(self.head_seq, x).reshape(b, n, j, 3)
        for pos, blk in zip(self.strided_pos, self.strided_blocks):
            x = blk(x + pos)
        center = _fp32_head(self.head_center, x[:, 0]).reshape(b, j, 3)
        return UpliftOutput(seq, center)


def temporal_drop_path_rates(cfg: ModelConfig) -> list[float]:
    """Stochastic-depth rate of each temporal block: ``linspace(0, drop_path_temp, depth_temp)``, or
    with ``temporal_drop_path = "released"`` the rates the released models were trained with,
    ``linspace(0, drop_path_temp, d_temp)[:depth_temp]`` (about [0, 2.6e-4, 5.2e-4, 7.8e-4]; the
    authors' code spaced the rates over the width before a later fix)."""
    n = cfg.d_temp if cfg.temporal_drop_path == "released" else cfg.depth_temp
    return torch.linspace(0, cfg.drop_path_temp, n)[: cfg.depth_temp].tolist()


def split_qkv_init(qkv: nn.Linear) -> None:
    """Glorot-uniform on each ``(d, d)`` third of a fused ``(3d, d)`` q/k/v layer, as three separate
    Keras layers are initialised (bound ``sqrt(6 / 2d)``; one fused layer gets ``sqrt(6 / 4d)``)."""
    with torch.no_grad():
        for w in qkv.weight.chunk(3, dim=0):
            nn.init.xavier_uniform_(w)


def max_keyframes(n_out: int, s_out: int, s_in: int) -> int:
    """Most key frames a window of ``n_out`` tokens can hold for key-frame stride ``s_in`` (any phase)."""
    m = s_in // s_out
    return -(-n_out // m)


def _fp32_head(head: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """Output head in fp32 even under autocast: a bf16 head rounds metre-scale outputs to 2-4 mm steps."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return head(x.float())


def _init_weights(m: nn.Module) -> None:
    # Keras defaults of the official model: Glorot-uniform kernels, zero biases.
    if isinstance(m, (nn.Linear, nn.Conv1d)):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def build_model(cfg: ModelConfig | UpliftConfig, seed: int | None = None) -> UpliftUpsampleTransformer:
    """The model for ``cfg``; ``seed`` makes the initial weights reproducible without touching global RNG."""
    mcfg = cfg.model if isinstance(cfg, UpliftConfig) else cfg
    if seed is None:
        return UpliftUpsampleTransformer(mcfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UpliftUpsampleTransformer(mcfg)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
