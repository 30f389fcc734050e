"""Collapse an affine network into the one affine map it computes.

A network whose activations are the identity and whose pooling is average pooling is a
composition of affine maps (conv, linear, average pool, batch norm in eval mode,
padding, flatten), hence affine itself: f(x) = A x + b with

    b = f(0)                        # (n_out,)
    A = df/dx = [f(e_i) - f(0)]_i   # (n_out, n_in): column i is the response to pixel i

Depth buys nothing without a non-linearity: such a "deep" network is exactly as
expressive as one linear layer. :func:`linearize` checks the structure, measures the
affinity numerically, builds (A, b) from n_in + 1 forward passes (batched) and verifies
that A x + b reproduces the network on random inputs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convlab.analysis.common import AnalysisError, leaf_modules
from convlab.analysis.probe import AFF_A, AFF_B, rel_error
from convlab.models.cnn import PermuteFeatures

AFFINE_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.ZeroPad2d, nn.ConstantPad2d, nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d,
    PermuteFeatures,  # a fixed permutation is linear
)


def nonaffine_layers(model: nn.Module) -> list[tuple[str, str]]:
    """(name, type) of the leaves that are not affine in eval mode (ReLU, max pool, ...)."""
    return [(n, type(m).__name__) for n, m in leaf_modules(model)
            if not isinstance(m, AFFINE_LAYERS)]


def make_linear_settings(settings: Any) -> Any:
    """Builder settings with every activation 'identity' and every max pool 'avg'.

    Works on the plain settings of the ``cnn`` and ``mlp`` builders (and any builder
    that names its choices ``activation`` and ``pool``).
    """
    if isinstance(settings, dict):
        out = {}
        for k, v in settings.items():
            if k == "activation":
                out[k] = "identity"
            elif k == "pool" and v == "max":
                out[k] = "avg"
            else:
                out[k] = make_linear_settings(v)
        return out
    if isinstance(settings, list):
        return [make_linear_settings(v) for v in settings]
    return settings


ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
)


def make_linear_module(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its weights, every activation the identity and every max
    pool an average pool of the same geometry.

    Why on the module, not the settings: a trained network must keep its trained
    weights (rebuilding from settings would draw new random ones).
    """
    out = copy.deepcopy(model)
    for name, m in list(out.named_modules()):
        new: nn.Module | None = None
        if isinstance(m, ELEMENTWISE):
            new = nn.Identity()
        elif isinstance(m, nn.MaxPool2d):
            if m.dilation not in (1, (1, 1)):
                raise AnalysisError(f"layer {name}: a dilated max pool has no average-pool "
                                    f"equivalent (nn.AvgPool2d has no dilation)")
            new = nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                               count_include_pad=False)
        elif isinstance(m, nn.AdaptiveMaxPool2d):
            new = nn.AdaptiveAvgPool2d(m.output_size)
        if new is not None:
            parent, _, leaf = name.rpartition(".")
            setattr(out.get_submodule(parent) if parent else out, leaf, new)
    return out


@dataclass(frozen=True)
class AffineMap:
    """f(x) = A @ x.flatten() + b, and how well that reproduces the network."""

    A: torch.Tensor  # (n_out, n_in) float64
    b: torch.Tensor  # (n_out,) float64
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    affinity_error: float  # f(a x + (1-a) y) vs a f(x) + (1-a) f(y)
    reproduction_error: float  # A x + b vs f(x) on random inputs
    tol: float

    @property
    def ok(self) -> bool:
        return self.affinity_error <= self.tol and self.reproduction_error <= self.tol

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (B, *in_shape) -> (B, *out_shape)
        y = x.flatten(1).to(self.A.dtype) @ self.A.T + self.b
        return y.view(-1, *self.out_shape)


def linearize(
    model: nn.Module, in_shape: tuple[int, int, int], checks: int = 8, tol: float = 1e-8,
    seed: int = 0, chunk: int = 1024,
) -> AffineMap:
    """The single affine map equal to ``model`` (eval mode, float64).

    Refuses a model with a non-affine leaf, naming it; then measures affinity, builds
    A column by column (identity images in batches of ``chunk``) and checks A x + b.
    """
    bad = nonaffine_layers(model)
    if bad:
        name, kind = bad[0]
        raise AnalysisError(
            f"the model is not affine: layer {name} ({kind}) is non-linear"
            f"{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}; use identity "
            f"activations and average pooling (--make-linear)"
        )
    f = copy.deepcopy(model).double().eval()
    n_in = math.prod(in_shape)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(checks, *in_shape, generator=gen, dtype=torch.float64)
    y = torch.randn(checks, *in_shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        fx, fy = f(x), f(y)
        lhs = f(AFF_A * x + AFF_B * y)
        affinity = rel_error(lhs - (AFF_A * fx + AFF_B * fy), AFF_A * fx + AFF_B * fy)
        zero = torch.zeros(1, *in_shape, dtype=torch.float64)
        b = f(zero).flatten(1)[0]  # (n_out,)
        cols = []
        for start in range(0, n_in, chunk):
            idx = torch.arange(start, min(start + chunk, n_in))
            basis = torch.zeros(len(idx), n_in, dtype=torch.float64)
            basis[torch.arange(len(idx)), idx] = 1.0
            cols.append(f(basis.view(-1, *in_shape)).flatten(1) - b)  # (chunk, n_out)
        A = torch.cat(cols).T.contiguous()  # (n_out, n_in)
        pred = x.flatten(1) @ A.T + b
        reproduction = rel_error(pred - fx.flatten(1), fx.flatten(1))
    return AffineMap(A, b, tuple(in_shape), tuple(fx.shape[1:]), affinity, reproduction, tol)


def save_affine(m: AffineMap, path: str | Path) -> Path:
    """Write A and b as safetensors (with the shapes as metadata), atomically."""
    import json
    import os

    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    save_file({"A": m.A.contiguous(), "b": m.b.contiguous()}, str(tmp), metadata={
        "in_shape": json.dumps(list(m.in_shape)), "out_shape": json.dumps(list(m.out_shape)),
        "formula": "f(x) = A @ x.flatten() + b",
    })
    os.replace(tmp, p)
    return p
