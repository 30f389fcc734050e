"""Every key an experiment file may hold, with its type, default and description.

``convlab config keys [PREFIX]`` prints these rows; ``config schema`` stays the JSON
schema. The walk is generic over pydantic models: the experiment's own sections, then
the settings of every model builder (``model.stages.*.kernel``) and of every registered
optimizer and schedule (``optim.momentum``), each marked with the entry it belongs to.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class KeyRow:
    """One settable key: ``key`` as ``--set`` spells it (``*`` for any list item)."""

    key: str
    type: str
    default: str
    description: str
    owner: str = ""  # the builder / optimizer / schedule a key belongs to ("" = always)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, unions, lists)."""
    out, todo = [], [annotation]
    while todo:
        t = todo.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            out.append(t)
        else:
            todo.extend(typing.get_args(t))
    return out


def _is_list(annotation: Any) -> bool:
    todo = [annotation]
    while todo:
        t = todo.pop()
        if typing.get_origin(t) in (list, tuple):
            return True
        if typing.get_origin(t) in (typing.Union, types.UnionType, typing.Annotated):
            todo.extend(typing.get_args(t))
    return False


def type_text(annotation: Any) -> str:
    """A short spelling of a type: ``int``, ``relu|tanh``, ``float | null``, ``[int]``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = " | ".join(type_text(a) for a in args).split(" | ")
        return " | ".join(dict.fromkeys(parts))
    if origin in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        return f"[{type_text(inner[0]) if inner else 'any'}]"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {"str": "str", "int": "int", "float": "float", "bool": "bool",
                "PosixPath": "path", "Path": "path"}.get(annotation.__name__,
                                                        annotation.__name__)
    return str(annotation).replace("typing.", "")


def default_text(field: FieldInfo) -> str:
    """The default as YAML would spell it, or ``required``."""
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "{...}"
    if isinstance(value, list | tuple) and value and isinstance(value[0], BaseModel):
        return f"[{len(value)} x {{...}}]"
    try:
        return json.dumps(value, default=str)
    except TypeError:  # pragma: no cover - an odd default
        return str(value)


def walk(model: type[BaseModel], prefix: str = "", owner: str = "",
         skip: tuple[str, ...] = ()) -> list[KeyRow]:
    """Rows for every field of ``model``, descending into nested models."""
    rows: list[KeyRow] = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        key = f"{prefix}{name}"
        nested = _models_in(field.annotation)
        desc = field.description or ""
        if name == "model" and not prefix:  # its settings are the builder's: see below
            rows.append(KeyRow(key, "mapping", default_text(field), desc, owner))
            rows += walk(nested[0], "model.", owner)
        elif len(nested) == 1:
            inner = f"{key}.*." if _is_list(field.annotation) else f"{key}."
            rows.append(KeyRow(key, "[mapping]" if _is_list(field.annotation) else "mapping",
                               default_text(field), desc, owner))
            rows += walk(nested[0], inner, owner)
        else:
            rows.append(KeyRow(key, type_text(field.annotation), default_text(field), desc,
                               owner))
    return rows


def experiment_keys() -> list[KeyRow]:
    """Every key of an experiment: its sections, each builder's model settings, each
    optimizer's and schedule's own settings."""
    from convlab import optim
    from convlab.config import ExperimentConfig
    from convlab.models import MODELS

    rows = walk(ExperimentConfig)
    extra: dict[str, list[KeyRow]] = {"data": [], "model": [], "optim": [], "schedule": []}
    for name, model in dataset_settings().items():
        extra["data"] += walk(model, "data.", owner=f"dataset {name}")
    for name in MODELS.list():
        spec = MODELS.get(name)
        if spec.base is None and spec.settings_model is not None:
            extra["model"] += walk(spec.settings_model, "model.", owner=f"model {name}")
    for section, registry in (("optim", optim.OPTIMIZERS), ("schedule", optim.SCHEDULES)):
        for name in registry.list():
            extra[section] += walk(registry.get(name).settings_model, f"{section}.",
                                   owner=f"{section} {name}")
    out: list[KeyRow] = []
    for i, r in enumerate(rows):  # each section's entry settings after its common keys
        out.append(r)
        section = r.key.split(".")[0]
        nxt = rows[i + 1].key.split(".")[0] if i + 1 < len(rows) else ""
        if section in extra and nxt != section:
            out += _merge_owners(extra.pop(section))
    return out


def _merge_owners(rows: list[KeyRow]) -> list[KeyRow]:
    """One row for a key that several entries share alike (resnet18/34/50's settings)."""
    merged: dict[tuple[str, str, str, str], list[str]] = {}
    for r in rows:
        merged.setdefault((r.key, r.type, r.default, r.description), []).append(r.owner)
    out = []
    for (key, typ, default, desc), owners in merged.items():
        kind = owners[0].split(" ")[0]
        names = ", ".join(o.split(" ", 1)[1] for o in owners)
        out.append(KeyRow(key, typ, default, desc, f"{kind} {names}"))
    return out


def dataset_settings() -> dict[str, type[BaseModel]]:
    """Each registered dataset's own settings model (the keys it adds to ``data``)."""
    import convlab.data  # noqa: F401 - fills the registry
    from convlab.data.spec import DATASETS

    out = {}
    for name in DATASETS.list():
        model = DATASETS.get(name).settings
        if model is not None and model.model_fields:
            out[name] = model
    return out


def settings_models() -> dict[str, type[BaseModel]]:
    """Every settings model a key of an experiment can reach: the experiment's nested
    sections and every registered builder, optimizer, schedule and dataset."""
    from convlab import optim
    from convlab.config import ExperimentConfig
    from convlab.models import MODELS

    found: dict[str, type[BaseModel]] = {}

    def add(label: str, model: type[BaseModel]) -> None:
        if model in found.values():
            return
        found[label] = model
        for name, field in model.model_fields.items():
            for inner in _models_in(field.annotation):
                add(f"{label}.{name}", inner)

    add("experiment", ExperimentConfig)
    for name in MODELS.list():
        spec = MODELS.get(name)
        if spec.base is None and spec.settings_model is not None:
            add(f"model {name}", spec.settings_model)
    for kind, registry in (("optim", optim.OPTIMIZERS), ("schedule", optim.SCHEDULES)):
        for name in registry.list():
            add(f"{kind} {name}", registry.get(name).settings_model)
    for name, model in dataset_settings().items():
        add(f"dataset {name}", model)
    return found


def matching(rows: list[KeyRow], prefix: str | None) -> list[KeyRow]:
    """The rows under ``prefix`` (``train``, ``model.stages``); all without one."""
    if not prefix:
        return rows
    p = prefix.rstrip(".")
    return [r for r in rows if r.key == p or r.key.startswith(p + ".")
            or r.owner.split(" ")[-1] == p]
