"""optim.groups: multipliers by parameter name and module type, and dirac init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlab.config import load_config
from convlab.errors import ConfigError
from convlab.models.layers import init_weights
from convlab.optim.groups import GroupRule, param_groups


def net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.LazyLinear(3))


def test_rules_pick_by_type_and_name_first_match_wins() -> None:
    model = net()
    model(torch.zeros(2, 1, 5, 5))
    rules = [GroupRule(module="norm", params="*.bias", lr_mult=64, weight_decay_mult=0),
             GroupRule(params="*.bias", lr_mult=2)]
    groups = param_groups(model, rules, lr=0.1, weight_decay=0.01)
    by_lr = {g["lr"]: g for g in groups}
    assert [p is model[1].bias for p in by_lr[6.4]["params"]] == [True]
    assert by_lr[6.4]["weight_decay"] == 0
    assert {id(p) for p in by_lr[0.2]["params"]} == {id(model[0].bias), id(model[4].bias)}
    assert {id(p) for p in by_lr[0.1]["params"]} == {
        id(model[0].weight), id(model[1].weight), id(model[4].weight)}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_frozen_parameters_stay_out_and_empty_rules_make_no_group() -> None:
    model = net()
    model(torch.zeros(2, 1, 5, 5))
    model[0].weight.requires_grad_(False)
    groups = param_groups(model, [GroupRule(module="GroupNorm", lr_mult=3)], 0.1, 0.0)
    assert len(groups) == 1 and id(model[0].weight) not in {id(p) for p in groups[0]["params"]}


def test_a_run_trains_each_group_at_its_rate(tmp_path) -> None:
    import convlab
    from conftest import tiny_config

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 4))
    weights = [model[0].weight.detach().clone(), model[4].weight.detach().clone()]
    biases = [model[0].bias.detach().clone(), model[4].bias.detach().clone()]
    cfg = tiny_config(optim={"name": "sgd", "lr": 0.05, "groups": [
        {"params": "*.weight", "lr_mult": 0}]}, train={"epochs": 1})
    run = convlab.run(cfg, runs_dir=tmp_path, model=model)
    assert run.status == "completed"
    assert torch.equal(model[0].weight, weights[0]) and torch.equal(model[4].weight, weights[1])
    assert not torch.equal(model[4].bias, biases[1])  # the base group trained


def test_a_rule_must_pick_something() -> None:
    with pytest.raises(ConfigError, match="needs params .* or module"):
        load_config({"optim": {"groups": [{"lr_mult": 2}]}})


def test_dirac_init_passes_the_input_through() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, bias=False))
    init_weights(conv, "dirac")
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(conv(x)[:, :3], x)
    assert not torch.allclose(conv(x)[:, 3:], torch.zeros(2, 2, 6, 6))  # the rest: default


def test_cnn_batch_norm_momentum_eps_and_a_frozen_scale() -> None:
    import convlab

    m = convlab.create_model({"name": "cnn", "stages": [
        {"channels": 4, "batch_norm": True, "bn_momentum": 0.4, "bn_eps": 1e-12,
         "bn_weight": "frozen"}]}, (1, 8, 8), 3)
    bn = m.stage1.body.bn1
    assert (bn.momentum, bn.eps, bn.weight.requires_grad, bn.bias.requires_grad) == (
        0.4, 1e-12, False, True)
    bn.train()
    bn(torch.ones(2, 4, 3, 3) * 5)
    assert torch.allclose(bn.running_mean, torch.full((4,), 0.4 * 5))  # 0.6 * 0 + 0.4 * 5
