"""The sweep file: a base experiment plus what to vary, validated like an experiment.

::

    name: lr-width                      # the sweep's folder and Optuna study name
    base: mnist-quick                   # a bundled name, a path, or an inline mapping
    grid:                               # dotted experiment keys -> lists of values
      optim.lr: [0.01, 0.1]
      model.stages.0.channels: [8, 16]
      model.head: {fc: {type: flatten}, gap: {type: gap}}   # or names -> values
    zip: false                          # true: pair the lists instead of crossing them
    random:                             # dotted keys -> distributions, drawn up front
      optim.weight_decay: {loguniform: [1e-5, 1e-2]}
      trials: 4                         # draws (crossed with the grid, if any)
      seed: 0                           # of the draws, so a re-run draws the same trials
    seeds: [0, 1, 2]                    # repeats of every point (the experiment's seed)
    set:                                # base settings changed for every trial, as --set
      train.epochs: 3
      model.stages.*.activation: tanh   # '*': every item of a list

or, instead of ``grid``/``random``, an adaptive search::

    search:
      optim.lr: {loguniform: [1e-4, 1e-1]}
      model.width: {choice: [8, 16, 32]}
      trials: 20
      metric: val.top1                  # reported per epoch for median pruning
      direction: maximize               # default: minimize for *.loss, else maximize
      pruning: true
      startup_trials: 5                 # random trials before TPE and the pruner start

Named grid values (a mapping instead of a list) name the trials: each trial's
``description`` is its values' names joined by ", " (``"gap, lr 0.1"``), and reports and
progress lines call the trial by it instead of spelling out a structured value. With
``zip: true`` naming one key names the zipped points (an ablation ladder's rungs); names
go by position, so the named list may repeat a value.

Distributions: ``{loguniform: [low, high]}`` (0 < low < high), ``{uniform: [low, high]}``,
``{int: [low, high]}`` (both ends included), ``{choice: [v1, v2, ...]}``. Inside ``random``
and ``search`` a key with a dot is a parameter and a key without one is an option, so the
two never collide (the experiment's only dot-free keys, ``name``/``description``/``seed``,
are not things one samples; ``seeds:`` repeats the experiment's seed).

Every model is frozen and refuses unknown keys, like the experiment config, so a typo in a
sweep file is a one-line error naming the key, never a silently ignored setting.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from convlab.config import check_metric_name, format_validation_error, read_yaml
from convlab.errors import ConvlabError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
SET_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_]+(\.([A-Za-z0-9_]+|\*))*$")  # '*': every item
KINDS = ("loguniform", "uniform", "int", "choice")
# YAML 1.1 (PyYAML) reads ``1e-4`` as a string: it wants a dot in a float. Users mean the
# number, so sweep values that look exactly like scientific notation are read as floats.
_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class SweepError(ConvlabError):
    """A sweep file, storage or study that cannot be used; one line, exit code 2."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def as_number(value: Any) -> Any:
    """``"1e-4"`` -> ``0.0001``; anything else unchanged (recursing into lists/mappings)."""
    if isinstance(value, str) and _SCIENTIFIC.match(value):
        return float(value)
    if isinstance(value, list):
        return [as_number(v) for v in value]
    if isinstance(value, dict):
        return {k: as_number(v) for k, v in value.items()}
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class Distribution(_Strict):
    """One sampling distribution, written in the file as a one-key mapping."""

    kind: Literal["loguniform", "uniform", "int", "choice"]
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kind" in data:  # already parsed (a model dump)
            return data
        expected = ("expected one of {loguniform: [low, high]}, {uniform: [low, high]}, "
                    "{int: [low, high]}, {choice: [v1, v2, ...]}")
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(f"{expected}, got {data!r}")
        ((kind, arg),) = data.items()
        if kind not in KINDS:
            raise ValueError(f"unknown distribution {kind!r}; {expected}")
        arg = as_number(arg)
        if kind == "choice":
            if not isinstance(arg, list) or not arg:
                raise ValueError(f"choice needs a non-empty list of values, got {arg!r}")
            return {"kind": kind, "choices": tuple(arg)}
        if not isinstance(arg, list) or len(arg) != 2 or not all(_is_number(v) for v in arg):
            raise ValueError(f"{kind} needs [low, high] as two finite numbers, got {arg!r}")
        low, high = arg
        if kind == "int" and not all(isinstance(v, int) for v in arg):
            raise ValueError(f"int needs integer bounds, got {arg!r}")
        if not low < high:
            raise ValueError(f"{kind} needs low < high, got {arg!r}")
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"loguniform needs 0 < low < high, got {arg!r}")
        return {"kind": kind, "low": low, "high": high}

    def corners(self) -> list[Any]:
        """The extreme values (or every choice): validated before anything runs."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]  # type: ignore[arg-type]
        return [self.low, self.high]

    def to_file(self) -> dict[str, Any]:
        """The one-key form a sweep file uses."""
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        bounds = [self.low, self.high]
        return {self.kind: [int(b) for b in bounds] if self.kind == "int" else bounds}  # type: ignore[arg-type]


def _split_params(data: Any, section: str) -> Any:
    """Move the dotted keys of a ``random``/``search`` mapping into ``params``."""
    if not isinstance(data, dict):
        return data
    params = dict(data.get("params") or {})
    rest = {k: v for k, v in data.items() if k != "params" and "." not in str(k)}
    params.update({k: v for k, v in data.items() if "." in str(k)})
    if not params:
        raise ValueError(
            f"no parameters: give dotted experiment keys, e.g. "
            f"optim.lr: {{loguniform: [1e-4, 1e-1]}} under {section}:"
        )
    return {**rest, "params": params}


def _check_keys(keys: Any) -> None:
    for key in keys:
        if not KEY_PATTERN.match(str(key)):
            raise ValueError(f"{key!r} is not a dotted experiment key such as optim.lr")


class RandomSpec(_Strict):
    """Random draws made once, up front, from a seeded generator: a fixed list of trials,
    so they validate before anything runs and a re-run finds the same trials done."""

    trials: PositiveInt
    seed: int = 0
    params: dict[str, Distribution]

    @model_validator(mode="before")
    @classmethod
    def _params(cls, data: Any) -> Any:
        return _split_params(data, "random")

    @field_validator("params")
    @classmethod
    def _keys(cls, v: dict[str, Distribution]) -> dict[str, Distribution]:
        _check_keys(v)
        return v


class SearchSpec(_Strict):
    """Adaptive search: Optuna's TPE sampler, median pruning on ``metric`` per epoch."""

    trials: PositiveInt
    seed: int = 0
    params: dict[str, Distribution]
    metric: str = "val.top1"
    direction: Literal["maximize", "minimize"] | None = None
    pruning: bool = True
    startup_trials: NonNegativeInt = 5

    @model_validator(mode="before")
    @classmethod
    def _params(cls, data: Any) -> Any:
        return _split_params(data, "search")

    @field_validator("params")
    @classmethod
    def _keys(cls, v: dict[str, Distribution]) -> dict[str, Distribution]:
        _check_keys(v)
        return v

    _metric = field_validator("metric")(classmethod(lambda cls, v: check_metric_name(v)))

    @property
    def resolved_direction(self) -> Literal["maximize", "minimize"]:
        if self.direction is not None:
            return self.direction
        return "minimize" if self.metric.endswith("loss") else "maximize"


class SweepConfig(_Strict):
    """A whole sweep file."""

    name: str = Field("sweep", pattern=NAME_PATTERN)
    description: str = ""
    base: str | dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] | None = None
    # names of the values of keys given as a mapping (filled from ``grid``, not a file key)
    grid_names: dict[str, list[str]] = Field(default_factory=dict, exclude=True)
    zip: bool = False
    random: RandomSpec | None = None
    search: SearchSpec | None = None
    seeds: list[int] | None = None
    set: dict[str, Any] = Field(default_factory=dict)  # dotted overrides of the base

    @field_validator("set", mode="before")
    @classmethod
    def _set(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of dotted keys to values, got {v!r}")
        for key in v:
            if not SET_KEY_PATTERN.match(str(key)):
                raise ValueError(f"{key!r} is not a dotted experiment key such as "
                                 f"train.epochs (or model.stages.*.activation)")
        return {str(k): as_number(val) for k, val in v.items()}

    def apply_set(self, base_raw: dict[str, Any], source: str = "sweep") -> dict[str, Any]:
        """The raw base with ``set:`` applied, exactly as ``--set`` would (a copy)."""
        import copy

        from convlab.config import ConfigError, set_dotted, validate_config

        raw = copy.deepcopy(base_raw)
        if not self.set:
            return raw
        try:
            for key, value in self.set.items():
                set_dotted(raw, key, copy.deepcopy(value), f"{source}: set")
            validate_config(raw, f"{source}: base", [f"{k}=" for k in self.set])
        except ConfigError as e:  # a problem at a key set: here is blamed on set:
            msg = str(e)
            if msg.startswith("--set "):
                msg = f"{source}: set: {msg.split(': ', 1)[1]}"
            raise SweepError(msg) from None
        return raw

    @model_validator(mode="before")
    @classmethod
    def _named_values(cls, data: Any) -> Any:
        """``grid: {key: {name: value, ...}}`` -> the values as a list, names aside."""
        if not isinstance(data, dict):
            return data
        if "grid_names" in data:
            raise ValueError("grid_names is not a sweep key: name grid values by giving a "
                             "mapping of names to values instead of a list")
        grid = data.get("grid")
        if not isinstance(grid, dict):
            return data
        lists: dict[str, Any] = {}
        names: dict[str, list[str]] = {}
        for key, values in grid.items():
            if isinstance(values, dict):
                if not values:
                    raise ValueError(f"grid.{key}: empty mapping of named values")
                names[str(key)] = [str(n) for n in values]
                values = list(values.values())
            lists[key] = values
        return {**data, "grid": lists, "grid_names": names}

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of dotted keys to lists of values, got {v!r}")
        if not v:
            raise ValueError("empty grid: give at least one key with a list of values")
        _check_keys(v)
        for key, values in v.items():
            if not isinstance(values, list):
                raise ValueError(f"{key}: expected a list of values (or a mapping of names "
                                 f"to values), got {values!r}")
            if not values:
                raise ValueError(f"{key}: empty list of values")
        return {k: as_number(vals) for k, vals in v.items()}

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v:
                raise ValueError("empty list of seeds")
            if len(set(v)) != len(v):
                raise ValueError(f"repeated seeds in {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        if self.search is not None and (self.grid is not None or self.random is not None):
            raise ValueError("search: replaces grid: and random:; give one or the other")
        if self.grid is None and self.random is None and self.search is None and not self.seeds:
            raise ValueError("nothing to sweep: give grid:, random:, search: or seeds:")
        if self.zip and self.grid is not None:
            lengths = {k: len(v) for k, v in self.grid.items()}
            if len(set(lengths.values())) > 1:
                shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
                raise ValueError(f"zip: true needs grid lists of one length, got {shown}")
        if self.zip and self.grid is None:
            raise ValueError("zip: true needs a grid:")
        if self.seeds and self.grid and "seed" in self.grid:
            raise ValueError("seeds: and grid.seed both set the experiment's seed; keep one")
        if self.search is not None and self.seeds and len(self.seeds) > 1:
            raise ValueError(
                "search: takes at most one seed (seeds: [N]); repeat the best configs "
                "afterwards with a grid sweep"
            )
        swept = [*(self.grid or {}), *(self.random.params if self.random else {})]
        dupes = sorted({k for k in swept if swept.count(k) > 1})
        if dupes:
            raise ValueError(f"{', '.join(dupes)}: set by both grid: and random:")
        varied = {*swept, *(self.search.params if self.search else {})}
        fixed = sorted(k for k in self.set if k in varied)
        if fixed:
            raise ValueError(f"{', '.join(fixed)}: both fixed by set: and swept; keep one")
        return self

    def to_file(self, base: Any) -> dict[str, Any]:
        """The sweep as a file again, with ``base`` inlined: what ``sweep.yaml`` holds."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["base"] = base
        if self.grid is not None:
            out["grid"] = {  # named values as the mapping they were given as
                k: dict(zip(self.grid_names[k], v, strict=True)) if k in self.grid_names else v
                for k, v in self.grid.items()}
            if self.zip:
                out["zip"] = True
        for section in ("random", "search"):
            spec = getattr(self, section)
            if spec is not None:
                body = spec.model_dump(mode="json", exclude={"params"})
                body.update({k: d.to_file() for k, d in spec.params.items()})
                out[section] = body
        if self.seeds is not None:
            out["seeds"] = self.seeds
        if self.set:
            out["set"] = dict(self.set)
        return out


def parse_sweep(raw: dict[str, Any], source: str = "sweep") -> SweepConfig:
    """Validate a raw mapping; a failure is a one-line SweepError naming the keys."""
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as e:
        # the parameters sit beside the options in the file: name them as written there
        message = format_validation_error(e, source)
        message = re.sub(r"\b(random|search)\.params\.", r"\1.", message)
        raise SweepError(message) from None


def load_sweep(path: str | Path) -> tuple[SweepConfig, Path]:
    """Read and validate a sweep file; return it and the folder its relative paths start at.

    The sweep's ``name`` defaults to the file's stem, as an experiment's does.
    """
    path = Path(path)
    if path.is_dir():
        raise SweepError(f"{path}: is a folder; expected a sweep YAML file")
    raw = read_yaml(path)
    raw.setdefault("name", path.stem)
    return parse_sweep(raw, str(path)), path.resolve().parent
