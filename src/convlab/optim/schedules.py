"""The registered learning-rate schedules: each a pure formula of the fractional epoch.

Written by hand (rather than chaining torch's schedulers) because every schedule then
composes with linear warm-up the same way, is testable as a formula, and resumes exactly
from nothing but the step count. ``t = epoch / epochs`` is the progress in [0, 1).
"""

from __future__ import annotations

import math

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from convlab.optim import register_schedule
from convlab.schema import Strict


class NoSettings(Strict):
    pass


class StepSettings(Strict):
    step_size: PositiveInt = Field(10, description="epochs between decays")
    gamma: PositiveFloat = Field(0.1, description="factor per decay")


class ExponentialSettings(Strict):
    gamma: PositiveFloat = Field(0.1, description="factor per epoch")


class CosineSettings(Strict):
    min_lr: NonNegativeFloat = Field(0.0, description="the final learning rate")


class OneCycleSettings(Strict):
    pct_start: float = Field(0.25, gt=0, lt=1, description="fraction of training spent rising")


@register_schedule("constant", NoSettings, "the base learning rate throughout")
def constant(s: NoSettings, epoch: float, epochs: int, base_lr: float) -> float:
    return 1.0


@register_schedule("step", StepSettings, "gamma ** floor(epoch / step_size)")
def step(s: StepSettings, epoch: float, epochs: int, base_lr: float) -> float:
    return s.gamma ** math.floor(epoch / s.step_size)


@register_schedule("exponential", ExponentialSettings,
                   "gamma ** floor(epoch): once per epoch, as ExponentialLR")
def exponential(s: ExponentialSettings, epoch: float, epochs: int, base_lr: float) -> float:
    return s.gamma ** math.floor(epoch)


@register_schedule("cosine", CosineSettings, "cosine from lr to min_lr (Loshchilov & Hutter "
                   "2017, without restarts)")
def cosine(s: CosineSettings, epoch: float, epochs: int, base_lr: float) -> float:
    floor = s.min_lr / base_lr
    return floor + (1 - floor) * (1 + math.cos(math.pi * epoch / epochs)) / 2


@register_schedule("onecycle", OneCycleSettings, "cosine rise from lr/25 to lr over pct_start, "
                   "then fall to lr/25e4 (Smith & Topin 2018; OneCycleLR's defaults)")
def onecycle(s: OneCycleSettings, epoch: float, epochs: int, base_lr: float) -> float:
    t = epoch / epochs
    start, end = 1 / 25, 1 / 25 / 1e4
    if t < s.pct_start:
        return cos_between(start, 1.0, t / s.pct_start)
    return cos_between(1.0, end, (t - s.pct_start) / (1 - s.pct_start))


@register_schedule("linear", NoSettings, "linear decay from lr to 0 at the end")
def linear(s: NoSettings, epoch: float, epochs: int, base_lr: float) -> float:
    return max(0.0, 1 - epoch / epochs)


class TriangleSettings(Strict):
    start: float = Field(0.2, ge=0, le=1, description="factor at the first step")
    peak_at: float = Field(0.2, gt=0, lt=1, description="fraction of training at the peak")
    end: float = Field(0.0, ge=0, le=1, description="factor at the last step")


@register_schedule("triangle", TriangleSettings, "linear from start to 1 at peak_at, then "
                   "linear to end (airbench's one-cycle shape)")
def triangle(s: TriangleSettings, epoch: float, epochs: int, base_lr: float) -> float:
    t = epoch / epochs
    if t < s.peak_at:
        return s.start + (1 - s.start) * t / s.peak_at
    return 1 + (s.end - 1) * (t - s.peak_at) / (1 - s.peak_at)


def cos_between(a: float, b: float, t: float) -> float:
    """Cosine interpolation from a (t=0) to b (t=1)."""
    return b + (a - b) * (1 + math.cos(math.pi * t)) / 2
