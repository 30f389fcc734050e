"""The registered optimizers: torch's SGD, Adam and AdamW with their own settings."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from convlab.optim import register_optimizer
from convlab.schema import Strict


class SGDSettings(Strict):
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum factor (0: plain SGD)")
    nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0)")

    @model_validator(mode="after")
    def _check(self) -> SGDSettings:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


class AdamSettings(Strict):
    betas: tuple[float, float] = Field(
        (0.9, 0.999), description="decay rates of the first and second moment estimates")
    eps: float = Field(1e-8, gt=0, description="added to the denominator for stability")


@register_optimizer("sgd", SGDSettings, "stochastic gradient descent with momentum")
def sgd(params: Any, lr: float, weight_decay: float, s: SGDSettings) -> Any:
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=s.momentum, nesterov=s.nesterov,
                           weight_decay=weight_decay)


@register_optimizer("adam", AdamSettings, "Adam (Kingma & Ba 2015); L2 weight decay")
def adam(params: Any, lr: float, weight_decay: float, s: AdamSettings) -> Any:
    import torch

    return torch.optim.Adam(params, lr=lr, betas=s.betas, eps=s.eps, weight_decay=weight_decay)


@register_optimizer("adamw", AdamSettings, "AdamW (Loshchilov & Hutter 2019): decoupled decay")
def adamw(params: Any, lr: float, weight_decay: float, s: AdamSettings) -> Any:
    import torch

    return torch.optim.AdamW(params, lr=lr, betas=s.betas, eps=s.eps, weight_decay=weight_decay)
