"""Generated from the optimizer and schedule registries: every entry validates its
defaults, round-trips through a config, builds, and steps or gives a sane factor."""

from __future__ import annotations

import math

import pytest
import torch

from convlab.config import ExperimentConfig, load_config
from convlab.optim import OPTIMIZERS, SCHEDULES
from convlab.train.optim import build_optimizer, build_scheduler, lr_factor


@pytest.mark.parametrize("name", OPTIMIZERS.list())
def test_every_optimizer_builds_steps_and_round_trips(name: str) -> None:
    cfg = load_config({"optim": {"name": name, "lr": 0.1}})
    again = ExperimentConfig.model_validate(cfg.to_dict())
    assert again.optim == cfg.optim and again.config_hash() == cfg.config_hash()
    defaults = OPTIMIZERS.get(name).settings_model().model_dump(mode="json")
    assert cfg.optim.settings == defaults  # the resolved config holds every setting
    w = torch.nn.Parameter(torch.ones(4))
    opt = build_optimizer([w], cfg.optim)
    (w ** 2).sum().backward()
    opt.step()
    assert torch.all(w < 1), f"{name} did not descend"


@pytest.mark.parametrize("name", SCHEDULES.list())
def test_every_schedule_gives_finite_factors_and_round_trips(name: str) -> None:
    cfg = load_config({"schedule": {"name": name}})
    assert ExperimentConfig.model_validate(cfg.to_dict()).schedule == cfg.schedule
    factors = [lr_factor(cfg.schedule, e, 10, 0.1) for e in (0, 2.5, 5, 9.99)]
    assert all(math.isfinite(f) and 0 <= f <= 1 for f in factors), factors
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(opt, cfg.schedule, 10, 4, 0.1)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * lr_factor(cfg.schedule, 0.25, 10, 0.1))


def test_a_settings_key_of_another_entry_is_refused_by_name() -> None:
    from convlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"schedule: step_size: unknown key \(for schedule "
                                          r"'cosine'\)"):
        load_config({"schedule": {"name": "cosine", "step_size": 3}})


def test_linear_decay_reaches_zero_at_the_end() -> None:
    cfg = load_config({"schedule": {"name": "linear", "warmup_epochs": 1}}).schedule
    assert lr_factor(cfg, 0.5, 10, 1.0) == pytest.approx(0.5 * 0.95)
    assert lr_factor(cfg, 5, 10, 1.0) == pytest.approx(0.5)
    assert lr_factor(cfg, 10, 10, 1.0) == 0
