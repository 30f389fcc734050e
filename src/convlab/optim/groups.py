"""Per-parameter-group learning-rate and weight-decay multipliers (``optim.groups``).

A rule picks parameters by name (a glob over ``model.named_parameters()``, e.g.
``"*.bias"``) and/or by the type of the module that owns them (``BatchNorm2d``, or
``norm`` for every normalization layer), and scales the base learning rate and weight
decay for them; airbench, for example, trains BatchNorm biases at 64x the rate with no
decay. The first rule that matches a parameter wins; the rest stay in the base group.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import Field, NonNegativeFloat, model_validator

from convlab.schema import Strict

NORM_TYPES = ("BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "InstanceNorm2d")


class GroupRule(Strict):
    """One rule of ``optim.groups``."""

    params: str | None = Field(None, description="glob over parameter names, e.g. '*.bias'")
    module: str | None = Field(
        None, description="type of the owning module (BatchNorm2d, Conv2d, Linear, ...) or "
        "'norm' for every normalization layer")
    lr_mult: NonNegativeFloat = Field(1.0, description="multiplier of the base learning rate")
    weight_decay_mult: NonNegativeFloat = Field(
        1.0, description="multiplier of the base weight decay")

    @model_validator(mode="after")
    def _picks_something(self) -> GroupRule:
        if self.params is None and self.module is None:
            raise ValueError("a group rule needs params (a name glob) or module (a type)")
        return self

    def matches(self, name: str, owner: Any) -> bool:
        if self.params is not None and not fnmatch.fnmatchcase(name, self.params):
            return False
        if self.module is None:
            return True
        kind = type(owner).__name__
        return kind in NORM_TYPES if self.module == "norm" else kind == self.module


def param_groups(
    model: Any, rules: list[GroupRule] | tuple[GroupRule, ...], lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Optimizer parameter groups of the trainable parameters: the rest at the base values
    first (the learning rate a run reports is its first group's), then one per rule that
    matched something (its ``lr`` and ``weight_decay`` scaled). Frozen parameters stay
    out."""
    owners = {f"{mod_name}.{p_name}" if mod_name else p_name: mod
              for mod_name, mod in model.named_modules()
              for p_name, _ in mod.named_parameters(recurse=False)}
    buckets: list[list[Any]] = [[] for _ in rules]
    rest: list[Any] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        for i, rule in enumerate(rules):
            if rule.matches(name, owners.get(name)):
                buckets[i].append(p)
                break
        else:
            rest.append(p)
    groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay}] if rest else []
    groups += [{"params": ps, "lr": lr * r.lr_mult,
                "weight_decay": weight_decay * r.weight_decay_mult}
               for r, ps in zip(rules, buckets, strict=True) if ps]
    return groups
