"""Weights as safetensors; optimizer, schedule, RNG and loop state with ``torch.save``.

Loading never unpickles arbitrary objects: weights come from safetensors, the rest
through ``torch.load(weights_only=True)``, which rebuilds only tensors and plain data.
"""

from __future__ import annotations

import torch
from torch import nn

from convlab.io import (  # noqa: F401 - re-exported: the loop saves through these
    load_state,
    load_tensors,
    load_weights,
    save_state,
    save_tensors,
    save_weights,
    state_dict_for_save,
)


def all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())
