"""Linearization: a network without non-linearities collapses into one affine map."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from convlab.analysis.affine import (
    linearize,
    make_linear_settings,
    nonaffine_layers,
    save_affine,
)
from convlab.analysis.common import AnalysisError, build_from_settings, resolve_model


def test_a_tiny_network_by_hand() -> None:
    conv = nn.Conv2d(1, 1, 2)  # on a 2x2 image: one output, y = 1a + 2b + 3c + 4d + 0.5
    fc = nn.Linear(1, 2)  # z = [2y - 1, -y]
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
        conv.bias.fill_(0.5)
        fc.weight.copy_(torch.tensor([[2.0], [-1.0]]))
        fc.bias.copy_(torch.tensor([-1.0, 0.0]))
    m = linearize(nn.Sequential(conv, nn.Flatten(), fc), (1, 2, 2))
    # A = [[2], [-1]] @ [[1, 2, 3, 4]] = [[2, 4, 6, 8], [-1, -2, -3, -4]]
    # b = [2*0.5 - 1, -0.5] = [0, -0.5]
    assert m.A.tolist() == [[2, 4, 6, 8], [-1, -2, -3, -4]]
    assert m.b.tolist() == [0.0, -0.5]
    assert m.ok and m.out_shape == (2,)


def test_lenet5_made_linear_collapses_and_reproduces() -> None:
    r = resolve_model("lenet5")
    assert nonaffine_layers(r.model)[0] == ("stage1.body.act1", "Tanh")
    settings = make_linear_settings(r.settings)
    assert {s["activation"] for s in settings["stages"]} == {"identity"}
    assert settings["head"]["activation"] == "identity"
    model = build_from_settings("lenet5", settings, r.in_shape, 10)
    assert nonaffine_layers(model) == []
    m = linearize(model, r.in_shape)
    assert m.A.shape == (10, 784) and m.b.shape == (10,)  # 1*28*28 inputs, 10 classes
    assert m.affinity_error < 1e-12 and m.reproduction_error < 1e-12
    x = torch.randn(4, *r.in_shape, dtype=torch.float64)
    with torch.no_grad():
        want = model.double().eval()(x)
    assert torch.allclose(m(x), want, rtol=1e-9, atol=1e-9)


def test_max_pool_becomes_average_pool() -> None:
    settings = make_linear_settings({"stages": [{"pool": "max", "activation": "relu"},
                                                {"pool": "none"}]})
    assert settings == {"stages": [{"pool": "avg", "activation": "identity"},
                                   {"pool": "none"}]}


def test_non_affine_model_is_refused_by_name() -> None:
    with pytest.raises(AnalysisError, match=r"layer stage1.body.act1 \(ReLU\) is non-linear"):
        linearize(resolve_model("cnn").model, (1, 28, 28))


def test_save_affine(tmp_path: Path) -> None:
    r = resolve_model("mlp", overrides=["activation=identity", "hidden=[8]"])
    m = linearize(r.model, r.in_shape)
    path = save_affine(m, tmp_path / "affine.safetensors")
    data = load_file(str(path))
    assert torch.equal(data["A"], m.A) and torch.equal(data["b"], m.b)


def test_made_linear_module_keeps_the_trained_weights() -> None:
    """Replacing activations in place keeps every weight; A equals the Jacobian of the
    same weights with the activations removed by hand (checked with torch.func)."""
    from convlab.analysis.affine import make_linear_module

    model = resolve_model("lenet5").model
    with torch.no_grad():  # stand-in for training: weights no builder would draw
        gen = torch.Generator().manual_seed(5)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    lin = make_linear_module(model)
    assert nonaffine_layers(lin) == [] and nonaffine_layers(model) != []
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in lin.state_dict().items())
    m = linearize(lin, (1, 28, 28))
    by_hand = build_from_settings("lenet5", make_linear_settings(resolve_model("lenet5")
                                                                 .settings), (1, 28, 28), 10)
    by_hand.load_state_dict(model.state_dict())
    f = by_hand.double().eval()
    jac = torch.func.jacrev(lambda x: f(x.view(1, 1, 28, 28))[0])(
        torch.zeros(784, dtype=torch.float64))
    assert torch.allclose(m.A, jac, atol=1e-12)
    assert torch.equal(linearize(make_linear_module(model), (1, 28, 28)).A, m.A)


def test_max_pool_module_becomes_average_pool_of_the_same_geometry() -> None:
    from torch import nn

    from convlab.analysis.affine import make_linear_module

    lin = make_linear_module(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(),
                                           nn.MaxPool2d(3, 2, 1, ceil_mode=True)))
    pool = lin[2]
    assert isinstance(lin[1], nn.Identity) and isinstance(pool, nn.AvgPool2d)
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (3, 2, 1, True)
    with pytest.raises(AnalysisError, match="dilated max pool"):
        make_linear_module(nn.Sequential(nn.MaxPool2d(2, dilation=2)))
