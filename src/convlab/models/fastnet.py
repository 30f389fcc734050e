"""``fastnet``: a network shaped for accuracy per second on CIFAR-sized images.

The shape of Keller Jordan's airbench94 (the fastest published CIFAR-10 recipe on one
GPU), made of general convlab pieces: a patch-whitening stem (:mod:`whitening`), then
conv groups of conv 3x3 / max-pool 2 / BatchNorm / GELU / conv 3x3 / BatchNorm / GELU,
a global max pool and a bias-free linear head whose logits are scaled down.

Layout (names matter: analysis and viz address layers by them)::

    FastNet (nn.Sequential)
      whiten, act0          PatchWhitening (frozen filters), activation
      group1 .. groupN      conv1 pool bn1 act1 conv2 bn2 act2
      head                  pool (global max), flatten, fc (no bias), scale
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from torch import nn

from convlab.models import register_builder
from convlab.models.layers import activation, init_weights
from convlab.models.whitening import PatchWhitening
from convlab.schema import Activation, Init, Strict


class FastNetSettings(Strict):
    widths: list[PositiveInt] = Field([64, 256, 256], min_length=1,
                                      description="channels of each conv group")
    whiten_kernel: PositiveInt = Field(2, description="patch size of the whitening stem")
    whiten_eps: PositiveFloat = Field(5e-4, description="added to the patch eigenvalues")
    whiten_bias_epochs: int = Field(3, ge=0, description="epochs the whitening bias trains")
    bn_momentum: float = Field(0.4, gt=0, le=1, description=(
        "BatchNorm running-statistics momentum (PyTorch's convention: weight of the new "
        "batch)"))
    bn_eps: PositiveFloat = Field(1e-12, description="BatchNorm epsilon")
    bn_weight: Literal["train", "frozen"] = Field("frozen", description=(
        "BatchNorm scale: trained, or frozen at 1 (only the shift trains)"))
    activation: Activation = Field("gelu", description="after the stem and each conv")
    scale: PositiveFloat = Field(1 / 9, description="multiplier of the logits")
    init: Init = Field("dirac", description=(
        "conv init: dirac (identity, the recipe's), kaiming, xavier or default"))


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:.4g}"


def batch_norm(channels: int, s: FastNetSettings) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=s.bn_eps, momentum=s.bn_momentum)
    bn.weight.requires_grad_(s.bn_weight == "train")
    return bn


def conv_group(c_in: int, c_out: int, s: FastNetSettings) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        pool=nn.MaxPool2d(2),
        bn1=batch_norm(c_out, s),
        act1=activation(s.activation),
        conv2=nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        bn2=batch_norm(c_out, s),
        act2=activation(s.activation),
    ))


@register_builder("fastnet", FastNetSettings, "patch-whitening stem, conv groups with BN, "
                  "global max pool, scaled linear head (airbench-shaped)")
def build_fastnet(s: FastNetSettings, in_shape: tuple[int, int, int],
                  num_classes: int) -> nn.Sequential:
    whiten = PatchWhitening(in_shape[0], s.whiten_kernel, s.whiten_eps,
                            bias_epochs=s.whiten_bias_epochs)
    layers: dict[str, nn.Module] = {"whiten": whiten, "act0": activation(s.activation)}
    c = whiten.out_channels
    for i, width in enumerate(s.widths, 1):
        layers[f"group{i}"] = conv_group(c, width, s)
        c = width
    layers["head"] = nn.Sequential(OrderedDict(
        pool=nn.AdaptiveMaxPool2d(1), flatten=nn.Flatten(),
        fc=nn.Linear(c, num_classes, bias=False), scale=Scale(s.scale)))
    model = nn.Sequential(OrderedDict(layers))
    init_weights(nn.Sequential(*[m for n, m in model.named_children() if n != "whiten"]),
                 s.init, s.activation)
    return model
