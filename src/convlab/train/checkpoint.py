"""Weights as safetensors; optimizer, schedule, RNG and loop state with ``torch.save``.

Loading never unpickles arbitrary objects: weights come from safetensors, the rest
through ``torch.load(weights_only=True)``, which rebuilds only tensors and plain data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from convlab.errors import RunError
from convlab.runs import atomic_write


def state_dict_for_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies (safetensors refuses shared or strided storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_weights(model: nn.Module, path: Path) -> None:
    sd = state_dict_for_save(model)
    atomic_write(path, lambda tmp: save_file(sd, str(tmp)))


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    sd = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(sd, str(tmp)))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise RunError(f"{path}: not a valid safetensors file ({e})") from None


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a safetensors state dict, naming the file and the mismatch when it does not fit."""
    sd = load_tensors(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise RunError(
            f"{path}: weights do not fit the model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    for k, v in sd.items():
        if v.shape != own[k].shape:
            raise RunError(
                f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
            )
    model.load_state_dict(sd)


def save_state(state: dict[str, Any], path: Path) -> None:
    """Optimizer/scheduler/RNG/loop state: tensors and plain containers only."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except Exception as e:  # weights_only refusals, truncation, bad zip: all one story
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunError(f"{path}: not a loadable checkpoint state ({first})") from None


def all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())
