"""Configuration of the Uplift-Upsample Transformer (Einfalt et al., WACV 2023) and its training.

The published settings are named presets, values from the paper and the authors' released configs
(``config/amass_351.json``, ``h36m_351.json``, ``h36m_81.json``): ``amass_351`` (pre-training on AMASS),
``h36m_351``, ``h36m_81``; ``tiny`` is for tests. Fine-tuning from a pre-trained checkpoint applies
``finetune_overrides(preset)`` (official ``h36m_351_pt.json``: 3 epochs, lr 2e-5, weight decay 2e-6).

Vocabulary (the paper's names, used everywhere in the code):
- ``seq_len`` (N): frames a window spans at the full frame rate (351 or 81).
- ``s_out``: the model sees/predicts every s_out-th of those frames, so a window has
  ``n_out = (N - 1) / s_out + 1`` tokens (71 or 41).
- ``s_in``: 2D input is available every s_in-th frame (key frames); a multiple of s_out.
  ``TrainConfig.s_in`` is the tuple of strides drawn per window in training.

Each rule about these settings is checked in one function here (``check_window``, ``check_s_in``,
``check_choice``) that every config type calls.

Recipes (``RECIPES``, ``RECIPE_ITEMS``): where the paper's equations and the authors' released code
differ in what the model learns, each difference is an item with a key of its own in the config that
uses it (``TrainConfig.loss``, ``ModelConfig.qkv_init``, ``RunConfig.placement``, ...); a run's
``recipe`` fills the items it does not set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from schemas.errors import ConfigError

CAMERA_MODES = ("precomputed", "per-window")  # AMASS views: build-time cameras or one drawn per window
CAMERA_RIGS = ("h36m", "3dhp")  # per-window camera pools
PRECISIONS = ("bf16", "fp32")

# Training recipes. The paper's equations and the authors' released code (goldbricklemon/
# uplift-upsample-3dhpe, AMASS-to-3DHPE) differ in items that change what the model learns; a run
# picks one recipe (RunConfig.recipe) and may flip any item on its own. Each item is a key of one
# config: item -> (config holding it, paper value, official-code value). The first value of each
# choice tuple below is the paper's.
LOSSES = ("root-aligned-valid", "raw-all-frames")  # L on root-aligned poses of valid frames | raw prediction
# vs root-relative target, copy-padded frames kept, divided by B*N*J
PLACEMENTS = ("centred", "raw")  # per-window AMASS path centred in the volume | projected as stored
KEYFRAME_DRAWS = ("uniform", "coupled")  # s_in and phase independent | two generators of one seed
TEMPORAL_DROP_PATHS = ("linspace", "released")  # linspace(0, p, depth) | linspace(0, p, d_temp)[:depth]
EPOCH_LENGTHS = ("pass-or-steps", "steps")  # the shorter of a pass and steps_per_epoch | always steps
QKV_INITS = ("fused", "split")  # Glorot over the fused (d, 3d) layer | over each (d, d) of q, k, v
EMA_STARTS = ("copy", "mix")  # first update copies the weights | mixes in 0.1 of the initial ones
MIRRORS = ("volume-centre", "x0")  # world flip about the capture-volume centre | about x = 0
RECIPES = ("paper", "official-code")
RECIPE_ITEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "loss": ("train", LOSSES),
    "placement": ("run", PLACEMENTS),
    "keyframe_draw": ("train", KEYFRAME_DRAWS),
    "temporal_drop_path": ("model", TEMPORAL_DROP_PATHS),
    "epoch_length": ("train", EPOCH_LENGTHS),
    "qkv_init": ("model", QKV_INITS),
    "ema_start": ("train", EMA_STARTS),
    "mirror": ("run", MIRRORS),
    "precision": ("run", PRECISIONS),
}


def recipe_values(recipe: str) -> dict[str, str]:
    """Every item of ``recipe`` ("paper" or "official-code") -> its value."""
    check_choice("recipe", recipe, RECIPES)
    i = RECIPES.index(recipe)
    return {item: choices[i] for item, (_, choices) in RECIPE_ITEMS.items()}


def recipe_overrides(recipe: str, where: str) -> dict[str, str]:
    """The items of ``recipe`` held by config ``where`` ("train", "model" or "run")."""
    return {k: v for k, v in recipe_values(recipe).items() if RECIPE_ITEMS[k][0] == where}

# Keys renamed to the paper's vocabulary, and keys that no longer exist because nothing read them
# (the window stream flips half of every batch, or adds a flipped copy of every window, and always
# copy-pads windows past the sequence ends).
RENAMED_KEYS = {"out_stride": "s_out", "in_strides": "s_in"}
REMOVED_KEYS = ("flip_prob", "edge_padding")


def check_window(seq_len: int, s_out: int) -> None:
    """A window of ``seq_len`` frames at stride ``s_out`` has an odd token count (a centre frame)."""
    if seq_len < 1 or s_out < 1 or (seq_len - 1) % s_out:
        raise ConfigError(f"seq_len - 1 = {seq_len - 1} must be a multiple of s_out {s_out}")
    if ((seq_len - 1) // s_out + 1) % 2 == 0:
        raise ConfigError(f"n_out = {(seq_len - 1) // s_out + 1} must be odd so that the window has a centre frame")


def check_s_in(s_in, s_out: int, context: str = ""):
    """The one rule for input strides: each of ``s_in`` (an int, a tuple or an array of them) is a
    positive multiple of ``s_out``. Returns ``s_in``; ConfigError naming the offenders otherwise."""
    arr = np.asarray(s_in, dtype=np.int64).reshape(-1)
    bad = arr[(arr < max(int(s_out), 1)) | (arr % max(int(s_out), 1) != 0)]
    if len(bad):
        raise ConfigError(f"s_in {sorted(set(bad.tolist()))} must be a positive multiple of s_out {s_out}{context}")
    return s_in


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}")


# Documented range (inclusive) of every numeric setting, by config class and field; a tuple or list
# field's range applies to each of its items. Checked with the types (``check_fields``) in every
# config's ``__post_init__``, so a run config or a checkpoint's meta.json with a value outside its range
# is refused before a model, an optimizer or a loader is built. A new numeric field needs a row here
# (tests/uplift/test_config_ranges.py fails without one).
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "ModelConfig": {
        "num_joints": (1, 128), "seq_len": (1, 4097), "s_out": (1, 64), "d_joint": (1, 1024), "d_temp": (1, 4096),
        "depth_joint": (1, 64), "depth_temp": (1, 64), "num_heads": (1, 64), "mlp_ratio": (0.01, 16.0),
        "drop_path_joint": (0.0, 1.0), "drop_path_temp": (0.0, 1.0), "drop_path_strided": (0.0, 1.0),
        "drop": (0.0, 1.0), "attn_drop": (0.0, 1.0), "strides": (1, 1024), "paddings": (0, 1),
        "masked_temporal_blocks": (0, 64),
    },
    "TrainConfig": {
        "s_in": (1, 4096), "loss_weight_seq": (0.0, 1e3), "loss_weight_center": (0.0, 1e3), "root_joint": (0, 127),
        "lr": (0.0, 10.0), "weight_decay": (0.0, 10.0), "decay_rate": (0.0, 1.0), "ema_decay": (0.0, 1.0),
        "batch_size": (1, 1 << 16), "epochs": (1, 1 << 20), "steps_per_epoch": (1, 1 << 30),
    },
    "RunConfig": {
        "eval_every": (0, 1 << 20), "eval_s_in": (1, 4096), "eval_batch_size": (1, 1 << 16),
        "steps_per_epoch": (0, 1 << 30), "checkpoint_every": (0, 1 << 30), "num_workers": (0, 64),
        "buffer_blocks": (1, 1 << 16), "block_frames": (1, 1 << 16), "seed": (0, (1 << 63) - 1),
        "prefetch_factor": (1, 64), "val_frame_step": (1, 1 << 20),
    },
}
MAX_COLLECTION = 1024  # items in one list / tuple setting (strides, s_in, subjects)
MAX_MODEL_PARAMETERS = 100_000_000  # 400 MB of float32 weights (the N=351 model: ~4 M)
MAX_TEXT = 1024  # characters in one string setting


def _type_ok(value, annotation: str) -> bool:
    """Whether ``value`` fits a field annotation as the configs spell them (``int``, ``float | None``,
    ``tuple[int, ...]``, ``dict``, ...); an annotation not understood here accepts anything."""
    return any(_one_type_ok(value, alt.strip()) for alt in _top_level_split(annotation))


def _top_level_split(annotation: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in annotation:
        depth += (ch == "[") - (ch == "]")
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def _one_type_ok(v, a: str) -> bool:
    if a == "None":
        return v is None
    if a == "bool":
        return isinstance(v, bool)
    if a == "int":
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    if a == "float":
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    if a == "str":
        return isinstance(v, str) and len(v) <= MAX_TEXT
    if a.startswith("tuple[") or a.startswith("list["):
        inner = a[a.index("[") + 1:-1].strip()
        if not isinstance(v, (tuple, list)) or len(v) > MAX_COLLECTION:
            return False
        if inner.endswith(", ...") or a.startswith("list["):  # any length, one item type
            item = inner.removesuffix(", ...").strip()
            return all(_type_ok(x, item) for x in v)
        items = _top_level_split(inner.replace(",", "|")) if "[" not in inner else None
        return items is None or (len(v) == len(items) and all(_type_ok(x, t.strip()) for x, t in zip(v, items)))
    if a in ("list", "tuple"):
        return isinstance(v, (tuple, list)) and len(v) <= MAX_COLLECTION
    if a == "dict" or a.startswith("dict["):
        return isinstance(v, dict) and len(v) <= MAX_COLLECTION
    return True


def _numbers(value):
    """The numbers inside a setting (itself, or the items of a tuple / list, nested)."""
    if isinstance(value, (tuple, list)):
        for x in value:
            yield from _numbers(x)
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        yield value


def check_fields(obj, where: str = "") -> None:
    """Every field of the dataclass ``obj`` has its annotated type and lies within ``RANGES``;
    ConfigError naming the field, the value's type or the range otherwise. Floats must be finite."""
    cls = type(obj).__name__
    ranges = RANGES.get(cls, {})
    for f in fields(obj):
        value = getattr(obj, f.name)
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if not _type_ok(value, annotation):
            raise ConfigError(f"{where}{cls} {f.name} must be {annotation}, got a {type(value).__name__}"
                              + (f" ({value!r})" if isinstance(value, (bool, int, float)) else ""))
        lo, hi = ranges.get(f.name, (None, None))
        for x in _numbers(value):
            if not np.isfinite(float(x)) or (lo is not None and not lo <= x <= hi):
                raise ConfigError(f"{where}{cls} {f.name} = {_short(x)} is outside its documented range "
                                  f"[{lo:g}, {hi:g}]" if lo is not None else f"{where}{cls} {f.name} must be finite")


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def check_keys(kind, given, where: str = "") -> None:
    """Override keys of dataclass ``kind``: a renamed key names its new name, an unknown one is refused."""
    known = {f.name for f in fields(kind)}
    for k in given:
        if RENAMED_KEYS.get(k) in known:
            raise ConfigError(f"{where}{kind.__name__} key {k!r} is now {RENAMED_KEYS[k]!r}")
        if k not in known:
            raise ConfigError(f"{where}unknown {kind.__name__} key {k!r}")


def strided_lengths(n: int, strides: tuple[int, ...], paddings: tuple[tuple[int, int], ...],
                    kernel_size: int = 3) -> tuple[int, ...]:
    """Sequence length entering each strided block, then the final length: ``len == len(strides) + 1``.

    A kernel-``k`` convolution with stride ``s`` and zero padding ``(p0, p1)`` maps ``L`` tokens to
    ``floor((L + p0 + p1 - k) / s) + 1``.
    """
    lengths = [n]
    for s, (p0, p1) in zip(strides, paddings):
        lengths.append((lengths[-1] + p0 + p1 - kernel_size) // s + 1)
    return tuple(lengths)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. Defaults are the N = 351, s_out = 5 setting."""

    num_joints: int = 17
    seq_len: int = 351  # N, frames at full rate
    s_out: int = 5  # the model's output stride
    d_joint: int = 32  # joint token width of the spatial Transformer
    d_temp: int = 384  # pose token width (the paper's text says 348, its released configs 384)
    depth_joint: int = 4  # K_joint
    depth_temp: int = 4  # K_temp
    num_heads: int = 8
    mlp_ratio: float = 2.0
    qkv_bias: bool = True
    drop_path_joint: float = 0.1  # stochastic depth, rising linearly from 0 over the blocks
    drop_path_temp: float = 0.1
    drop_path_strided: float = 0.0  # official configs: DROP_PATH_RATE = [0.1, 0.1, 0.0]
    drop: float = 0.0  # dropout after attention projection / MLP (official: 0)
    attn_drop: float = 0.0
    strides: tuple[int, ...] = (3, 10, 3)  # strided Transformer, r_k
    paddings: tuple[tuple[int, int], ...] = ((0, 0), (0, 0), (0, 0))  # zero padding of each strided conv
    masked_temporal_blocks: int = 1  # first blocks whose keys/values come only from pose (key-frame) tokens
    # Recipe items (RECIPE_ITEMS): the released models' temporal drop-path rates came from
    # linspace(0, drop_path_temp, d_temp)[:depth_temp] (fixed upstream after release); q, k, v as one
    # fused layer or three, each Glorot-initialised on its own (the Keras layers).
    temporal_drop_path: str = "linspace"
    qkv_init: str = "fused"

    def __post_init__(self):
        check_fields(self)
        check_window(self.seq_len, self.s_out)
        check_choice("temporal_drop_path", self.temporal_drop_path, TEMPORAL_DROP_PATHS)
        check_choice("qkv_init", self.qkv_init, QKV_INITS)
        for d in (self.d_joint, self.d_temp):
            if d % self.num_heads:
                raise ConfigError(f"width {d} is not divisible by num_heads {self.num_heads}")
        if len(self.strides) != len(self.paddings):
            raise ConfigError(f"{len(self.strides)} strides but {len(self.paddings)} paddings")
        if any(p0 > 1 or p1 > 1 or p0 < 0 or p1 < 0 for p0, p1 in self.paddings):
            raise ConfigError(f"paddings {self.paddings}: each side must be 0 or 1 for a kernel-3 conv")
        if self.strided_lengths[-1] != 1:
            raise ConfigError(f"strides {self.strides} reduce {self.n_out} tokens to {self.strided_lengths[-1]}, not 1")
        if not 0 <= self.masked_temporal_blocks <= self.depth_temp:
            raise ConfigError(f"masked_temporal_blocks {self.masked_temporal_blocks} not in [0, {self.depth_temp}]")
        if self.approx_parameters > MAX_MODEL_PARAMETERS:
            raise ConfigError(f"a model of about {self.approx_parameters:.3g} parameters is over the limit of "
                              f"{MAX_MODEL_PARAMETERS:.0e} (widths and depths are checked before it is built)")

    @property
    def approx_parameters(self) -> int:
        """An upper estimate of the parameter count, from the widths and depths alone (nothing is built):
        a block of width d holds at most (4 + 4 mlp_ratio) d^2 weights."""
        def block(d):
            return int((4 + 4 * self.mlp_ratio) * d * d + 16 * d)
        tokens = self.n_out + sum(self.strided_lengths[:-1])
        return (self.depth_joint * block(self.d_joint) + (self.depth_temp + len(self.strides)) * block(self.d_temp)
                + self.num_joints * self.d_joint * (self.d_temp + 1) + (tokens + 8) * self.d_temp + 6 * self.num_joints * self.d_temp)

    @property
    def n_out(self) -> int:
        """Tokens per window: ``(N - 1) / s_out + 1``."""
        return (self.seq_len - 1) // self.s_out + 1

    @property
    def strided_lengths(self) -> tuple[int, ...]:
        """Token count entering each strided block, then after the last one (must be 1)."""
        return strided_lengths(self.n_out, self.strides, self.paddings)


@dataclass(frozen=True)
class TrainConfig:
    """Objective, augmentation, optimiser and schedule (official values)."""

    s_in: tuple[int, ...] = (5, 10, 20)  # input strides, one drawn per window during training
    keyframe_random_shift: bool = True  # shift the key-frame grid randomly in training (official)
    loss_weight_seq: float = 0.5
    loss_weight_center: float = 0.5
    root_joint: int = 0  # pelvis in H36M_17
    test_flip: bool = True  # average the prediction with that of the mirrored input at test time
    lr: float = 4e-5
    weight_decay: float = 4e-6  # absolute decoupled decay per step, decays with the lr
    decay_rate: float = 0.99  # per epoch, for both lr and weight decay
    ema_decay: float | None = 0.999  # None disables the EMA copy
    batch_size: int = 512
    epochs: int = 120
    steps_per_epoch: int = 6000
    # Official IN_BATCH_AUGMENT: True = the second half of a batch is the flipped first half; False =
    # flipped copies are separate samples shuffled with the rest (a batch holds batch_size distinct
    # windows and an epoch twice as many samples).
    in_batch_flip: bool = True
    # Recipe items (RECIPE_ITEMS; the first value is the paper's, the second the official code's)
    loss: str = "root-aligned-valid"
    keyframe_draw: str = "uniform"
    epoch_length: str = "pass-or-steps"
    ema_start: str = "copy"

    def __post_init__(self):
        check_fields(self)
        if not self.s_in:
            raise ConfigError("s_in is empty")
        check_choice("loss", self.loss, LOSSES)
        check_choice("keyframe_draw", self.keyframe_draw, KEYFRAME_DRAWS)
        check_choice("epoch_length", self.epoch_length, EPOCH_LENGTHS)
        check_choice("ema_start", self.ema_start, EMA_STARTS)
        if not (0.0 < self.decay_rate <= 1.0):
            raise ConfigError(f"decay_rate {self.decay_rate} not in (0, 1]")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr {self.lr} must be > 0 and weight_decay {self.weight_decay} >= 0")
        if self.ema_decay is not None and not (0.0 < self.ema_decay < 1.0):
            raise ConfigError(f"ema_decay {self.ema_decay} not in (0, 1)")


@dataclass(frozen=True)
class UpliftConfig:
    """A complete named setting: architecture plus training."""

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        check_s_in(self.train.s_in, self.model.s_out)


# N = 351, s_out = 5 -> 71 tokens; strides 3, 10, 3 without padding: 71 -> 23 -> 3 -> 1.
_MODEL_351 = ModelConfig(seq_len=351, s_out=5, strides=(3, 10, 3), paddings=((0, 0), (0, 0), (0, 0)))

H36M_351 = UpliftConfig(
    name="h36m_351",
    model=_MODEL_351,
    # The released 351 config trains without EMA, batch 512, in-batch flip, 120 epochs x 6000 steps.
    train=TrainConfig(s_in=(5, 10, 20), ema_decay=None, batch_size=512, epochs=120, steps_per_epoch=6000),
)

# Pre-training on AMASS (config/amass_351.json): as h36m_351 but 100 epochs; the AMASS corpus is
# meant to be read with per-window cameras (RunConfig.cameras, resolved to "per-window" for this preset).
AMASS_351 = UpliftConfig(
    name="amass_351",
    model=_MODEL_351,
    train=TrainConfig(s_in=(5, 10, 20), ema_decay=None, batch_size=512, epochs=100, steps_per_epoch=6000,
                      lr=4e-5, weight_decay=4e-6, decay_rate=0.99),
)

# N = 81, s_out = 2 -> 41 tokens; strides 4, 4, 3, first conv padded: 41 -> 11 -> 3 -> 1.
H36M_81 = UpliftConfig(
    name="h36m_81",
    model=ModelConfig(seq_len=81, s_out=2, strides=(4, 4, 3), paddings=((1, 1), (0, 0), (0, 0))),
    # IN_BATCH_AUGMENT false: 256 distinct windows a batch, flipped copies shuffled separately.
    train=TrainConfig(s_in=(4, 10, 20), ema_decay=0.999, batch_size=256, in_batch_flip=False),
)

# Small enough for unit tests: N = 17, s_out = 2 -> 9 tokens; 9 -> 3 -> 1.
TINY = UpliftConfig(
    name="tiny",
    model=ModelConfig(seq_len=17, s_out=2, d_joint=8, d_temp=16, depth_joint=1, depth_temp=2,
                      num_heads=2, strides=(3, 3), paddings=((0, 0), (0, 0))),
    train=TrainConfig(s_in=(2, 4), ema_decay=0.9, batch_size=4, steps_per_epoch=2, epochs=2),
)

PRESETS: dict[str, UpliftConfig] = {c.name: c for c in (AMASS_351, H36M_351, H36M_81, TINY)}

# Fine-tuning after pre-training (official config/h36m_351_pt.json): 3 epochs at half the lr and
# weight decay. The authors released no N=81 fine-tuning config; its analogue keeps the same rule
# (3 epochs, lr and weight decay halved) and its EMA, which warms up (optim.ema_decay_at) so that
# a 3-epoch fine-tune evaluates an average of the fine-tuned weights, not of the starting point.
FINETUNE_351 = {"epochs": 3, "lr": 2e-5, "weight_decay": 2e-6}
FINETUNE: dict[str, dict] = {"amass_351": FINETUNE_351, "h36m_351": FINETUNE_351,
                             "h36m_81": {"epochs": 3, "lr": 2e-5, "weight_decay": 2e-6},
                             "tiny": {"lr": 2e-5, "weight_decay": 2e-6}}


def finetune_overrides(name: str) -> dict:
    """TrainConfig overrides applied when a run starts from a pre-trained checkpoint (``--init``)."""
    return dict(FINETUNE.get(name, FINETUNE_351))


def get_preset(name: str, **train_overrides) -> UpliftConfig:
    """The named preset, optionally with some ``TrainConfig`` fields replaced."""
    try:
        cfg = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
    if train_overrides:
        cfg = replace(cfg, train=replace(cfg.train, **train_overrides))
    return cfg


def tuples(d: dict) -> dict:
    """JSON lists back to the tuples the frozen configs use (nested: paddings)."""
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in d.items()}


def _migrate(d: dict) -> dict:
    """Keys as written before the stride rename (checkpoints keep loading): renamed, removed ones dropped."""
    return {RENAMED_KEYS.get(k, k): v for k, v in d.items() if k not in REMOVED_KEYS}


def config_from_dict(d: dict) -> UpliftConfig:
    """Inverse of ``dataclasses.asdict(UpliftConfig)`` (a checkpoint's ``meta.json``), old keys included.

    ``d`` comes from a file: it must be a mapping of ``name``, ``model`` and ``train``, each of known
    keys with values of the right types and ranges (ConfigError otherwise, never a TypeError).
    """
    if not isinstance(d, dict) or not isinstance(d.get("model"), dict) or not isinstance(d.get("train"), dict):
        raise ConfigError("config must be a mapping with 'model' and 'train' mappings")
    if not isinstance(d.get("name"), str) or len(d["name"]) > MAX_TEXT:
        raise ConfigError("config 'name' must be a string")
    model, train = _migrate(d["model"]), _migrate(d["train"])
    check_keys(ModelConfig, model, "model: ")
    check_keys(TrainConfig, train, "train: ")
    return UpliftConfig(name=d["name"], model=ModelConfig(**tuples(model)), train=TrainConfig(**tuples(train)))
