"""A training run's settings (``RunConfig``), the record a run dir keeps of them (``RunRecord``, its
``config.json``), and the one loader: ``load_run_config(preset name | JSON / TOML / YAML file | a run's
config.json, overrides)``.

A run config names a preset (``uplift.config``) and overrides some of its ``TrainConfig`` / ``ModelConfig``
settings; the recipe fills the items it does not set. Every value is checked when the config is made
(types, documented ranges, the model's size), so a bad file fails here, in one line naming the file,
before any work starts.
"""

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from schemas.errors import ConfigError, ConfigFileError
from schemas.files import read_text_bounded
from uplift import amass_split
from uplift.config import (PRESETS, Bool, CameraMode, CameraRig, Config, Int, Mirror, ModelConfig, Names,
                           Overrides, Placement, Precision, Recipe, RECIPE_ITEMS, Text, TrainConfig, UpliftConfig,
                           finetune_overrides, get_preset, old_names, recipe_overrides, recipe_values, within)


class RunConfig(Config):
    """Everything a run needs besides the corpora. Load with ``load_run_config(path_or_preset)``."""

    preset: Text = "tiny"  # uplift.config preset: amass_351, h36m_351, h36m_81, tiny
    train: Overrides = {}  # TrainConfig overrides, e.g. {"epochs": 3}
    model: Overrides = {}  # ModelConfig overrides
    finetune: Bool | None = None  # None: apply uplift.config.finetune_overrides when starting from --init
    train_split: Text | None = "train"
    train_subjects: Names | None = None
    eval_split: Text | None = "test"
    eval_subjects: Names | None = None
    eval_every: Int = Field(1, ge=0, le=1 << 20)  # epochs; 0 disables evaluation during training
    eval_s_in: Annotated[list[within(Int, 1, 4096)], Field(max_length=1024)] | None = None  # default: train.s_in
    eval_batch_size: Int = Field(256, ge=1, le=1 << 16)
    # None: the train config's; 0: a full pass over the corpus
    steps_per_epoch: within(Int, 0, 1 << 30) | None = None
    checkpoint_every: Int = Field(0, ge=0, le=1 << 30)  # also checkpoint every k steps inside an epoch (0: epoch ends)
    num_workers: Int = Field(0, ge=0, le=64)
    # blocks shuffled together (memory ~ buffer_blocks * (block_frames + N) frames)
    buffer_blocks: Int = Field(512, ge=1, le=1 << 16)
    block_frames: Int = Field(256, ge=1, le=1 << 16)
    seed: Int = Field(0, ge=0, le=(1 << 63) - 1)
    device: Text | None = None  # None: cuda if available else cpu
    # AMASS views: "precomputed" (the corpus's build-time cameras) or "per-window" (a camera drawn
    # from the rig's pool per window and epoch, projected on the fly); None: per-window for the
    # amass_* presets, precomputed otherwise. H36M detections (cpn, gt) always keep their views.
    cameras: CameraMode | None = None
    camera_rig: CameraRig | None = None  # per-window pool: "h36m" (28 cameras) or "3dhp" (14); None: each view's rig
    eval_precision: Precision = "fp32"  # evaluation: fp32 unless "bf16" is asked for
    compile: Text | None = None  # torch.compile mode for training ("default", "max-autotune", ...); None: eager
    prefetch_factor: Int = Field(4, ge=1, le=64)  # batches each DataLoader worker keeps ready
    # The training recipe (uplift.config.RECIPE_ITEMS): "official-code" (the authors' released code,
    # item by item: the default, see README "Training like the paper") or "paper" (the paper's
    # equations). Every item is also a key of its own that overrides the recipe: here (placement,
    # mirror, precision; None: the recipe's) or in ``train`` / ``model`` (loss, keyframe_draw,
    # epoch_length, ema_start / temporal_drop_path, qkv_init).
    recipe: Recipe = "official-code"
    placement: Placement | None = None  # per-window AMASS windows: "centred" in the volume | "raw" as stored
    mirror: Mirror | None = None  # per-window flips: about the volume centre's x | about x = 0
    precision: Precision | None = None  # training autocast on CUDA: "bf16" | "fp32" (heads and losses always fp32)
    # AMASS split by sub-dataset (uplift.amass_split): None = the preset's (the authors' 14 / 3
    # datasets for amass_* presets; every dataset for training and none held out otherwise);
    # ["*"] for training = every dataset not held out.
    amass_train_datasets: Names | None = None
    amass_val_datasets: Names | None = None
    # validation window centres every k frames (None: s_out); a multiple of s_out
    val_frame_step: within(Int, 1, 1 << 20) | None = None
    keep_best: Bool = True  # checkpoints/best: the weights of the best validation MPJPE

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str) -> str:
        get_preset(name)  # ConfigError naming the presets
        return name

    @field_validator("train", "model")
    @classmethod
    def _current_names(cls, overrides: dict, info) -> dict:
        """An override under a key's earlier name is refused with its new name (checkpoints still load them)."""
        kind = TrainConfig if info.field_name == "train" else ModelConfig
        for old, new in old_names(kind).items():
            if old in overrides:
                raise ValueError(f"{kind.__name__} key {old!r} is now {new!r}")
        return overrides

    @model_validator(mode="after")
    def _resolves(self):
        self.uplift_config()  # the preset with its overrides: every value checked now
        return self

    def recipe_items(self) -> dict[str, str]:
        """Every recipe item's value for this run: the key's own value where given, else the recipe's."""
        out = recipe_values(self.recipe)
        for item, (where, _) in RECIPE_ITEMS.items():
            given = getattr(self, item) if where == "run" else (self.train if where == "train" else self.model).get(item)
            if given is not None:
                out[item] = given
        return out

    def amass_lists(self) -> tuple[list[str], list[str]]:
        """``(training, validation)`` AMASS sub-dataset lists (see ``amass_train_datasets``)."""
        official = self.preset.startswith("amass")
        tr = self.amass_train_datasets
        val = self.amass_val_datasets
        if tr is None:
            tr = list(amass_split.OFFICIAL_TRAIN) if official else [amass_split.ALL_OTHERS]
        if val is None:
            val = list(amass_split.OFFICIAL_VALIDATION) if official else []
        return list(tr), list(val)

    @property
    def camera_mode(self) -> str:
        """``cameras`` resolved: per-window for the AMASS pre-training presets unless set."""
        if self.cameras is not None:
            return self.cameras
        return "per-window" if self.preset.startswith("amass") else "precomputed"

    def uplift_config(self, finetuning: bool = False) -> UpliftConfig:
        """The preset with the recipe's items, the fine-tuning values (when ``finetuning`` and
        ``finetune`` is None, or ``finetune``) and this run's overrides, in that order."""
        base = get_preset(self.preset)
        tr = {**recipe_overrides(self.recipe, "train"), **self.train}
        if finetuning if self.finetune is None else self.finetune:
            tr = {**finetune_overrides(self.preset), **tr}
        model = base.model.replace(**{**recipe_overrides(self.recipe, "model"), **self.model})
        return base.replace(model=model, train=base.train.replace(**tr))

    def with_overrides(self, overrides: dict | None) -> "RunConfig":
        """This config with ``overrides`` (a flow's parameter): a RunConfig setting by its name, any other
        key a TrainConfig override (``{"epochs": 1, "steps_per_epoch": 2}``)."""
        if not overrides:
            return self
        own = {k: v for k, v in overrides.items() if k in RunConfig.model_fields}
        train = {k: v for k, v in overrides.items() if k not in RunConfig.model_fields}
        if train:
            own["train"] = {**self.train, **train}
        return self.replace(**own)


class RecipeRecord(Config):
    """The recipe of a run and the value each of its items took."""

    name: Recipe
    items: dict[Text, Text]


class RunRecord(Config):
    """A run dir's ``config.json``: the run's settings, what they resolved to, how the run started."""

    run: RunConfig
    uplift: UpliftConfig
    recipe: RecipeRecord
    init: Text | None = None  # the checkpoint a fine-tune started from
    world_size: Int = Field(1, ge=1, le=1 << 16)

    @classmethod
    def of(cls, rcfg: RunConfig, ucfg: UpliftConfig, init, world_size: int) -> "RunRecord":
        return cls(run=rcfg, uplift=ucfg, recipe=RecipeRecord(name=rcfg.recipe, items=rcfg.recipe_items()),
                   init=str(init) if init else None, world_size=world_size)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1)


CONFIG_SUFFIXES = (".json", ".toml", ".yaml", ".yml")


def load_run_config(spec: str | os.PathLike, overrides: dict | None = None) -> RunConfig:
    """A preset name (``"tiny"``), a JSON / TOML / YAML file of RunConfig settings, or a run dir's
    ``config.json`` (the run's settings again); then ``overrides`` (``RunConfig.with_overrides``).

    The file is read through the bounded reader (a regular file of at most 1 MiB), must hold a mapping
    of known keys with values of the right types and documented ranges, and YAML may not use anchors
    or aliases. Every problem is a ``ConfigFileError`` naming the file; the resolved settings (preset,
    overrides) are checked here, before any work starts.
    """
    p = Path(spec)
    if not p.exists() and not p.is_symlink():
        if p.suffix.lower() in CONFIG_SUFFIXES or os.sep in str(spec):
            raise ConfigFileError(p.absolute(), f"config file not found (presets: {', '.join(sorted(PRESETS))})")
        return RunConfig(preset=str(spec)).with_overrides(overrides)
    data = _parse_config_file(p)
    try:
        if not isinstance(data, dict):
            raise ConfigError(f"holds a {type(data).__name__}, expected a mapping of RunConfig keys")
        rcfg = RunRecord.model_validate(data).run if "run" in data and "uplift" in data else RunConfig.model_validate(data)
        return rcfg.with_overrides(overrides)
    except ConfigError as e:
        raise ConfigFileError(p, str(e)) from None


def _parse_config_file(p: Path):
    """The parsed contents of a run-config file (JSON unless .toml / .yaml / .yml); ConfigFileError for
    an unreadable, oversized, empty or malformed file."""
    text = read_text_bounded(p, "run_config", ConfigFileError)
    if not text.strip():
        raise ConfigFileError(p, "config file is empty")
    try:
        if p.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if p.suffix.lower() in (".yaml", ".yml"):
            return _yaml_without_aliases(p, text)
        return json.loads(text)
    except ConfigFileError:
        raise
    except RecursionError:
        raise ConfigFileError(p, "config nests too deeply") from None
    except Exception as e:  # noqa: BLE001 - JSON / TOML / YAML syntax errors, integers past Python's digit limit
        raise ConfigFileError(p, f"not a valid {p.suffix.lower().lstrip('.') or 'json'} file: "
                                 f"{' '.join(str(e).split())[:200]}") from None


def _yaml_without_aliases(p: Path, text: str):
    """``yaml.safe_load`` with anchors and aliases refused: an alias bomb (a few KB that expand to
    billions of nodes) would hang whatever walks the result."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise ConfigFileError(p, f"YAML anchors and aliases are not allowed in a run config "
                                         f"(line {event.start_mark.line + 1})")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
