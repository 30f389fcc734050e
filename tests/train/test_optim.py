"""Learning-rate schedules as formulas, worked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from convlab.config import OptimConfig, ScheduleConfig
from convlab.train.optim import build_optimizer, build_scheduler, lr_factor


def test_step_and_exponential() -> None:
    step = ScheduleConfig(name="step", step_size=2, gamma=0.5)
    assert [lr_factor(step, e, 6, 0.1) for e in (0, 1.9, 2, 4.5)] == [1, 1, 0.5, 0.25]
    expo = ScheduleConfig(name="exponential", gamma=0.9)
    assert lr_factor(expo, 2.5, 10, 0.1) == pytest.approx(0.81)  # 0.9 ** 2


def test_cosine_hits_min_lr_half_way_average() -> None:
    cos = ScheduleConfig(name="cosine", min_lr=0.01)
    assert lr_factor(cos, 0, 10, 0.1) == pytest.approx(1.0)
    # half way: 0.1 + (1 - 0.1) * (1 + cos(pi/2)) / 2 = 0.55
    assert lr_factor(cos, 5, 10, 0.1) == pytest.approx(0.55)


def test_onecycle_rises_then_falls() -> None:
    oc = ScheduleConfig(name="onecycle", pct_start=0.25)
    assert lr_factor(oc, 0, 4, 1.0) == pytest.approx(1 / 25)
    assert lr_factor(oc, 1, 4, 1.0) == pytest.approx(1.0)  # the peak at 25%
    assert lr_factor(oc, 3.999, 4, 1.0) < 1e-3


def test_warmup_multiplies() -> None:
    cfg = ScheduleConfig(name="constant", warmup_epochs=2)
    assert lr_factor(cfg, 0.5, 10, 1.0) == pytest.approx(0.25)
    assert lr_factor(cfg, 2, 10, 1.0) == 1.0


def test_scheduler_steps_per_batch() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], OptimConfig(name="sgd", lr=1.0))
    sched = build_scheduler(opt, ScheduleConfig(name="step", step_size=1, gamma=0.1), 3, 4, 1.0)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1] * 4 + [0.1] * 4)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_take_weight_decay(name: str) -> None:
    p = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer([p], OptimConfig(name=name, lr=0.1, weight_decay=0.5))
    p.grad = torch.zeros(3)
    opt.step()
    assert torch.all(p < 1) and math.isfinite(float(p.detach().sum()))
