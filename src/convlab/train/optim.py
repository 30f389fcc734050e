"""Optimizers and learning-rate schedules of a run, through their registries
(:mod:`convlab.optim`): ``LambdaLR`` drives the schedule's pure formula once per step,
with the common linear warm-up applied the same way to every schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from convlab.config import OptimConfig, ScheduleConfig
from convlab.optim import OPTIMIZERS, SCHEDULES


def build_optimizer(
    params: list[nn.Parameter] | list[dict], cfg: OptimConfig
) -> torch.optim.Optimizer:
    spec = OPTIMIZERS.get(cfg.name)
    return spec.build(params, cfg.lr, cfg.weight_decay,
                      spec.settings_model.model_validate(cfg.settings))


def schedule_factor(cfg: ScheduleConfig) -> Any:
    """``f(epoch, epochs, base_lr)``: the multiplier of the base learning rate at a
    fractional epoch in [0, epochs), warm-up included (settings validated once)."""
    spec = SCHEDULES.get(cfg.name)
    settings = spec.settings_model.model_validate(cfg.settings)
    warmup = cfg.warmup_epochs

    def factor(epoch: float, epochs: int, base_lr: float) -> float:
        f = spec.factor(settings, epoch, epochs, base_lr)
        if warmup and epoch < warmup:
            f *= epoch / warmup
        return f

    return factor


def lr_factor(cfg: ScheduleConfig, epoch: float, epochs: int, base_lr: float) -> float:
    """Multiplier of the base learning rate at fractional ``epoch`` in [0, epochs)."""
    return schedule_factor(cfg)(epoch, epochs, base_lr)


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int, steps_per_epoch: int,
    base_lr: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per optimizer step; step k is at epoch k / steps_per_epoch."""
    factor = schedule_factor(cfg)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: factor(k / steps_per_epoch, epochs, base_lr)
    )
