"""Configuration of the Uplift-Upsample Transformer (Einfalt et al., WACV 2023) and its training.

The published settings are named presets, values from the paper and the authors' released configs
(``config/amass_351.json``, ``h36m_351.json``, ``h36m_81.json``): ``amass_351`` (pre-training on AMASS),
``h36m_351``, ``h36m_81``; ``tiny`` is for tests. Fine-tuning from a pre-trained checkpoint applies
``finetune_overrides(preset)`` (official ``h36m_351_pt.json``: 3 epochs, lr 2e-5, weight decay 2e-6).

Vocabulary (the paper's names, used everywhere in the code):
- ``seq_len`` (N): frames a window spans at the full frame rate (351 or 81).
- ``s_out``: the model sees/predicts every s_out-th of those frames, so a window has
  ``n_out = (N - 1) / s_out + 1`` tokens (71 or 41; ``window_tokens``).
- ``s_in``: 2D input is available every s_in-th frame (key frames); a multiple of s_out.
  ``TrainConfig.s_in`` is the tuple of strides drawn per window in training.

One config system: every setting model (``ModelConfig``, ``TrainConfig``, ``UpliftConfig`` here,
``uplift.run_config.RunConfig``, ``uplift.windows.StreamConfig``) is a frozen pydantic model (``Config``)
that refuses unknown keys, a float where an int belongs, a bool for a number, NaN and inf; each
numeric setting carries its documented range (``Field(ge=, le=)``, ``setting_range``), each choice is a
``Literal``, and the rules between settings are model validators. A problem is one ``ConfigError``
line naming the setting (``config_error``), never pydantic's own report.

Recipes (``RECIPES``, ``RECIPE_ITEMS``): where the paper's equations and the authors' released code
differ in what the model learns, each difference is an item with a key of its own in the config that
uses it (``TrainConfig.loss``, ``ModelConfig.qkv_init``, ``RunConfig.placement``, ...); a run's
``recipe`` fills the items it does not set.
"""

import typing
from typing import Annotated, Any, Literal, NamedTuple, get_args

import annotated_types
import numpy as np
from pydantic import (AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError,
                      model_validator)

from schemas.errors import ConfigError

MAX_COLLECTION = 1024  # items in one list / tuple / mapping setting (strides, s_in, subjects, overrides)
MAX_MODEL_PARAMETERS = 100_000_000  # 400 MB of float32 weights (the N=351 model: ~4 M)
MAX_TEXT = 1024  # characters in one string setting

# -- the choices. The first value of each recipe item's choice is the paper's, the second the official
# code's (the authors' uplift-upsample-3dhpe, AMASS-to-3DHPE).
CameraMode = Literal["precomputed", "per-window"]  # AMASS views: build-time cameras or one drawn per window
CameraRig = Literal["h36m", "3dhp"]  # per-window camera pools
Precision = Literal["bf16", "fp32"]
Loss = Literal["root-aligned-valid", "raw-all-frames"]  # L on root-aligned poses of valid frames | raw prediction
# vs root-relative target, copy-padded frames kept, divided by B*N*J
Placement = Literal["centred", "raw"]  # per-window AMASS path centred in the volume | projected as stored
KeyframeDraw = Literal["uniform", "coupled"]  # s_in and phase independent | two generators of one seed
TemporalDropPath = Literal["linspace", "released"]  # linspace(0, p, depth) | linspace(0, p, d_temp)[:depth]
EpochLength = Literal["pass-or-steps", "steps"]  # the shorter of a pass and steps_per_epoch | always steps
QkvInit = Literal["fused", "split"]  # Glorot over the fused (d, 3d) layer | over each (d, d) of q, k, v
EmaStart = Literal["copy", "mix"]  # first update copies the weights | mixes in 0.1 of the initial ones
Mirror = Literal["volume-centre", "x0"]  # world flip about the capture-volume centre | about x = 0
Recipe = Literal["paper", "official-code"]

CAMERA_MODES, CAMERA_RIGS, PRECISIONS = get_args(CameraMode), get_args(CameraRig), get_args(Precision)
LOSSES, PLACEMENTS, KEYFRAME_DRAWS = get_args(Loss), get_args(Placement), get_args(KeyframeDraw)
TEMPORAL_DROP_PATHS, EPOCH_LENGTHS, QKV_INITS = get_args(TemporalDropPath), get_args(EpochLength), get_args(QkvInit)
EMA_STARTS, MIRRORS, RECIPES = get_args(EmaStart), get_args(Mirror), get_args(Recipe)

# Training recipes: a run picks one (RunConfig.recipe) and may flip any item on its own. Each item is a
# key of one config: item -> (config holding it, its choices).
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


def check_choice(name: str, value, allowed) -> None:
    """A function argument that must be one of ``allowed`` (the configs' fields are ``Literal``s)."""
    if value not in allowed:
        raise ConfigError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}")


def check_s_in(s_in, s_out: int, context: str = ""):
    """The one rule for input strides: each of ``s_in`` (an int, a tuple or an array of them) is a
    positive multiple of ``s_out``. Returns ``s_in``; ConfigError naming the offenders otherwise."""
    arr = np.asarray(s_in, dtype=np.int64).reshape(-1)
    bad = arr[(arr < max(int(s_out), 1)) | (arr % max(int(s_out), 1) != 0)]
    if len(bad):
        raise ConfigError(f"s_in {sorted(set(bad.tolist()))} must be a positive multiple of s_out {s_out}{context}")
    return s_in


def window_tokens(seq_len: int, s_out: int) -> int:
    """``n_out``: tokens of a window of ``seq_len`` frames at stride ``s_out``, ``(N - 1) / s_out + 1``."""
    return (seq_len - 1) // s_out + 1


def window_problem(seq_len: int, s_out: int) -> str | None:
    """Why a window of ``seq_len`` frames at stride ``s_out`` is impossible (None when it is fine): it
    needs a whole number of strides and an odd token count (a centre frame)."""
    if (seq_len - 1) % s_out:
        return f"seq_len - 1 = {seq_len - 1} must be a multiple of s_out {s_out}"
    if window_tokens(seq_len, s_out) % 2 == 0:
        return f"n_out = {window_tokens(seq_len, s_out)} must be odd so that the window has a centre frame"
    return None


# -- the value types. Numbers from numpy count as numbers; a bool is never a number, a float never an int.

def _plain_number(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


Int = Annotated[int, Strict(), BeforeValidator(_plain_number)]
Float = Annotated[float, Strict(), BeforeValidator(_plain_number)]  # an int is a float too
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]  # at most MAX_TEXT characters (Config.model_config)


def within(kind, lo, hi):
    """``kind`` (Int or Float) in its documented range ``[lo, hi]``: the type of a tuple or list item."""
    return Annotated[kind, Field(ge=lo, le=hi)]


def items_of(kind, *, min_length: int = 0):
    """A tuple setting of ``kind`` items (a JSON list becomes a tuple), at most MAX_COLLECTION of them."""
    return Annotated[tuple[kind, ...], Field(min_length=min_length, max_length=MAX_COLLECTION)]


Names = Annotated[list[Text], Field(max_length=MAX_COLLECTION)]
Overrides = Annotated[dict[Text, Any], Field(max_length=MAX_COLLECTION)]


class Config(BaseModel):
    """Base of every settings model: frozen, unknown keys refused, floats finite, strings bounded. Built
    from code (``Cls(...)``, ``cfg.replace(...)``) or from a file's data (``Cls.model_validate``), a bad
    value is a ``ConfigError`` naming the setting."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, str_max_length=MAX_TEXT)

    @model_validator(mode="wrap")
    @classmethod
    def _one_line_errors(cls, data, handler):
        """pydantic's report (types, ranges, choices, unknown keys, field validators) becomes a ConfigError
        here, in the innermost model with a problem; it passes through the models around it unchanged. A
        model's own ``mode="after"`` validators run outside this one: they raise ConfigError themselves."""
        try:
            return handler(data)
        except ValidationError as exc:
            raise config_error(exc, cls) from None

    def replace(self, **changes):
        """A copy with ``changes``, checked like a new one."""
        return type(self)(**{**dict(self), **changes})


class Range(NamedTuple):
    """A setting's documented range; ``str``: ``[1, 64]``, ``(0, 1]`` (an open end excludes its bound)."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def __str__(self) -> str:
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


def setting_range(model: type[BaseModel], loc: tuple | str) -> Range | None:
    """The documented range of the setting at ``loc`` of ``model`` (``"lr"``, ``("model", "d_temp")``;
    a tuple setting's range is that of each item); None for a setting without one."""
    field = None
    for part in (loc,) if isinstance(loc, str) else loc:
        fields = getattr(model, "model_fields", {})
        if isinstance(part, str) and part in fields:
            field = fields[part]
            model = field.annotation
    if field is None:
        return None
    lo = hi = None
    lo_open = hi_open = False
    for m in _constraints(field.metadata, field.annotation):
        if isinstance(m, (annotated_types.Ge, annotated_types.Gt)):
            lo, lo_open = getattr(m, "ge", getattr(m, "gt", None)), isinstance(m, annotated_types.Gt)
        elif isinstance(m, (annotated_types.Le, annotated_types.Lt)):
            hi, hi_open = getattr(m, "le", getattr(m, "lt", None)), isinstance(m, annotated_types.Lt)
    return None if lo is None or hi is None else Range(lo, hi, lo_open, hi_open)


def _constraints(metadata, annotation):
    """The constraint objects of a field: its own, then those inside its (Annotated, tuple, Optional) type."""
    for m in metadata:
        yield from getattr(m, "metadata", [m])  # a Field(...) inside Annotated holds its constraints
    if typing.get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        yield from _constraints(meta, base)
    else:
        for arg in get_args(annotation):
            if arg is not Ellipsis and not isinstance(arg, str):
                yield from _constraints([], arg)


_TYPE_NAMES = {"int_type": "int", "bool_type": "bool", "float_type": "float", "string_type": "str",
               "tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def config_error(exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """pydantic's report on ``model`` as one line naming the setting (the first problem, and how many more)."""
    errors = exc.errors(include_url=False)
    text = _problem(errors[0], model)
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ConfigError(f"{text}{more}")


def _problem(err: dict, model: type[BaseModel]) -> str:
    loc = err["loc"]
    names = [p for p in loc if isinstance(p, str)]
    indices = [str(p) for p in loc if isinstance(p, int)]
    item = f" (item {', '.join(indices)})" if indices else ""
    where = " ".join([model.__name__, ".".join(names)]).strip()
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        owner = " ".join([model.__name__, ".".join(str(p) for p in loc[:-1])]).strip()
        return f"unknown {owner} key {_short(loc[-1])}"
    if kind in _TYPE_NAMES:
        shown = f" ({_short(value)})" if isinstance(value, (bool, int, float, str)) else ""
        return f"{where} must be {_TYPE_NAMES[kind]}, got a {type(value).__name__}{shown}{item}"
    if kind == "literal_error":
        return f"{where} must be {err['ctx']['expected']}, got {_short(value)}"
    if kind in _BOUNDS:
        rng = setting_range(model, loc)
        limit = f"its documented range {rng}" if rng else err["msg"].lower()
        return f"{where} = {_short(value)} is outside {limit}{item}"
    if kind == "finite_number":
        return f"{where} must be finite{item}"
    if kind in ("too_long", "string_too_long"):
        return f"{where} is too long: {err['msg'].lower().removeprefix('input should have ')}"
    if kind == "missing":
        return f"{where} is missing"
    if kind == "too_short":
        return f"{where} is empty"
    if kind == "value_error":
        return f"{where}: {err['ctx']['error']}"
    return f"{where}: {err['msg']}"


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


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


class ModelConfig(Config):
    """Architecture. Defaults are the N = 351, s_out = 5 setting."""

    num_joints: Int = Field(17, ge=1, le=128)
    seq_len: Int = Field(351, ge=1, le=4097)  # N, frames at full rate
    s_out: Int = Field(5, ge=1, le=64, validation_alias=AliasChoices("s_out", "out_stride"))  # the output stride
    d_joint: Int = Field(32, ge=1, le=1024)  # joint token width of the spatial Transformer
    d_temp: Int = Field(384, ge=1, le=4096)  # pose token width (the paper's text says 348, its configs 384)
    depth_joint: Int = Field(4, ge=1, le=64)  # K_joint
    depth_temp: Int = Field(4, ge=1, le=64)  # K_temp
    num_heads: Int = Field(8, ge=1, le=64)
    mlp_ratio: Float = Field(2.0, ge=0.01, le=16.0)
    qkv_bias: Bool = True
    drop_path_joint: Float = Field(0.1, ge=0.0, le=1.0)  # stochastic depth, rising linearly from 0 over the blocks
    drop_path_temp: Float = Field(0.1, ge=0.0, le=1.0)
    drop_path_strided: Float = Field(0.0, ge=0.0, le=1.0)  # official configs: DROP_PATH_RATE = [0.1, 0.1, 0.0]
    drop: Float = Field(0.0, ge=0.0, le=1.0)  # dropout after attention projection / MLP (official: 0)
    attn_drop: Float = Field(0.0, ge=0.0, le=1.0)
    strides: items_of(within(Int, 1, 1024)) = (3, 10, 3)  # strided Transformer, r_k
    # zero padding (p0, p1) of each strided conv: 0 or 1 a side for a kernel-3 conv
    paddings: items_of(tuple[within(Int, 0, 1), within(Int, 0, 1)]) = ((0, 0), (0, 0), (0, 0))
    masked_temporal_blocks: Int = Field(1, ge=0, le=64)  # first blocks whose keys/values come only from key frames
    # Recipe items (RECIPE_ITEMS): the released models' temporal drop-path rates came from
    # linspace(0, drop_path_temp, d_temp)[:depth_temp] (fixed upstream after release); q, k, v as one
    # fused layer or three, each Glorot-initialised on its own (the Keras layers).
    temporal_drop_path: TemporalDropPath = "linspace"
    qkv_init: QkvInit = "fused"

    @model_validator(mode="after")
    def _buildable(self):
        problem = window_problem(self.seq_len, self.s_out)
        if problem:
            raise ConfigError(problem)
        for d in (self.d_joint, self.d_temp):
            if d % self.num_heads:
                raise ConfigError(f"width {d} is not divisible by num_heads {self.num_heads}")
        if len(self.strides) != len(self.paddings):
            raise ConfigError(f"{len(self.strides)} strides but {len(self.paddings)} paddings")
        if self.strided_lengths[-1] != 1:
            raise ConfigError(f"strides {self.strides} reduce {self.n_out} tokens to {self.strided_lengths[-1]}, not 1")
        if self.masked_temporal_blocks > self.depth_temp:
            raise ConfigError(f"masked_temporal_blocks {self.masked_temporal_blocks} not in [0, {self.depth_temp}]")
        if self.approx_parameters > MAX_MODEL_PARAMETERS:
            raise ConfigError(f"a model of about {self.approx_parameters:.3g} parameters is over the limit of "
                             f"{MAX_MODEL_PARAMETERS:.0e} (widths and depths are checked before it is built)")
        return self

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
        return window_tokens(self.seq_len, self.s_out)

    @property
    def strided_lengths(self) -> tuple[int, ...]:
        """Token count entering each strided block, then after the last one (must be 1)."""
        return strided_lengths(self.n_out, self.strides, self.paddings)


class TrainConfig(Config):
    """Objective, augmentation, optimiser and schedule (official values)."""

    # input strides, one drawn per window during training
    s_in: items_of(within(Int, 1, 4096), min_length=1) = Field(
        (5, 10, 20), validation_alias=AliasChoices("s_in", "in_strides"))
    keyframe_random_shift: Bool = True  # shift the key-frame grid randomly in training (official)
    loss_weight_seq: Float = Field(0.5, ge=0.0, le=1e3)
    loss_weight_center: Float = Field(0.5, ge=0.0, le=1e3)
    root_joint: Int = Field(0, ge=0, le=127)  # pelvis in H36M_17
    test_flip: Bool = True  # average the prediction with that of the mirrored input at test time
    lr: Float = Field(4e-5, gt=0.0, le=10.0)
    weight_decay: Float = Field(4e-6, ge=0.0, le=10.0)  # absolute decoupled decay per step, decays with the lr
    decay_rate: Float = Field(0.99, gt=0.0, le=1.0)  # per epoch, for both lr and weight decay
    ema_decay: Annotated[Float, Field(gt=0.0, lt=1.0)] | None = 0.999  # None disables the EMA copy
    batch_size: Int = Field(512, ge=1, le=1 << 16)
    epochs: Int = Field(120, ge=1, le=1 << 20)
    steps_per_epoch: Int = Field(6000, ge=1, le=1 << 30)
    # Official IN_BATCH_AUGMENT: True = the second half of a batch is the flipped first half; False =
    # flipped copies are separate samples shuffled with the rest (a batch holds batch_size distinct
    # windows and an epoch twice as many samples).
    in_batch_flip: Bool = True
    # Recipe items (RECIPE_ITEMS; the first value is the paper's, the second the official code's)
    loss: Loss = "root-aligned-valid"
    keyframe_draw: KeyframeDraw = "uniform"
    epoch_length: EpochLength = "pass-or-steps"
    ema_start: EmaStart = "copy"


# Keys that no longer exist because nothing read them (the window stream flips half of every batch, or
# adds a flipped copy of every window, and always copy-pads windows past the sequence ends): dropped from
# the train section of a stored UpliftConfig (a checkpoint's meta.json), refused anywhere else. Renamed
# keys are the fields' validation aliases (``out_stride`` is ``s_out``, ``in_strides`` is ``s_in``).
REMOVED_TRAIN_KEYS = ("flip_prob", "edge_padding")


def old_names(model: type[BaseModel]) -> dict[str, str]:
    """The keys ``model`` still reads under an earlier name: old name -> field name."""
    return {alias: name for name, f in model.model_fields.items() if isinstance(f.validation_alias, AliasChoices)
            for alias in f.validation_alias.choices if alias != name}


class UpliftConfig(Config):
    """A complete named setting: architecture plus training (a checkpoint's ``meta.json`` ``config``)."""

    name: Text
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _without_removed_keys(cls, data):
        train = data.get("train") if isinstance(data, dict) else None
        if isinstance(train, dict) and any(k in train for k in REMOVED_TRAIN_KEYS):
            data = {**data, "train": {k: v for k, v in train.items() if k not in REMOVED_TRAIN_KEYS}}
        return data

    @model_validator(mode="after")
    def _strides_fit(self):
        check_s_in(self.train.s_in, self.model.s_out)
        return self


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
    except (KeyError, TypeError):
        raise ConfigError(f"unknown preset {_short(name)}; known: {sorted(PRESETS)}") from None
    if train_overrides:
        cfg = cfg.replace(train=cfg.train.replace(**train_overrides))
    return cfg
