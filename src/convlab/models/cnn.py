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
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from torch import nn

from convlab.models import register_builder
from convlab.models.layers import activation, init_weights, same_padding
from convlab.schema import Activation, Init, Strict


class StageSettings(Strict):
    """One stage: convolutions (+BN, activation), an optional residual add, pooling."""

    channels: PositiveInt = Field(description="output channels of every conv in the stage")
    convs: PositiveInt = Field(1, description="convolutions in this stage")
    kernel: PositiveInt = Field(3, description="kernel size (square)")
    stride: PositiveInt = Field(1, description="stride of the first conv; the others use 1")
    padding: NonNegativeInt | Literal["same", "valid"] = Field("same", description=(
        "zeros on each side, 'same' (keeps the size at stride 1) or 'valid' (none)"))
    dilation: PositiveInt = Field(1, description="spacing of the kernel's taps")
    pool: Literal["max", "avg", "none"] = Field("max", description="pooling after the convs")
    pool_size: PositiveInt = Field(2, description="pooling window and stride")
    batch_norm: bool = Field(False, description="BatchNorm after each conv (convs lose bias)")
    bn_momentum: float = Field(0.1, gt=0, le=1, description=(
        "BatchNorm running-statistics momentum (PyTorch's convention: weight of the new batch)"))
    bn_eps: PositiveFloat = Field(1e-5, description="BatchNorm epsilon")
    bn_weight: Literal["train", "frozen"] = Field("train", description=(
        "BatchNorm scale: trained, or frozen at 1 (only the shift trains)"))
    activation: Activation = Field("relu", description="after each conv (and the add)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after pooling")
    residual: bool = Field(False, description=(
        "add the stage input (projected by a 1x1 conv if its shape differs)"))


class HeadSettings(Strict):
    """What follows the stages: flatten (or global average pooling), then FC layers."""

    type: Literal["flatten", "gap"] = Field("flatten", description=(
        "flatten the last feature map, or gap: global average pooling per channel"))
    flatten_order: Literal["natural", "permuted"] = Field("natural", description=(
        "permuted: a fixed random permutation of the flattened features (seeded by "
        "flatten_seed) before the first FC layer; an FC layer learns the same function "
        "under any fixed order"))
    flatten_seed: int = Field(0, description="seed of the permutation of flatten_order")
    hidden: list[PositiveInt] = Field([], description="widths of hidden FC layers")
    activation: Activation = Field("relu", description="after each hidden FC layer")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden FC layer")


class CNNSettings(Strict):
    """The ``cnn`` builder: conv stages, then a head."""

    stages: list[StageSettings] = Field(
        default_factory=lambda: [StageSettings(channels=32), StageSettings(channels=64)],
        min_length=1, description="the conv stages, in order (at least one)",
    )
    head: HeadSettings = Field(HeadSettings(), description="flatten or GAP, then FC layers")
    init: Init = Field("default", description=(
        "weight init: default (PyTorch's), kaiming (ReLU nets), xavier (tanh) or dirac "
        "(identity convolutions)"))

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
                bn = nn.BatchNorm2d(s.channels, eps=s.bn_eps, momentum=s.bn_momentum)
                bn.weight.requires_grad_(s.bn_weight == "train")
                body[f"bn{j}"] = bn
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


class PermuteFeatures(nn.Module):
    """A fixed permutation of the features of a flattened map: (B, N) -> (B, N).

    The permutation is drawn from ``seed`` and kept as a buffer (it is saved with the
    weights), so the order is the same in every process that builds the model.
    """

    def __init__(self, features: int, seed: int) -> None:
        super().__init__()
        perm = torch.randperm(features, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", perm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N)
        return x.index_select(1, self.perm)  # type: ignore[arg-type]


def _head(h: HeadSettings, features: int, num_classes: int) -> nn.Sequential:
    layers: dict[str, nn.Module] = {}
    if h.type == "gap":
        layers["gap"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    if h.flatten_order == "permuted":
        layers["permute"] = PermuteFeatures(features, h.flatten_seed)
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
