"""Optimizers and learning-rate schedules.

The schedules are one pure function of the fractional epoch, ``lr_factor``, driven by
``LambdaLR`` once per step. Written by hand (rather than chaining torch's schedulers)
because every schedule then composes with linear warm-up the same way, is testable as
a formula, and resumes exactly from nothing but the step count.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from convlab.config import OptimConfig, ScheduleConfig


def build_optimizer(
    params: list[nn.Parameter] | list[dict], cfg: OptimConfig
) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas,
                                weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def lr_factor(cfg: ScheduleConfig, epoch: float, epochs: int, base_lr: float) -> float:
    """Multiplier of the base learning rate at fractional ``epoch`` in [0, epochs).

    - step: gamma ** floor(epoch / step_size)
    - exponential: gamma ** floor(epoch)  (decay once per epoch, as ExponentialLR)
    - cosine: min_lr + (lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2  (Loshchilov &
      Hutter 2017, without restarts)
    - onecycle: cosine rise from lr/25 to lr over pct_start, then cosine fall to lr/1e4
      (Smith & Topin 2018; torch's OneCycleLR defaults)
    Linear warm-up multiplies any of them by epoch / warmup_epochs while below it.
    """
    t = epoch / epochs  # progress in [0, 1)
    if cfg.name == "constant":
        f = 1.0
    elif cfg.name == "step":
        f = cfg.gamma ** math.floor(epoch / cfg.step_size)
    elif cfg.name == "exponential":
        f = cfg.gamma ** math.floor(epoch)
    elif cfg.name == "cosine":
        floor = cfg.min_lr / base_lr
        f = floor + (1 - floor) * (1 + math.cos(math.pi * t)) / 2
    else:  # onecycle
        start, end = 1 / 25, 1 / 25 / 1e4
        if t < cfg.pct_start:
            f = _cos_between(start, 1.0, t / cfg.pct_start)
        else:
            f = _cos_between(1.0, end, (t - cfg.pct_start) / (1 - cfg.pct_start))
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        f *= epoch / cfg.warmup_epochs
    return f


def _cos_between(a: float, b: float, t: float) -> float:
    """Cosine interpolation from a (t=0) to b (t=1)."""
    return b + (a - b) * (1 + math.cos(math.pi * t)) / 2


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int, steps_per_epoch: int,
    base_lr: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per optimizer step; step k is at epoch k / steps_per_epoch."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: lr_factor(cfg, k / steps_per_epoch, epochs, base_lr)
    )
