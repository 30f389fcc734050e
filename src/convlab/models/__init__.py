"""Models: one registry of builders and named architectures, and users' own models.

A *builder* (``cnn``, ``mlp``) is a function ``(settings, in_shape, num_classes) ->
nn.Module`` with a pydantic settings model. A *named architecture* (``pw1``, ``lenet5``)
is a builder name plus a dict of settings: a few lines of data, never a copied class.

A user's model is named by a colon (``nets.py:TinyNet``, ``mypkg.nets:TinyNet``; see
:mod:`convlab.usercode`) or registered with :func:`register_model`. It is an
``nn.Module`` subclass or a function returning one; the other keys of the model section
are its keyword arguments, checked against its signature, and the parameters named
``num_classes``, ``in_channels`` and ``in_shape`` that the config does not set are
passed from the dataset (:data:`DATASET_PARAMS`). Installed packages register models
through the entry-point group ``convlab.plugins``. See docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from torch import nn

from convlab.errors import ModelError
from convlab.registry import Registry
from convlab.usercode import (
    UserCodeError,
    call_user,
    check_kwargs,
    is_user_ref,
    json_defaults,
    load_object,
    user_error,
)

Builder = Callable[..., nn.Module]

# Parameters a user's model may declare to receive the dataset's input spec.
DATASET_PARAMS = ("num_classes", "in_channels", "in_shape")

PLUGIN_GROUP = "convlab.plugins"


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, its settings model and default settings.

    ``settings_model`` None marks a user callable that takes keyword arguments (checked
    against its signature) instead of a settings object.
    """

    name: str
    builder: Builder
    settings_model: type[BaseModel] | None
    defaults: dict[str, Any] = field(default_factory=dict)
    base: str | None = None  # the builder a named architecture is made from
    description: str = ""
    source: str = ""  # "module:qualname" of the builder: a second registration must match

    @property
    def takes_kwargs(self) -> bool:
        return self.settings_model is None


MODELS: Registry[ModelSpec] = Registry("model")


def _source_of(obj: Any) -> str:
    """Where a registered object comes from. A notebook cell run twice gives the same
    ``__main__:Name`` (so it replaces); another file gives another source (refused)."""
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _add(spec: ModelSpec) -> None:
    if spec.name in MODELS:
        old = MODELS.get(spec.name)
        if old.source != spec.source:
            raise ModelError(
                f"model {spec.name!r} is already registered by {old.source}; "
                f"{spec.source} cannot register the same name"
            )
        MODELS.replace(spec.name, spec)
        return
    MODELS.add(spec.name, spec)


def register_builder(
    name: str, settings_model: type[BaseModel], description: str = ""
) -> Callable[[Builder], Builder]:
    """Decorator for a builder ``fn(settings, in_shape, num_classes)``."""

    def add(fn: Builder) -> Builder:
        _add(ModelSpec(name, fn, settings_model, description=description,
                       source=_source_of(fn)))
        return fn

    return add


def register_model(
    name: str, settings: type[BaseModel] | None = None, description: str = ""
) -> Callable[[Any], Any]:
    """Register a user's model under a plain name: ``@convlab.register_model("mynet")``.

    Without ``settings`` the decorated class or function takes keyword arguments from
    the model section (checked against its signature; ``num_classes``, ``in_channels``,
    ``in_shape`` passed from the dataset). With a pydantic ``settings`` model it is a
    builder like the built-in ones: ``fn(settings, in_shape, num_classes)``.
    Registering a name again from the same source replaces it (a notebook cell run
    twice); from another source it is an error naming both.
    """

    def add(obj: Any) -> Any:
        if not callable(obj):
            raise ModelError(f"register_model({name!r}): expected a class or function, "
                             f"got {type(obj).__name__}")
        doc = (inspect.getdoc(obj) or "").strip().splitlines()
        _add(ModelSpec(name, obj, settings, description=description or (doc[0] if doc else ""),
                       source=_source_of(obj)))
        return obj

    return add


def register_architecture(name: str, base: str, description: str, **settings: Any) -> None:
    """A named architecture: ``base`` builder with these settings as defaults."""
    spec = MODELS.get(base)
    if spec.settings_model is not None:
        spec.settings_model.model_validate(settings)  # a broken preset fails at import
    _add(ModelSpec(name, spec.builder, spec.settings_model, settings, base, description,
                   source=f"architecture:{base}:{sorted(settings.items())!r}"))


_plugins_loaded = False


def load_plugins() -> None:
    """Import the ``convlab.plugins`` entry points of installed packages, once.

    An entry point names a module (imported: its decorators register) or a callable
    (called with no arguments). A plugin that fails is one line naming it.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not inspect.ismodule(obj):
                obj()
        except ModelError:
            raise
        except Exception as e:
            raise UserCodeError(f"plugin {ep.name} ({ep.value}): {user_error(e, 'loading')}"
                                ) from e


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a glob (plugins included), e.g. ``list_models("res*")``."""
    load_plugins()
    return MODELS.list(pattern)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered name or of a user reference (``nets.py:TinyNet``)."""
    if is_user_ref(name):
        return user_spec(name)
    load_plugins()
    if name not in MODELS:
        raise ModelError(unknown_model_message(name))
    return MODELS.get(name)


def unknown_model_message(name: str) -> str:
    names = MODELS.list()
    hint = difflib.get_close_matches(name, names, n=1)
    if hint:
        tip = f"; did you mean {hint[0]!r}?"
    elif "." in name:  # mynet.MyNet: the user meant their own code
        mod, _, attr = name.rpartition(".")
        tip = f"; your own code is named with a colon: {mod}:{attr} or {mod}.py:{attr}"
    else:
        tip = " (or your own code: file.py:Name or module:Name)"
    return f"unknown model {name!r}; expected one of: {', '.join(names)}{tip}"


def user_spec(ref: str) -> ModelSpec:
    """A spec for user code named by a colon; imported now (cached by content)."""
    loaded = load_object(ref)
    obj = loaded.obj
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise ModelError(f"model {ref!r}: {obj.__name__} is a class but not an nn.Module "
                         f"subclass")
    if not callable(obj):
        raise ModelError(f"model {ref!r}: is a {type(obj).__name__}; expected an nn.Module "
                         f"subclass or a function returning one")
    doc = (inspect.getdoc(obj) or "").strip().splitlines()
    return ModelSpec(loaded.ref, obj, None, description=doc[0] if doc else "",
                     source=str(loaded.file or ref))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_settings(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against the builder of ``name`` (named defaults first).

    Returns the complete settings as plain data; raises ValueError naming the key. For a
    user's callable the complete settings are the given keys plus the signature's
    plain-data defaults (the dataset parameters are filled in when it is built).
    """
    try:
        spec = get_spec(name)
    except UserCodeError as e:
        raise ValueError(str(e)) from None
    merged = _merge(spec.defaults, given)
    if spec.settings_model is None:
        try:
            check_kwargs(spec.builder, merged, f"model {name!r}", optional=DATASET_PARAMS)
        except UserCodeError as e:
            raise ValueError(str(e).removeprefix(f"model {name!r}: ")) from None
        return {**json_defaults(spec.builder, skip=DATASET_PARAMS), **merged}
    try:
        settings = spec.settings_model.model_validate(merged)
    except ValidationError as e:
        from convlab.schema import format_validation_error

        raise ValueError(format_validation_error(e, f"model {name!r}").split(": ", 1)[1]) from None
    return settings.model_dump(mode="json")


def dataset_params(in_shape: tuple[int, int, int], num_classes: int) -> dict[str, Any]:
    return {"num_classes": num_classes, "in_channels": in_shape[0], "in_shape": tuple(in_shape)}


def build(
    name: str, settings: dict[str, Any], in_shape: tuple[int, int, int], num_classes: int,
    check: bool = True,
) -> nn.Module:
    """Build model ``name`` with complete ``settings`` for images of ``in_shape`` (C, H, W),
    then check with a dry forward pass that it takes them and returns one score per class."""
    spec = get_spec(name)
    in_shape = tuple(in_shape)  # type: ignore[assignment]
    if spec.settings_model is None:
        kwargs = check_kwargs(spec.builder, settings, f"model {name!r}",
                              provided=dataset_params(in_shape, num_classes))
        model = call_user(spec.builder, kwargs, f"building model {name}")
        if not isinstance(model, nn.Module):
            raise ModelError(f"model {name!r}: returned a {type(model).__name__}; expected an "
                             f"nn.Module")
    else:
        model = spec.builder(spec.settings_model.model_validate(settings), in_shape, num_classes)
    if check:
        check_shapes(model, in_shape, num_classes, user=spec.takes_kwargs)
    return model


def build_model(model_cfg: Any, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build the model of a ``ModelConfig`` (``.name``, ``.settings``)."""
    return build(model_cfg.name, model_cfg.settings, in_shape, num_classes)


def create_model(
    name_or_section: str | dict[str, Any], in_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
) -> nn.Module:
    """A model from a name (``"pw1"``, ``"nets.py:TinyNet"``) or a model section
    (``{"name": "cnn", "stages": [...]}``), built for ``in_shape`` and ``num_classes``."""
    section = ({"name": name_or_section} if isinstance(name_or_section, str)
               else dict(name_or_section))
    name = section.pop("name", "cnn")
    try:
        settings = resolve_settings(name, section)
    except ValueError as e:
        raise ModelError(f"model {name!r}: {e}") from None
    return build(name, settings, in_shape, num_classes)


_SKIP_PRETRAINED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "skip_pretrained", default=False)


@contextlib.contextmanager
def trained_weights_follow() -> Iterator[None]:
    """While active, builders skip reading pretrained weights (ImageNet, a state-dict
    file) but keep everything else they imply (the architecture, the input
    normalization): the caller loads a run's own trained weights over them next, so
    reopening a run needs neither the network nor the original weights file."""
    token = _SKIP_PRETRAINED.set(True)
    try:
        yield
    finally:
        _SKIP_PRETRAINED.reset(token)


def pretrained_wanted() -> bool:
    """False inside :func:`trained_weights_follow`."""
    return not _SKIP_PRETRAINED.get()


def normalizes_own_input(model_cfg: Any) -> bool:
    """True for models that apply their weights' own input statistics (pretrained)."""
    return model_cfg.settings.get("weights", "none") != "none"


def check_shapes(
    model: nn.Module, in_shape: tuple[int, int, int], num_classes: int | None = None,
    user: bool = False,
) -> None:
    """Dry forward pass of 2 zero images, child by child for a Sequential so a shape error
    names the layer at fault; the output must be ``(batch, num_classes)``.

    ``user``: the model is user code, whose exceptions become one line naming the user's
    file and line.
    """
    import torch

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(2, *in_shape, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if user:
                try:
                    x = model(x)
                except Exception as e:
                    raise user_error(e, f"a forward pass on a batch of shape "
                                        f"{tuple(x.shape)}") from e
            else:
                for name, layer in iter_leaves(model):
                    x = _forward_named(name, layer, x)
    finally:
        model.train(was_training)
    if num_classes is None:
        return
    if not isinstance(x, torch.Tensor):
        raise ModelError(f"model: its forward returns a {type(x).__name__}; expected one tensor "
                         f"of shape (batch, num_classes) = (2, {num_classes})")
    if tuple(x.shape) != (2, num_classes):
        raise ModelError(f"model: its forward returns shape {tuple(x.shape)} for a batch of 2 "
                         f"images of {'x'.join(map(str, in_shape))}; expected (batch, "
                         f"num_classes) = (2, {num_classes})")


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


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total, trainable and frozen parameter counts (a linear probe is mostly frozen)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params": total, "trainable_params": trainable, "frozen_params": total - trainable}


def importable_ref(obj: Any) -> tuple[str, bool]:
    """The colon reference of a class or function and whether a fresh process can
    import it (``__main__`` and notebook classes cannot)."""
    import sys

    module = getattr(obj, "__module__", "") or ""
    qual = getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))
    mod = sys.modules.get(module)
    if module.startswith("convlab_user_") and getattr(mod, "__file__", None):
        return f"{mod.__file__}:{qual}", "<locals>" not in qual  # type: ignore[union-attr]
    return f"{module}:{qual}", module not in ("__main__", "builtins") and "<locals>" not in qual


# Register the builders and the named architectures (import for side effects).
# Builders first: the named architectures refer to them.
from convlab.models import cnn, fastnet, mlp, resnet  # noqa: E402,F401,I001
from convlab.models import architectures  # noqa: E402,F401,I001
