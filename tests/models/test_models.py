"""Generated from the registry: every model builds, runs forward and backward, round-trips."""

from __future__ import annotations

import pytest
import torch
import yaml

from convlab.config import ExperimentConfig, load_config
from convlab.errors import ModelError
from convlab.models import build_model, list_models
from convlab.models.layers import conv_out_size, same_padding

SHAPES = [(1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_model_forward_backward(name: str, shape: tuple[int, int, int]) -> None:
    cfg = load_config({"model": {"name": name}})
    model = build_model(cfg.model, shape, 7)
    x = torch.randn(3, *shape)
    out = model(x)
    assert out.shape == (3, 7)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]  # frozen ones: none
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_every_model_config_round_trips(name: str) -> None:
    cfg = load_config({"model": {"name": name}})
    again = ExperimentConfig.model_validate(yaml.safe_load(cfg.to_yaml()))
    assert again.model == cfg.model
    a = build_model(cfg.model, (1, 28, 28), 10)
    b = build_model(again.model, (1, 28, 28), 10)
    assert [tuple(p.shape) for p in a.parameters()] == [tuple(p.shape) for p in b.parameters()]


def test_pw1_parameter_count_by_hand() -> None:
    # conv 3->32 5x5: 3*32*25 + 32 = 2432; conv 32->64: 32*64*25 + 64 = 51264;
    # conv 64->64: 64*64*25 + 64 = 102464; 32 -> 16 -> 8 -> 4 after three pools,
    # fc 64*4*4=1024 -> 1000: 1024*1000 + 1000 = 1025000; fc 1000 -> 10: 10010.
    model = build_model(load_config({"model": "pw1"}).model, (3, 32, 32), 10)
    assert sum(p.numel() for p in model.parameters()) == 2432 + 51264 + 102464 + 1025000 + 10010


def test_mlp_256x2_count() -> None:
    # 784*256+256 + 256*256+256 + 256*10+10 = 200960 + 65792 + 2570
    model = build_model(load_config({"model": "mlp-256x2"}).model, (1, 28, 28), 10)
    assert sum(p.numel() for p in model.parameters()) == 269322


def test_same_padding_keeps_size_for_odd_and_even_kernels() -> None:
    for k in (1, 2, 3, 4, 5):
        for d in (1, 2):
            cfg = load_config({"model": {"name": "cnn", "stages": [
                {"channels": 2, "kernel": k, "dilation": d, "pool": "none"}]}})
            model = build_model(cfg.model, (1, 9, 9), 3)
            assert model.stage1(torch.zeros(1, 1, 9, 9)).shape[-2:] == (9, 9), (k, d)
    assert same_padding(4, 1) == (1, 2)
    assert conv_out_size(28, 5, 1, 2, 1) == 28  # (28 + 4 - 4 - 1) / 1 + 1


def test_residual_stage_with_projection() -> None:
    cfg = load_config({"model": {"name": "cnn", "stages": [
        {"channels": 8, "convs": 2, "residual": True, "stride": 2, "pool": "none"}]}})
    model = build_model(cfg.model, (3, 16, 16), 10)
    assert isinstance(model.stage1.skip, torch.nn.Conv2d)
    assert model.stage1(torch.zeros(2, 3, 16, 16)).shape == (2, 8, 8, 8)


def test_shape_error_names_the_layer() -> None:
    cfg = load_config({"model": {"name": "cnn", "stages": [
        {"channels": 4, "kernel": 5, "padding": "valid"}] * 3}})
    # 28 -> conv5 valid 24 -> pool 12 -> conv5 8 -> pool 4: a 5x5 kernel on 4x4 cannot fit
    with pytest.raises(ModelError, match=r"layer stage3\.body\.conv1 \(Conv2d\).*4x4x4"):
        build_model(cfg.model, (1, 28, 28), 10)


def test_init_schemes_change_weights_deterministically() -> None:
    torch.manual_seed(0)
    a = build_model(load_config({"model": {"name": "mlp", "init": "xavier"}}).model,
                    (1, 4, 4), 3)
    assert torch.all(a.fc1.bias == 0)
    torch.manual_seed(0)
    b = build_model(load_config({"model": {"name": "mlp", "init": "kaiming"}}).model,
                    (1, 4, 4), 3)
    assert not torch.equal(a.fc1.weight, b.fc1.weight)
    # Kaiming normal (fan_in=16): std = sqrt(2/16) ~ 0.354
    assert 0.25 < float(b.fc1.weight.detach().std()) < 0.45
