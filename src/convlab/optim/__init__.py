"""Optimizers and learning-rate schedules: one registry each, like the models.

An entry is a name, a pydantic settings model of the keys it adds to its config
section, and a function. A new optimizer or schedule is one decorated function in one
file (see docs/architecture.md, "Extension points"):

    @register_optimizer("lion", LionSettings, "sign of an interpolated momentum")
    def lion(params, lr, weight_decay, s): ...

The ``optim`` section's ``lr`` and ``weight_decay`` and the ``schedule`` section's
``warmup_epochs`` are common to every entry; ``config.py`` validates the other keys of
a section against the settings model of the entry it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from convlab.registry import Registry
from convlab.schema import format_validation_error

# (params or param groups, lr, weight_decay, settings) -> torch.optim.Optimizer
OptimizerBuilder = Callable[[Any, float, float, Any], Any]
# (settings, fractional epoch, epochs, base lr) -> multiplier of the base lr
ScheduleFactor = Callable[[Any, float, int, float], float]


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    settings_model: type[BaseModel]
    build: OptimizerBuilder
    description: str = ""


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    settings_model: type[BaseModel]
    factor: ScheduleFactor
    description: str = ""


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")
SCHEDULES: Registry[ScheduleSpec] = Registry("schedule")


def register_optimizer(
    name: str, settings_model: type[BaseModel], description: str = ""
) -> Callable[[OptimizerBuilder], OptimizerBuilder]:
    def add(fn: OptimizerBuilder) -> OptimizerBuilder:
        OPTIMIZERS.add(name, OptimizerSpec(name, settings_model, fn, description))
        return fn

    return add


def register_schedule(
    name: str, settings_model: type[BaseModel], description: str = ""
) -> Callable[[ScheduleFactor], ScheduleFactor]:
    def add(fn: ScheduleFactor) -> ScheduleFactor:
        SCHEDULES.add(name, ScheduleSpec(name, settings_model, fn, description))
        return fn

    return add


def resolve_entry_settings(
    registry: Registry[Any], name: str, given: dict[str, Any], section: str
) -> dict[str, Any]:
    """The complete settings of entry ``name`` (defaults filled in) as plain data; a
    ValueError naming the key otherwise."""
    if name not in registry:
        raise ValueError(f"unknown {registry.kind} {name!r}; expected one of: "
                         f"{', '.join(registry.list())}")
    spec = registry.get(name)
    try:
        settings = spec.settings_model.model_validate(given)
    except ValidationError as e:
        msg = format_validation_error(e, f"{section} {name}").split(": ", 1)[1]
        raise ValueError(f"{msg} (for {registry.kind} {name!r})") from None
    return settings.model_dump(mode="json")


# Fill the registries (import for side effects).
from convlab.optim import optimizers, schedules  # noqa: E402,F401,I001
