"""Small building blocks shared by the builders."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def init_weights(model: nn.Module, scheme: str, nonlinearity: str = "relu") -> None:
    """Kaiming (He et al. 2015) for ReLU-like nets, Xavier (Glorot & Bengio 2010) for tanh.

    ``default`` keeps PyTorch's own initialisation. Biases start at zero otherwise.
    ``dirac``: identity initialisation of convolutions (DiracNets, Zagoruyko & Komodakis
    2017; airbench's recipe): the first ``in_channels`` filters of each convolution pass
    their input channel through at the kernel's centre, the others keep PyTorch's
    initialisation, and so do linear layers.
    """
    if scheme == "default":
        return
    if scheme == "dirac":
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.groups == 1:
                with torch.no_grad():
                    n = min(m.in_channels, m.out_channels)
                    nn.init.dirac_(m.weight[:n])
        return
    gain_name = {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh"}.get(
        nonlinearity, "linear"
    )
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=gain_name
                                        if gain_name in ("relu", "leaky_relu") else "linear")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain(gain_name))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding that keeps the size at stride 1: total d*(k-1).

    Odd kernels pad symmetrically; even kernels put the extra pixel after (TensorFlow's
    convention), which needs an explicit ``ZeroPad2d`` since ``Conv2d`` pads symmetrically.
    """
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """floor((n + 2p - d(k-1) - 1) / s) + 1, the size formula of ``nn.Conv2d``."""
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
