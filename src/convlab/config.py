"""Typed, frozen experiment configuration.

An experiment is a YAML file with five sections (``data``, ``model``, ``optim``,
``schedule``, ``train``) plus ``name`` and ``seed``. Precedence is: defaults, then the
file, then ``--set key.sub=value`` overrides. Every model refuses unknown keys, so a typo
is an error that names the key rather than a silently ignored setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from convlab.errors import ConfigError

Activation = Literal["relu", "leaky_relu", "tanh", "silu", "gelu", "identity"]
Init = Literal["default", "kaiming", "xavier"]


class Strict(BaseModel):
    """Frozen, unknown keys refused: the base of every config section."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- data


class PermuteConfig(Strict):
    """One fixed pixel permutation, the same for every image (permuted MNIST)."""

    seed: int = 0


class SubsetConfig(Strict):
    """Keep only the first N training / test images (after shuffling with the split seed)."""

    train: PositiveInt | None = None
    test: PositiveInt | None = None


class SyntheticConfig(Strict):
    """Deterministic random images: for tests and smoke runs."""

    shape: tuple[PositiveInt, PositiveInt, PositiveInt] = (1, 28, 28)
    classes: int = Field(10, ge=2)
    train_size: PositiveInt = 1024
    test_size: PositiveInt = 256
    seed: int = 0


class ColorJitterConfig(Strict):
    """Per-image random factors in ``[1 - x, 1 + x]`` (torchvision's convention)."""

    brightness: float = Field(0.0, ge=0, le=1)
    contrast: float = Field(0.0, ge=0, le=1)
    saturation: float = Field(0.0, ge=0, le=1)


class AugmentConfig(Strict):
    """Training-time augmentation, run per batch on the device, one draw per image."""

    crop_padding: NonNegativeInt = 0  # random crop from a copy zero-padded by this much
    flip: bool = False  # horizontal flip with probability 1/2
    translate: NonNegativeInt = 0  # random shift of up to this many pixels in x and y
    rotate: float = Field(0.0, ge=0, le=180)  # random rotation in [-rotate, rotate] degrees
    color_jitter: ColorJitterConfig = ColorJitterConfig()
    noise: NonNegativeFloat = 0.0  # Gaussian noise std, in units of [0, 1] pixel values

    @property
    def enabled(self) -> bool:
        cj = self.color_jitter
        return bool(
            self.crop_padding or self.flip or self.translate or self.rotate or self.noise
            or cj.brightness or cj.contrast or cj.saturation
        )


DATASETS = ("mnist", "fashion_mnist", "cifar10", "imagefolder", "synthetic")


class DataConfig(Strict):
    dataset: Literal["mnist", "fashion_mnist", "cifar10", "imagefolder", "synthetic"] = "mnist"
    root: Path | None = None  # default: $CONVLAB_DATA, else the user cache folder
    path: Path | None = None  # imagefolder (or cifar10 as images): a folder or a .zip
    test_fraction: float | None = Field(None, gt=0, lt=1)  # imagefolder without test/
    download: bool = True  # fetch through torchvision when files are absent (online only)
    synthetic: SyntheticConfig = SyntheticConfig()
    permute: PermuteConfig | None = None
    val_fraction: float = Field(0.0, ge=0, lt=1)
    split_seed: int = 0
    subset: SubsetConfig = SubsetConfig()
    # auto: "channel", or "none" for a model that normalizes its own input (a pretrained
    # ResNet applies ImageNet statistics itself)
    normalize: Literal["auto", "none", "channel", "mean_image", "zca"] = "auto"
    zca_epsilon: PositiveFloat = 1e-2
    augment: AugmentConfig = AugmentConfig()
    resize: PositiveInt | None = None  # resize every image to this square size on the device
    skip_bad_images: bool = False


# -------------------------------------------------------------------------- model


class ModelConfig(BaseModel):
    """``name`` picks a builder (``cnn``, ``mlp``) or a named architecture (``pw1``).

    The remaining keys are that builder's settings; they are validated against the
    builder's own settings model, with a named architecture's settings as defaults, so
    the resolved config always holds the complete architecture.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = "cnn"

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        from convlab.models import resolve_settings  # models import torch: keep it lazy

        if data is None:
            data = {}
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping with a 'name', got {data!r}")
        rest = dict(data)
        name = rest.pop("name", "cnn")
        return {"name": name, **resolve_settings(name, rest)}

    @property
    def settings(self) -> dict[str, Any]:
        """The builder settings (everything but ``name``)."""
        return dict(self.__pydantic_extra__ or {})


# ---------------------------------------------------------------------- optimizer


class OptimConfig(Strict):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: PositiveFloat = 0.01
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: NonNegativeFloat = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adam / adamw

    @model_validator(mode="after")
    def _check(self) -> OptimConfig:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs name: sgd and momentum > 0")
        return self


class ScheduleConfig(Strict):
    """Learning-rate schedule as a function of the (fractional) epoch; see train/schedule.py."""

    name: Literal["constant", "step", "exponential", "cosine", "onecycle"] = "constant"
    step_size: PositiveInt = 10  # step: epochs between decays
    gamma: PositiveFloat = 0.1  # step, exponential: factor per decay / per epoch
    min_lr: NonNegativeFloat = 0.0  # cosine: final learning rate
    pct_start: float = Field(0.25, gt=0, lt=1)  # onecycle: fraction of training spent rising
    warmup_epochs: NonNegativeFloat = 0.0  # linear warm-up from 0, before any schedule


# ------------------------------------------------------------------------- train


def check_metric_name(v: str) -> str:
    """``<split>.<metric>``: what early stopping and sweeps may watch."""
    if not re.fullmatch(r"(train|val|test)\.(loss|top1|top5)", v):
        raise ValueError(
            f"expected <split>.<metric> with split train/val/test and metric "
            f"loss/top1/top5, got {v!r}"
        )
    return v


class EarlyStoppingConfig(Strict):
    metric: str = "val.loss"  # <split>.<metric>: val.loss, val.top1, test.top1, ...
    patience: PositiveInt = 3
    min_delta: NonNegativeFloat = 0.0

    _metric = field_validator("metric")(classmethod(lambda cls, v: check_metric_name(v)))

    @property
    def mode(self) -> Literal["min", "max"]:
        return "min" if self.metric.endswith("loss") else "max"


class TrainConfig(Strict):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt = 1000
    device: str = "auto"  # auto: CUDA when present, else CPU
    deterministic: bool = False
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    early_stopping: EarlyStoppingConfig | None = None
    channels_last: bool | None = None  # None: on for conv nets
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA only
    compile: bool = False
    threads: PositiveInt | None = None  # None: the number of cores
    grad_clip: PositiveFloat | None = None
    log_every: PositiveInt = 50  # steps between progress/metric host syncs
    track_grad_norms: PositiveInt | None = None  # every N steps into steps.csv
    checkpoint_every: PositiveInt | None = None  # steps; a checkpoint also ends every epoch
    eval_train: bool = False  # also re-evaluate the train split in eval mode each epoch
    eval_at_start: bool = Field(False, description=(
        "evaluate every split before the first step: an epoch-0 row in metrics.csv (the "
        "untrained model's loss and accuracy, drawn in the curves)"))

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got {v!r}")
        return v


# ------------------------------------------------------------ parameter budgets


class MatchParamsConfig(Strict):
    """Set one free dimension of the model so its parameter count matches a reference.

    ``reference``: a parameter count, a model name (built for this experiment's input)
    or an experiment file / bundled name. ``vary``: ``hidden_width``, ``width``,
    ``depth``, ``stages.*.channels``, ``stages.*.kernel`` or a dotted model setting.
    """

    reference: PositiveInt | str
    vary: str


# -------------------------------------------------------------------- experiment


class ExperimentConfig(Strict):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    match_params: MatchParamsConfig | None = None  # resolved when the run starts

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        es = self.train.early_stopping
        if es and es.metric.startswith("val") and self.data.val_fraction == 0:
            raise ValueError(
                f"train.early_stopping.metric {es.metric!r} needs data.val_fraction > 0"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe dict of the resolved config (paths as strings)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ------------------------------------------------------------------ loading


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-"))


def format_validation_error(err: ValidationError, source: str = "config") -> str:
    """One line per problem, joined: ``source: key.path: message (got value)``."""
    parts = []
    for e in err.errors():
        loc = _format_loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        got = e.get("input")
        shown = "" if e["type"] in ("extra_forbidden", "value_error") or isinstance(
            got, dict
        ) else f" (got {got!r})"
        parts.append(f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}")
    return f"{source}: " + "; ".join(parts)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"optim.lr=0.1"`` -> (["optim", "lr"], 0.1); the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {item!r}: value is not valid YAML ({e.problem})") from None
    return key.strip().split("."), value


def apply_override(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set a dotted key in a nested dict/list tree, creating mappings as needed."""
    node: Any = tree
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                where = ".".join(keys[:i])
                raise ConfigError(
                    f"--set {'.'.join(keys)}: {where} has {len(node)} items; "
                    f"expected an index 0..{len(node) - 1}, got {k!r}"
                )
            if last:
                node[int(k)] = value
            else:
                node = node[int(k)]
        elif isinstance(node, dict):
            if last:
                node[k] = value
            else:
                if not isinstance(node.get(k), dict | list):
                    node[k] = {} if node.get(k) is None else node[k]
                if not isinstance(node[k], dict | list):
                    raise ConfigError(
                        f"--set {'.'.join(keys)}: {'.'.join(keys[: i + 1])} is a value, "
                        f"not a section"
                    )
                node = node[k]
        else:  # pragma: no cover - guarded above
            raise ConfigError(f"--set {'.'.join(keys)}: cannot descend into {node!r}")


def validate_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a raw mapping; a failure is a one-line ConfigError naming the keys."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping safely (``yaml.safe_load``: no tags that run code)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def bundled_examples() -> dict[str, Path]:
    """Names of the example experiments shipped with the package."""
    folder = Path(__file__).parent / "examples"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_experiment(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a bundled example."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: file not found")
        return p
    examples = bundled_examples()
    if str(name_or_path) in examples:
        return examples[str(name_or_path)]
    raise ConfigError(
        f"{name_or_path!r} is neither a file nor a bundled experiment; "
        f"bundled: {', '.join(examples)}"
    )


def load_config(
    source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentConfig:
    """Resolve defaults <- file (or mapping) <- ``key=value`` overrides into a config."""
    if isinstance(source, dict):
        raw, label = _deepcopy(source), "config"
    else:
        path = find_experiment(source)
        raw, label = read_yaml(path), str(path)
        raw.setdefault("name", path.stem)
    for item in overrides:
        keys, value = parse_override(item)
        _materialize_defaults(raw, keys, label)
        apply_override(raw, keys, value)
    return validate_config(raw, label)


def set_dotted(raw: dict[str, Any], key: str, value: Any, label: str = "config") -> None:
    """Apply one ``key.sub=value`` override to a raw (unvalidated) experiment mapping."""
    keys = key.split(".")
    _materialize_defaults(raw, keys, label)
    apply_override(raw, keys, value)


def _materialize_defaults(raw: dict[str, Any], keys: list[str], label: str) -> None:
    """Copy resolved defaults into ``raw`` where an override indexes into a list that the
    file left to its default (``--set model.stages.0.channels=8`` on ``name: pw1``)."""
    node: Any = raw
    for i, k in enumerate(keys[:-1]):
        if not isinstance(node, dict):
            return
        if k not in node:
            if not any(part.isdigit() for part in keys[i + 1 :]):
                return  # plain mappings are created by apply_override
            resolved: Any = validate_config(raw, label).to_dict()
            for part in keys[: i + 1]:
                resolved = resolved.get(part) if isinstance(resolved, dict) else None
            if resolved is not None:
                node[k] = _deepcopy(resolved)
            return
        node = node[k]


def _deepcopy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _deepcopy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_deepcopy(v) for v in tree]
    return tree


def json_schema() -> dict[str, Any]:
    """The experiment schema, with each model builder's settings under ``$defs``."""
    from convlab.models import MODELS

    schema = ExperimentConfig.model_json_schema()
    defs = schema.setdefault("$defs", {})
    for name in MODELS.list():
        spec = MODELS.get(name)
        if spec.base is None:
            defs[f"model:{name}"] = spec.settings_model.model_json_schema()
    return schema
