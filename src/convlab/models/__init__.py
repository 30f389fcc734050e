"""Model builders, registered by name, and named architectures as data.

A *builder* (``cnn``, ``mlp``) is a function ``(settings, in_shape, num_classes) ->
nn.Module`` with a pydantic settings model. A *named architecture* (``pw1``, ``lenet5``)
is a builder name plus a dict of settings: a few lines of data, never a copied class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from torch import nn

from convlab.errors import ModelError
from convlab.registry import Registry

Builder = Callable[[Any, tuple[int, int, int], int], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, its settings model and default settings."""

    name: str
    builder: Builder
    settings_model: type[BaseModel]
    defaults: dict[str, Any] = field(default_factory=dict)
    base: str | None = None  # the builder a named architecture is made from
    description: str = ""


MODELS: Registry[ModelSpec] = Registry("model")


def register_builder(
    name: str, settings_model: type[BaseModel], description: str = ""
) -> Callable[[Builder], Builder]:
    """Decorator for a builder function; refuses a duplicate name."""

    def add(fn: Builder) -> Builder:
        MODELS.add(name, ModelSpec(name, fn, settings_model, description=description))
        return fn

    return add


def register_architecture(name: str, base: str, description: str, **settings: Any) -> None:
    """A named architecture: ``base`` builder with these settings as defaults."""
    spec = MODELS.get(base)
    spec.settings_model.model_validate(settings)  # a broken preset fails at import
    MODELS.add(name, ModelSpec(name, spec.builder, spec.settings_model, settings, base,
                               description))


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.list(pattern)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_settings(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against the builder of ``name`` (named defaults first).

    Returns the complete settings as plain data; raises ValueError naming the key.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(list_models())}")
    spec = MODELS.get(name)
    try:
        settings = spec.settings_model.model_validate(_merge(spec.defaults, given))
    except ValidationError as e:
        from convlab.config import format_validation_error

        raise ValueError(format_validation_error(e, f"model {name!r}").split(": ", 1)[1]) from None
    return settings.model_dump(mode="json")


def build_model(model_cfg: Any, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build the model of a ``ModelConfig`` for images of ``in_shape`` (C, H, W)."""
    spec = MODELS.get(model_cfg.name)
    settings = spec.settings_model.model_validate(model_cfg.settings)
    model = spec.builder(settings, tuple(in_shape), num_classes)
    check_shapes(model, in_shape)
    return model


def normalizes_own_input(model_cfg: Any) -> bool:
    """True for models that apply their weights' own input statistics (pretrained)."""
    return model_cfg.settings.get("weights", "none") != "none"


def check_shapes(model: nn.Module, in_shape: tuple[int, int, int]) -> None:
    """Dry forward pass, child by child, so a shape error names the layer at fault."""
    import torch

    x = torch.zeros(2, *in_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for name, layer in iter_leaves(model):
                x = _forward_named(name, layer, x)
    finally:
        model.train(was_training)


def _forward_named(name: str, layer: nn.Module, x: Any) -> Any:
    try:
        return layer(x)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(
            f"model: layer {name} ({layer.__class__.__name__}) cannot take an input of shape "
            f"{'x'.join(map(str, x.shape[1:]))}: {first}"
        ) from None


def iter_leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The top-level children to run in order for a dry pass (the whole model otherwise)."""
    if isinstance(model, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            if isinstance(child, nn.Sequential):
                out += [(f"{name}.{n}", c) for n, c in iter_leaves(child)]
            else:
                out.append((name, child))
        return out
    return [("model", model)]


# Register the builders and the named architectures (import for side effects).
# Builders first: the named architectures refer to them.
from convlab.models import cnn, mlp, resnet  # noqa: E402,F401,I001
from convlab.models import architectures  # noqa: E402,F401,I001
