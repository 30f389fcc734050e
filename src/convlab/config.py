"""Typed, frozen experiment configuration.

An experiment is a YAML file with five sections (``data``, ``model``, ``optim``,
``schedule``, ``train``) plus ``name`` and ``seed``. Precedence is: defaults, then the
file, then ``--set key.sub=value`` overrides. Every model refuses unknown keys, so a typo
is an error that names the key rather than a silently ignored setting.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

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

# The data section's models live with the registry of datasets that validates them.
from convlab.data.settings import (  # noqa: F401 - re-exported: the config's vocabulary
    AugmentConfig,
    ColorJitterConfig,
    DataConfig,
    PermuteConfig,
    SubsetConfig,
)
from convlab.data.synthetic import SyntheticConfig  # noqa: F401 - re-exported
from convlab.errors import ConfigError
from convlab.optim.groups import GroupRule
from convlab.schema import (  # noqa: F401 - re-exported: the config's vocabulary
    Activation,
    Fill,
    Init,
    Strict,
    format_validation_error,
)

# -------------------------------------------------------------------------- model


def split_named_section(data: Any, default: str) -> tuple[str, dict[str, Any]]:
    """A section that names a registry entry (``{name: cnn, ...}`` or just ``cnn``):
    (the name, the other keys)."""
    if data is None:
        data = {}
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict):
        raise ValueError(f"expected a mapping with a 'name', got {data!r}")
    rest = dict(data)
    return rest.pop("name", default), rest


class ModelConfig(BaseModel):
    """``name`` picks a builder (``cnn``, ``mlp``), a named architecture (``pw1``), a
    registered user model, or user code named by a colon (``nets.py:TinyNet``).

    The remaining keys are that builder's settings; they are validated against the
    builder's own settings model (or a user callable's signature), with a named
    architecture's settings as defaults, so the resolved config always holds the
    complete architecture.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field("cnn", description=(
        "a registered model (convlab models ls), or your own: file.py:Name or module:Name"))

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        from convlab.models import resolve_settings  # models import torch: keep it lazy

        name, rest = split_named_section(data, "cnn")
        return {"name": name, **resolve_settings(name, rest)}

    @property
    def settings(self) -> dict[str, Any]:
        """The builder settings (everything but ``name``)."""
        return dict(self.__pydantic_extra__ or {})

    @classmethod
    def for_object(cls, ref: str) -> ModelConfig:
        """The model section of a run given a model object from Python: its class's
        reference, not validated (its constructor's arguments are the object's own)."""
        return cls.model_construct(name=ref)


# ---------------------------------------------------------------------- optimizer


class _RegistryEntrySection(BaseModel):
    """A config section that names a registry entry (an optimizer, a schedule): its
    common fields, plus the entry's own settings validated against the entry's settings
    model and completed with its defaults, kept as extra keys (``cfg.optim.momentum``)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    _registry: ClassVar[str]
    _section: ClassVar[str]
    _default: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        from convlab import optim  # the registries; models' layer, below config

        name, rest = split_named_section(data, cls._default)
        common = {k: rest.pop(k) for k in list(rest) if k in cls.model_fields}
        registry = getattr(optim, cls._registry)
        return {"name": name, **common,
                **optim.resolve_entry_settings(registry, name, rest, cls._section)}

    @property
    def settings(self) -> dict[str, Any]:
        """The entry's own settings (everything but the common fields)."""
        return dict(self.__pydantic_extra__ or {})


class OptimConfig(_RegistryEntrySection):
    """``name`` picks a registered optimizer (``sgd``, ``adam``, ``adamw``); ``lr`` and
    ``weight_decay`` are common, the other keys are that optimizer's settings
    (``momentum``/``nesterov`` for sgd, ``betas``/``eps`` for adam and adamw)."""

    _registry: ClassVar[str] = "OPTIMIZERS"
    _section: ClassVar[str] = "optim"
    _default: ClassVar[str] = "sgd"

    name: str = Field("sgd", description="a registered optimizer: sgd, adam, adamw")
    lr: PositiveFloat = Field(0.01, description="the base learning rate")
    weight_decay: NonNegativeFloat = Field(0.0, description="L2 penalty (decoupled for adamw)")
    groups: list[GroupRule] = Field(
        default_factory=list,
        description="learning-rate / weight-decay multipliers for parameters picked by name "
        "glob or module type, e.g. [{module: norm, params: '*.bias', lr_mult: 64}]; the first "
        "rule that matches wins")


class ScheduleConfig(_RegistryEntrySection):
    """Learning-rate schedule as a function of the (fractional) epoch: ``name`` picks a
    registered schedule (``constant``, ``step``, ``exponential``, ``cosine``,
    ``onecycle``, ``linear``), the other keys are its settings; ``warmup_epochs`` is a
    linear warm-up from 0 before any of them."""

    _registry: ClassVar[str] = "SCHEDULES"
    _section: ClassVar[str] = "schedule"
    _default: ClassVar[str] = "constant"

    name: str = Field("constant", description="a registered schedule: constant, step, "
                      "exponential, cosine, onecycle, linear, triangle")
    warmup_epochs: NonNegativeFloat = Field(
        0.0, description="linear warm-up from 0 over this many epochs, before any schedule")


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
    """Stop when a held-out metric has not improved for ``patience`` epochs; the best
    epoch's weights are put back."""

    metric: str = Field("val.loss", description=(
        "<split>.<metric> to watch: val.loss, val.top1, test.top1, ... (a loss is "
        "minimized, an accuracy maximized)"))
    patience: PositiveInt = Field(3, description="epochs without improvement before stopping")
    min_delta: NonNegativeFloat = Field(
        0.0, description="the least change that counts as an improvement")

    _metric = field_validator("metric")(classmethod(lambda cls, v: check_metric_name(v)))

    @property
    def mode(self) -> Literal["min", "max"]:
        return "min" if self.metric.endswith("loss") else "max"


class EMAConfig(Strict):
    """An exponential moving average of the weights, used to evaluate and save."""

    decay: float = Field(0.99, gt=0, lt=1, description="weight of the old average per update")
    every: PositiveInt = Field(1, description="optimizer steps between updates")
    start_epoch: NonNegativeInt = Field(
        0, description="epochs trained before averaging starts (0: from the first step)")
    lookahead: bool = Field(False, description=(
        "after each update, put the average back into the trained weights (Lookahead, "
        "Zhang et al. 2019; airbench's scheme)"))
    ramp: NonNegativeFloat = Field(0.0, description=(
        "grow the decay over the run: update t of T uses decay * (t/T)**ramp, so the "
        "average hardly lags early and averages most at the end (airbench: 3, with "
        "decay 0.95**5 every 5 steps); 0: constant"))


class TTAConfig(Strict):
    """Test-time augmentation: logits averaged over views of each image, per split."""

    val: list[Literal["flip", "translate"]] = Field(
        default_factory=list, description="views for the validation split: flip, translate")
    test: list[Literal["flip", "translate"]] = Field(
        default_factory=list, description="views for the test split: flip, translate")
    pixels: PositiveInt = Field(1, description="the translation's shift in pixels")
    fill: Fill = Field("zeros", description=(
        "what a translation moves in at the edge: zeros, or the image mirrored (airbench's)"))
    at: Literal["last", "every"] = Field("last", description=(
        "last: only the final epoch's evaluation (the run's result) uses the views, as "
        "airbench does, since each view costs a forward pass; every: each epoch's"))


class TrainConfig(Strict):
    """How the loop runs: epochs, batches, device and precision, logging, checkpoints."""

    epochs: PositiveInt = Field(10, description="passes over the training split")
    ema: EMAConfig | None = Field(
        None, description="average the weights (decay, every, start_epoch) and evaluate and "
        "save the average")
    tta: TTAConfig = Field(
        default_factory=TTAConfig, description="test-time augmentation per split (val, test: "
        "flip, translate)")
    batch_size: PositiveInt = Field(64, description="images per training step")
    eval_batch_size: PositiveInt = Field(1000, description="images per evaluation batch")
    device: str = Field("auto", description="auto (CUDA when present, else CPU), cpu, "
                        "cuda, cuda:N or mps")
    deterministic: bool = Field(False, description=(
        "deterministic kernels: a resumed run ends bit-for-bit where an uninterrupted one "
        "would"))
    label_smoothing: float = Field(0.0, ge=0, lt=1, description=(
        "cross-entropy label smoothing: this much of each target spread over all classes"))
    early_stopping: EarlyStoppingConfig | None = Field(None, description=(
        "stop when a held-out metric stops improving (metric, patience, min_delta)"))
    channels_last: bool | None = Field(None, description=(
        "channels_last memory format; default: on for conv nets"))
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description=(
        "auto: bf16 autocast on CUDA, fp32 elsewhere; bf16: also on the CPU (2-3x faster "
        "for conv nets on CPUs with AVX512-BF16 or AMX, slower on others)"))
    compile: bool = Field(False, description="torch.compile the model (pays off on GPU)")
    threads: PositiveInt | None = Field(None, description=(
        "torch CPU threads; default: the number of physical cores"))
    grad_clip: PositiveFloat | None = Field(None, description=(
        "clip the gradients' total L2 norm to this value"))
    log_every: PositiveInt = Field(50, description=(
        "steps between running-metric updates (one host sync each) and steps.csv rows"))
    track_grad_norms: PositiveInt | None = Field(None, description=(
        "every N steps, write the total and per-layer gradient norms to steps.csv"))
    checkpoint_every: PositiveInt | None = Field(None, description=(
        "steps between checkpoints; one also ends every epoch"))
    eval_train: bool = Field(False, description=(
        "also re-evaluate the train split in eval mode each epoch"))
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

    reference: PositiveInt | str = Field(description=(
        "a parameter count, a model name or an experiment whose count to match"))
    vary: str = Field(description=(
        "the free dimension: hidden_width, width, depth, stages.*.channels, "
        "stages.*.kernel or a dotted model setting"))


# ---------------------------------------------------------------------- tracking


class TensorBoardTracking(Strict):
    """TensorBoard event files: scalars, and the config as HParams to compare trials."""

    name: Literal["tensorboard"] = Field("tensorboard", description="which tracker: tensorboard")
    log_dir: Path | None = Field(None, description=(
        "where the event files go (a folder per run below it); default: <run folder>/"
        "tensorboard, so `tensorboard --logdir runs` shows every run"))


class MlflowTracking(Strict):
    """An MLflow run per convlab run: params, metrics, tags, artifacts."""

    name: Literal["mlflow"] = Field("mlflow", description="which tracker: mlflow")
    tracking_uri: str | None = Field(None, description=(
        "default: $MLFLOW_TRACKING_URI, else sqlite:///<runs root>/mlflow.db"))
    experiment: str | None = Field(None, description="MLflow experiment; default: name")


class WandbTracking(Strict):
    """A Weights & Biases run; offline (``wandb sync`` uploads later) unless told."""

    name: Literal["wandb"] = Field("wandb", description="which tracker: wandb")
    project: str | None = Field(None, description="W&B project; default: the name")
    entity: str | None = Field(None, description="W&B entity (user or team)")
    mode: Literal["offline", "online", "disabled"] | None = Field(None, description=(
        "default: $WANDB_MODE, else offline"))


TRACKERS = ("tensorboard", "mlflow", "wandb")
TrackerConfig = Annotated[
    TensorBoardTracking | MlflowTracking | WandbTracking, Field(discriminator="name")
]


def _tracker_list(v: Any) -> Any:
    """``[tensorboard, {name: mlflow, ...}]``: a bare name stands for its defaults."""
    if v is None:
        return ()
    if isinstance(v, str | dict):
        v = [v]
    if not isinstance(v, list | tuple):
        return v
    items = [{"name": x} if isinstance(x, str) else x for x in v]
    names = [x.get("name") for x in items if isinstance(x, dict)]
    for n in names:
        if n not in TRACKERS:
            raise ValueError(f"unknown tracker {n!r}; expected one of {', '.join(TRACKERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"each tracker at most once, got {names}")
    return items


# -------------------------------------------------------------------- experiment


class ExperimentConfig(Strict):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description=(
        "names the run folder runs/<name>/; default: the experiment file's name"))
    description: str = Field("", description=(
        "a short label for tables, progress lines and legends (a sweep's named values "
        "set it)"))
    seed: int = Field(0, description="seeds weights, shuffling, augmentation and splits")
    data: DataConfig = Field(DataConfig(), description="the dataset and its preprocessing")
    model: ModelConfig = Field(default_factory=ModelConfig, description=(
        "name: a builder (cnn, mlp), a named architecture (pw1, lenet5) or user code "
        "(nets.py:Net); the other keys are its settings"))
    optim: OptimConfig = Field(OptimConfig(), description="the optimizer and its settings")
    schedule: ScheduleConfig = Field(ScheduleConfig(), description=(
        "the learning-rate schedule and its settings"))
    train: TrainConfig = Field(TrainConfig(), description="how the training loop runs")
    match_params: MatchParamsConfig | None = Field(None, description=(
        "set one model dimension so the parameter count matches a reference (resolved "
        "when the run starts; config show prints the result)"))
    tracking: tuple[TrackerConfig, ...] = Field((), description=(
        "experiment trackers fed while the run trains: tensorboard, mlflow, wandb (a list "
        "of names or of mappings with their settings); each needs its extra, e.g. pip "
        "install 'convlab[tensorboard]'. Not part of the config hash"))

    _tracking = field_validator("tracking", mode="before")(
        classmethod(lambda cls, v: _tracker_list(v)))
    imports: list[str] = Field(
        default_factory=list,
        description="Python files (nets.py) or modules imported before the model is "
        "resolved, for models they register with @convlab.register_model",
    )

    @model_validator(mode="before")
    @classmethod
    def _import_user_code(cls, data: Any) -> Any:
        """Import ``imports:`` first: the model section may name what they register."""
        if isinstance(data, dict) and data.get("imports"):
            from convlab.usercode import import_user_module

            items = data["imports"]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ValueError(f"imports: expected a list of files or modules, got {items!r}")
            for item in items:
                import_user_module(item)
        return data

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        es = self.train.early_stopping
        if es and es.metric.startswith("val") and self.data.val_fraction == 0:
            raise ValueError(
                f"train.early_stopping.metric {es.metric!r} needs data.val_fraction > 0"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe dict of the resolved config (paths as strings); without
        ``tracking`` when there is none, so configs without trackers read as before."""
        d = self.model_dump(mode="json")
        if not d.get("tracking"):
            d.pop("tracking", None)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def user_refs(self) -> list[str]:
        """The user code this experiment names: ``imports``, a model or dataset by colon."""
        from convlab.usercode import is_user_ref

        refs = list(self.imports)
        for name in (self.model.name, getattr(self.data, "dataset", None)):
            if is_user_ref(name):
                refs.append(str(name))
        return refs

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON of the resolved config: identifies a run (its
        folder name's tag) and a sweep trial. Trackers do not change what is trained, so
        ``tracking`` is left out: adding one does not rerun a sweep's trials."""
        d = self.to_dict()
        d.pop("tracking", None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


# ------------------------------------------------------------------ loading


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
    """Set a dotted key in a nested dict/list tree, creating mappings as needed.

    ``*`` stands for every item of a list: ``model.stages.*.activation=tanh``.
    """
    node: Any = tree
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list) and k == "*":
            if not node:
                raise ConfigError(f"--set {'.'.join(keys)}: {'.'.join(keys[:i])} is an empty "
                                  f"list; '*' needs items to set")
            for j in range(len(node)):
                _apply_item(node, j, keys, i, value)
            return
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


def _apply_item(items: list[Any], j: int, keys: list[str], i: int, value: Any) -> None:
    """One item of a ``*`` override: the rest of the dotted key below ``items[j]``."""
    rest = keys[i + 1:]
    if not rest:
        items[j] = value
        return
    if not isinstance(items[j], dict | list):
        raise ConfigError(f"--set {'.'.join(keys)}: {'.'.join(keys[:i])}.{j} is a value, "
                          f"not a section")
    holder = {"_": items[j]}
    apply_override(holder, ["_", *rest], value)
    items[j] = holder["_"]


def validate_config(raw: dict[str, Any], source: str = "config",
                    overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Validate a raw mapping; a failure is a one-line ConfigError naming the keys, with
    a "did you mean" for a misspelt key, and blaming the ``--set`` flag (not the file)
    when the key at fault is one that an override set."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_did_you_mean(e, format_validation_error(
            e, _blamed(e, source, overrides)))) from None


def _blamed(err: ValidationError, source: str, overrides: list[str] | tuple[str, ...]) -> str:
    """``--set KEY=VALUE`` when every problem lies at or under a key an override set."""
    keys = [(item, item.partition("=")[0].strip().split(".")) for item in overrides]
    locs = [[str(p) for p in e["loc"]] for e in err.errors()]
    for item, k in reversed(keys):  # the last override of a key is the one that counts
        if locs and all(loc[:len(k)] == k or k[:len(loc)] == loc for loc in locs):
            return f"--set {item}"
    return source


def _did_you_mean(err: ValidationError, text: str) -> str:
    """Add the closest known key to each "unknown key" of a strict section."""
    import difflib

    for e in err.errors():
        if e["type"] == "value_error" and len(e["loc"]) == 1:
            text = _entry_did_you_mean(str(e["loc"][0]), e.get("input"), e["msg"], text)
            continue
        if e["type"] != "extra_forbidden":
            continue
        model: Any = ExperimentConfig
        for part in e["loc"][:-1]:
            model = _field_model(model, part)
            if model is None:
                break
        if model is None:
            continue
        loc = ".".join(str(p) for p in e["loc"])
        close = difflib.get_close_matches(str(e["loc"][-1]), list(model.model_fields), n=1)
        if close:
            text = text.replace(f"{loc}: unknown key", f"{loc}: unknown key; did you mean "
                                f"{close[0]!r}?", 1)
    return text


def _entry_did_you_mean(section: str, raw: Any, msg: str, text: str) -> str:
    """The closest key for an "unknown key" inside a model, optimizer or schedule section,
    whose settings belong to the entry its ``name`` picks."""
    import difflib

    m = re.search(r"([\w.]+): unknown key", msg)
    if m is None or section not in ("model", "optim", "schedule"):
        return text
    name = raw.get("name") if isinstance(raw, dict) else raw if isinstance(raw, str) else None
    try:
        if section == "model":
            from convlab.models import MODELS

            model: Any = MODELS.get(name or "cnn").settings_model
            common: list[str] = ["name"]
        else:
            from convlab import optim

            registry = optim.OPTIMIZERS if section == "optim" else optim.SCHEDULES
            model = registry.get(name or ("sgd" if section == "optim" else "constant")) \
                .settings_model
            common = list((OptimConfig if section == "optim" else ScheduleConfig).model_fields)
    except (KeyError, ValueError, AttributeError):
        return text
    path = m.group(1).split(".")
    for part in path[:-1]:
        model = _field_model(model, int(part) if part.isdigit() else part)
        if model is None:
            return text
    names = list(model.model_fields) + (common if len(path) == 1 else [])
    close = difflib.get_close_matches(path[-1], names, n=1)
    if not close:
        return text
    said = re.search(re.escape(f"{m.group(1)}: unknown key") + r"( \(for [^)]*\))?", text)
    if said is None:
        return text
    return f"{text[:said.end()]}; did you mean {close[0]!r}?{text[said.end():]}"


def _field_model(model: Any, part: Any) -> Any:
    """The pydantic model of field ``part`` of ``model`` (through Optional and lists)."""
    import typing

    if isinstance(part, int) or not hasattr(model, "model_fields"):
        return model if isinstance(part, int) else None
    field = model.model_fields.get(str(part))
    if field is None:
        return None
    todo = [field.annotation]
    while todo:
        t = todo.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
        todo.extend(typing.get_args(t))
    return None


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
        import warnings

        warnings.warn(f"{path} is empty: it trains the defaults (convlab config show "
                      f"{path} prints them)", EmptyExperimentWarning, stacklevel=2)
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


class EmptyExperimentWarning(UserWarning):
    """An experiment file without a setting: what it trains is every default."""


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
    source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
    base_dir: str | Path | None = None, label: str | None = None,
) -> ExperimentConfig:
    """Resolve defaults <- file (or mapping) <- ``key=value`` overrides into a config.

    Relative paths in it (user code, ``data.root``/``path``/``labels``, ``imports``) are
    made absolute against the experiment file's folder (``base_dir`` for a mapping),
    else the working directory: see :func:`resolve_paths`.
    """
    if isinstance(source, dict):
        raw, label = _deepcopy(source), label or "config"
    else:
        path = find_experiment(source)
        raw, label = read_yaml(path), str(path)
        raw.setdefault("name", path.stem)
        base_dir = base_dir or path.resolve().parent
    for item in overrides:
        keys, value = parse_override(item)
        _materialize_defaults(raw, keys, label)
        apply_override(raw, keys, value)
    resolve_paths(raw, Path(base_dir) if base_dir else None, label)
    return validate_config(raw, label, overrides)


DATA_PATH_KEYS = ("root", "path", "labels")

# Keys every optimizer and schedule section carried before they became registries
# (convlab 0.1 wrote them all into each run's config.yaml, whatever the name).
LEGACY_SECTION_KEYS = {
    "optim": ("momentum", "nesterov", "betas"),
    "schedule": ("step_size", "gamma", "min_lr", "pct_start"),
}


def upgrade_legacy(raw: dict[str, Any]) -> dict[str, Any]:
    """A run folder's config.yaml as this version reads it: drop the optimizer and
    schedule keys that earlier versions recorded for every name but the named entry does
    not take (they had no effect there). Experiment files are not upgraded: a key an
    entry does not take is an error there."""
    from convlab import optim

    for section, keys in LEGACY_SECTION_KEYS.items():
        node = raw.get(section)
        registry = optim.OPTIMIZERS if section == "optim" else optim.SCHEDULES
        if not isinstance(node, dict) or node.get("name") not in registry:
            continue
        known = registry.get(node["name"]).settings_model.model_fields
        for key in keys:
            if key in node and key not in known:
                del node[key]
    if isinstance(raw.get("data"), dict):
        from convlab.data.resolve import drop_legacy_keys

        drop_legacy_keys(raw["data"])
    return raw


def resolve_paths(raw: dict[str, Any], base_dir: Path | None, label: str = "config") -> None:
    """Make the relative paths of a raw experiment absolute, in place.

    User code (``model.name``, ``data.dataset``, ``imports``): against ``base_dir``
    where the file exists there, else the working directory (a missing file is an error
    naming both). Data paths (``data.root``, ``data.path``, ``data.labels``): against
    ``base_dir`` where that exists, else the working directory, else ``base_dir`` (so an
    error names the absolute path tried).
    """
    from convlab.usercode import UserCodeError, absolute_ref, is_file_target, is_user_ref

    def ref(value: Any, key: str) -> Any:
        if not is_user_ref(value):
            return value
        try:
            return absolute_ref(value, base_dir)
        except UserCodeError as e:
            raise ConfigError(f"{label}: {key}: {e}") from None

    model = raw.get("model")
    if isinstance(model, str):
        raw["model"] = ref(model, "model.name")
    elif isinstance(model, dict) and "name" in model:
        model["name"] = ref(model["name"], "model.name")
    data = raw.get("data")
    if isinstance(data, dict):
        if "dataset" in data:
            data["dataset"] = ref(data["dataset"], "data.dataset")
        for key in DATA_PATH_KEYS:
            if isinstance(data.get(key), str | Path) and base_dir is not None:
                p = Path(data[key]).expanduser()
                if not p.is_absolute():
                    here = (base_dir / p).resolve()
                    data[key] = str(here if here.exists() or not p.exists() else p.resolve())
    imports = raw.get("imports")
    if isinstance(imports, list):
        out = []
        for i, item in enumerate(imports):
            if isinstance(item, str) and is_file_target(item):
                try:
                    from convlab.usercode import resolve_file

                    item = str(resolve_file(item, base_dir))
                except UserCodeError as e:
                    raise ConfigError(f"{label}: imports.{i}: {e}") from None
            out.append(item)
        raw["imports"] = out


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
            if not any(part.isdigit() or part == "*" for part in keys[i + 1 :]):
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
    """The experiment schema, with each model builder's, optimizer's and schedule's
    settings under ``$defs`` (``model:cnn``, ``optim:sgd``, ``schedule:cosine``)."""
    from convlab.models import MODELS
    from convlab.optim import OPTIMIZERS, SCHEDULES

    schema = ExperimentConfig.model_json_schema()
    defs = schema.setdefault("$defs", {})
    for name in MODELS.list():
        spec = MODELS.get(name)
        if spec.base is None and spec.settings_model is not None:
            defs[f"model:{name}"] = spec.settings_model.model_json_schema()
    for kind, registry in (("optim", OPTIMIZERS), ("schedule", SCHEDULES)):
        for name in registry.list():
            defs[f"{kind}:{name}"] = registry.get(name).settings_model.model_json_schema()
    from convlab.data.spec import DATASETS  # the keys each dataset adds to data:

    for name in DATASETS.list():
        defs[f"data:{name}"] = DATASETS.get(name).settings.model_json_schema()
    return schema
