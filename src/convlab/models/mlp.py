"""A fully connected network: flatten, then hidden layers (BN, activation, dropout)."""

from __future__ import annotations

from collections import OrderedDict
from math import prod

from pydantic import Field, PositiveInt
from torch import nn

from convlab.models import register_builder
from convlab.models.layers import activation, init_weights
from convlab.schema import Activation, Init, Strict


class MLPSettings(Strict):
    hidden: list[PositiveInt] = Field([256, 256], description="widths of the hidden layers")
    activation: Activation = Field("relu", description="after each hidden layer")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="BatchNorm after each hidden linear layer")
    init: Init = Field("default", description=(
        "weight init: default (PyTorch's), kaiming (ReLU nets) or xavier (tanh)"))


class MLP(nn.Sequential):
    """flatten, fc1 [bn1] act1 [drop1], ..., fc_out."""


@register_builder("mlp", MLPSettings, "fully connected: hidden sizes, activation, dropout, BN")
def build_mlp(s: MLPSettings, in_shape: tuple[int, int, int], num_classes: int) -> MLP:
    layers: dict[str, nn.Module] = {"flatten": nn.Flatten()}
    width = prod(in_shape)
    for i, hidden in enumerate(s.hidden, 1):
        layers[f"fc{i}"] = nn.Linear(width, hidden)
        if s.batch_norm:
            layers[f"bn{i}"] = nn.BatchNorm1d(hidden)
        layers[f"act{i}"] = activation(s.activation)
        if s.dropout:
            layers[f"drop{i}"] = nn.Dropout(s.dropout)
        width = hidden
    layers["fc_out"] = nn.Linear(width, num_classes)
    model = MLP(OrderedDict(layers))
    init_weights(model, s.init, s.activation)
    return model
