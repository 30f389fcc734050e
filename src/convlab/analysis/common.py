"""Shared helpers of the analysis toolkit: its error type, shape parsing, model lookup.

Every analysis command takes "a model or an experiment": a registered model name (built
with its default settings for a given input) or an experiment file / bundled experiment
(whose dataset fixes the input shape). :func:`resolve_model` is that one rule, so the
commands agree on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from convlab.errors import ConvlabError
from convlab.usercode import short_name

DEFAULT_INPUT: tuple[int, int, int] = (1, 28, 28)
DEFAULT_CLASSES = 10


class AnalysisError(ConvlabError, ValueError):
    """Bad input to an analysis: a malformed shape or matrix, impossible arithmetic,
    an unknown model, operator or layer name. One line; the CLI exits with code 2."""


def parse_shape(text: str, what: str = "--input") -> tuple[int, int, int]:
    """``"1x28x28"`` -> (1, 28, 28): a CxHxW image shape of positive integers."""
    parts = re.split(r"\s*[x×,]\s*", text.strip().lower())
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise AnalysisError(
            f"{what} {text!r}: expected CxHxW with positive integers, e.g. 1x28x28 or 3x32x32"
        )
    c, h, w = (int(p) for p in parts)
    return c, h, w


def parse_hw(text: str, what: str = "--input") -> tuple[int, int]:
    """``"28"`` -> (28, 28); ``"28x32"`` -> (28, 32): a square or rectangular size (H, W)."""
    parts = re.split(r"\s*[x×,]\s*", str(text).strip().lower())
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise AnalysisError(
            f"{what} {text!r}: expected a size N or HxW with positive integers, e.g. 28 or 28x32"
        )
    h = int(parts[0])
    w = int(parts[-1])
    return h, w


@dataclass(frozen=True)
class ResolvedModel:
    """A built model and where it came from."""

    model: nn.Module
    in_shape: tuple[int, int, int]
    num_classes: int
    label: str  # "model pw1" or "experiment path/to/file.yaml (model pw1)"
    model_name: str
    settings: dict[str, Any]


def is_model_name(name: str) -> bool:
    from convlab.models import MODELS

    return name in MODELS


def model_settings(
    name: str, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """The complete settings of a registered model, after ``key=value`` overrides.

    Overrides address the builder's settings (``stages.0.kernel=5``, ``hidden=[64]``),
    parsed as YAML like ``--set`` of an experiment.
    """
    from convlab.config import apply_override, parse_override
    from convlab.models import resolve_settings

    if not is_model_name(name):
        raise AnalysisError(_unknown(name))
    settings = resolve_settings(name, {})
    for item in overrides:
        keys, value = parse_override(item)
        apply_override(settings, keys, value)
    try:
        return resolve_settings(name, settings)
    except ValueError as e:
        raise AnalysisError(f"model {name!r}: {e}") from None


def build_from_settings(
    name: str, settings: dict[str, Any], in_shape: tuple[int, int, int], num_classes: int
) -> nn.Module:
    """Build registered model ``name`` with complete ``settings`` for ``in_shape``."""
    from convlab.config import ModelConfig
    from convlab.models import build_model, resolve_settings

    try:
        resolved = resolve_settings(name, settings)  # a clean one-line message on error
    except ValueError as e:
        raise AnalysisError(f"model {name!r}: {e}") from None
    cfg = ModelConfig.model_validate({"name": name, **resolved})
    return build_model(cfg, in_shape, num_classes)


def resolve_model(
    target: str,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> ResolvedModel:
    """Build a registered model (``pw1``), the model of an experiment (file or bundled),
    or the trained model of a run folder (its saved weights loaded).

    A model name gets ``input_shape`` (default 1x28x28) and ``num_classes`` (default 10);
    an experiment takes both from its dataset (:func:`convlab.data.input_spec`) unless
    given. Overrides are model settings for a model name, experiment keys
    (``model.stages.0.kernel=5``) for an experiment.
    """
    if num_classes is not None and num_classes < 1:
        raise AnalysisError(f"--classes {num_classes}: expected a positive integer")
    if (Path(target) / "summary.json").is_file():  # a run folder: the trained model
        from convlab.runs import Run

        run = Run.open(target)
        model = run.load_model()
        shape = tuple(run.summary["input_shape"])
        return ResolvedModel(
            model, shape, int(run.summary["num_classes"]),  # type: ignore[arg-type]
            f"run {run.name} (model {short_name(run.config.model.name)})", run.config.model.name,
            run.config.model.settings,
        )
    if is_model_name(target):
        settings = model_settings(target, overrides)
        shape = input_shape or DEFAULT_INPUT
        classes = num_classes or DEFAULT_CLASSES
        model = build_from_settings(target, settings, shape, classes)
        return ResolvedModel(model, shape, classes, f"model {target}", target, settings)
    from convlab.config import ConfigError, load_config
    from convlab.data import input_spec
    from convlab.models import build_model

    looks_like_file = Path(target).suffix in (".yaml", ".yml") or Path(target).exists()
    try:
        cfg = load_config(target, list(overrides))
    except ConfigError as e:
        if looks_like_file:
            raise
        if "neither a file nor a bundled experiment" in str(e):
            raise AnalysisError(_unknown(target)) from None
        raise
    if input_shape is None or num_classes is None:
        data_shape, data_classes = input_spec(cfg.data)
        input_shape = input_shape or data_shape
        num_classes = num_classes or data_classes
    model = build_model(cfg.model, input_shape, num_classes)
    return ResolvedModel(
        model, input_shape, num_classes, f"experiment {target} (model {cfg.model.name})",
        cfg.model.name, cfg.model.settings,
    )


def _unknown(name: str) -> str:
    from convlab.config import bundled_examples
    from convlab.models import list_models

    bundled = ", ".join(bundled_examples()) or "none"
    return (
        f"{name!r} is neither a registered model ({', '.join(list_models())}) nor an "
        f"experiment file or bundled experiment ({bundled})"
    )


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def is_leaf(m: nn.Module) -> bool:
    """A module that computes something itself: no children, and not an empty container
    (a ``cnn`` stage without pooling has an empty ``post`` Sequential)."""
    return not isinstance(m, CONTAINERS) and not any(True for _ in m.children())


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(dotted name, module) of every leaf module, in registration order."""
    return [(n, m) for n, m in model.named_modules() if n and is_leaf(m)]


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a safetensors state dict (e.g. a run's ``model.safetensors``) into ``model``.

    safetensors holds tensors only, so loading cannot run code (no pickle). Every key
    must match: a state dict of another architecture is refused, naming the first
    missing and unexpected key.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise AnalysisError(f"--weights {p}: file not found")
    try:
        state = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise AnalysisError(f"--weights {p}: not a safetensors file ({e})") from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise AnalysisError(
            f"--weights {p}: does not fit this model ({len(missing)} missing keys, e.g. "
            f"{missing[:1]}; {len(unexpected)} unexpected, e.g. {unexpected[:1]})"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        raise AnalysisError(
            f"--weights {p}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, the model "
            f"expects {tuple(own[bad[0]].shape)}"
        )
    model.load_state_dict(state)
