"""The one CNN builder: a list of conv stages, then a flatten or global-pool head.

Layout (names matter: analysis and viz address layers by them)::

    ConvNet (nn.Sequential)
      stage1 .. stageN   Stage: body = conv1 [bn1] act1 ... convK [bnK] [actK]
                                skip (1x1 projection or identity, residual only)
                                post = [pool] [drop]
      head               nn.Sequential: flatten|gap, fc1 act1 [drop1] ..., fc_out
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator
from torch import nn

from convlab.models import register_builder
from convlab.models.layers import activation, init_weights, same_padding
from convlab.schema import Activation, Init, Strict


class StageSettings(Strict):
    channels: PositiveInt
    convs: PositiveInt = 1  # convolutions in this stage
    kernel: PositiveInt = 3
    stride: PositiveInt = 1  # of the first conv; the others use 1
    padding: NonNegativeInt | Literal["same", "valid"] = "same"
    dilation: PositiveInt = 1
    pool: Literal["max", "avg", "none"] = "max"
    pool_size: PositiveInt = 2
    batch_norm: bool = False
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    residual: bool = False  # add the stage input (projected by 1x1 conv if needed)


class HeadSettings(Strict):
    type: Literal["flatten", "gap"] = "flatten"  # gap: global average pooling
    hidden: list[PositiveInt] = []
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)


class CNNSettings(Strict):
    stages: list[StageSettings] = Field(
        default_factory=lambda: [StageSettings(channels=32), StageSettings(channels=64)],
        min_length=1,
    )
    head: HeadSettings = HeadSettings()
    init: Init = "default"

    @model_validator(mode="after")
    def _check(self) -> CNNSettings:
        for i, s in enumerate(self.stages):
            if s.residual and s.padding not in ("same",) and s.kernel > 1:
                raise ValueError(f"stages.{i}: residual needs padding 'same'")
        return self


class Stage(nn.Module):
    """Convs (+BN, activation), an optional residual add, then pooling and dropout."""

    def __init__(self, s: StageSettings, in_channels: int) -> None:
        super().__init__()
        self.residual = s.residual
        body: dict[str, nn.Module] = {}
        c_in = in_channels
        for j in range(1, s.convs + 1):
            stride = s.stride if j == 1 else 1
            if s.padding == "same":
                before, after = same_padding(s.kernel, s.dilation)
                if before != after:
                    body[f"pad{j}"] = nn.ZeroPad2d((before, after, before, after))
                    pad: int = 0
                else:
                    pad = before
            else:
                pad = 0 if s.padding == "valid" else s.padding
            body[f"conv{j}"] = nn.Conv2d(c_in, s.channels, s.kernel, stride, pad, s.dilation,
                                         bias=not s.batch_norm)
            if s.batch_norm:
                body[f"bn{j}"] = nn.BatchNorm2d(s.channels)
            if not (s.residual and j == s.convs):  # residual: activate after the add
                body[f"act{j}"] = activation(s.activation)
            c_in = s.channels
        self.body = nn.Sequential(OrderedDict(body))
        self.skip: nn.Module | None = None
        self.out_act: nn.Module | None = None
        if s.residual:
            needs_proj = in_channels != s.channels or s.stride != 1
            self.skip = (
                nn.Conv2d(in_channels, s.channels, 1, s.stride, bias=False) if needs_proj
                else nn.Identity()
            )
            self.out_act = activation(s.activation)
        post: dict[str, nn.Module] = {}
        if s.pool == "max":
            post["pool"] = nn.MaxPool2d(s.pool_size)
        elif s.pool == "avg":
            post["pool"] = nn.AvgPool2d(s.pool_size)
        if s.dropout:
            post["drop"] = nn.Dropout(s.dropout)
        self.post = nn.Sequential(OrderedDict(post))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        y = self.body(x)
        if self.skip is not None and self.out_act is not None:
            y = self.out_act(y + self.skip(x))
        return self.post(y)  # (B, C, H', W')


class ConvNet(nn.Sequential):
    """Stages followed by a head; a Sequential so any prefix is itself a model."""


def _head(h: HeadSettings, features: int, num_classes: int) -> nn.Sequential:
    layers: dict[str, nn.Module] = {}
    if h.type == "gap":
        layers["gap"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    width = features
    for i, hidden in enumerate(h.hidden, 1):
        layers[f"fc{i}"] = nn.Linear(width, hidden)
        layers[f"act{i}"] = activation(h.activation)
        if h.dropout:
            layers[f"drop{i}"] = nn.Dropout(h.dropout)
        width = hidden
    layers["fc_out"] = nn.Linear(width, num_classes)
    return nn.Sequential(OrderedDict(layers))


@register_builder("cnn", CNNSettings, "conv stages (+BN, pooling, residual) and an FC/GAP head")
def build_cnn(s: CNNSettings, in_shape: tuple[int, int, int], num_classes: int) -> ConvNet:
    from convlab.models import _forward_named

    stages: dict[str, nn.Module] = {}
    x = torch.zeros(1, *in_shape)  # dry run to size the head, naming a layer that fails
    c = in_shape[0]
    for i, st in enumerate(s.stages, 1):
        stage = Stage(st, c)
        stage.eval()
        with torch.no_grad():
            for name, layer in (("body", stage.body), ("post", stage.post)):
                for n, sub in layer.named_children():
                    x = _forward_named(f"stage{i}.{name}.{n}", sub, x)
        stages[f"stage{i}"] = stage
        c = st.channels
    features = c if s.head.type == "gap" else x[0].numel()
    model = ConvNet(OrderedDict({**stages, "head": _head(s.head, features, num_classes)}))
    init_weights(model, s.init, s.stages[0].activation)
    return model
