"""The patch-whitening layer: fitted on training patches, frozen, bias trained N epochs."""

from __future__ import annotations

import torch
from torch import nn

import convlab
from convlab.models.whitening import PatchWhitening


def test_fitted_filters_whiten_the_training_patches() -> None:
    torch.manual_seed(0)
    x = torch.randn(300, 3, 8, 8)
    x[:, 1] = 0.9 * x[:, 0] + 0.1 * x[:, 1]  # strongly correlated channels
    layer = PatchWhitening(3, kernel=2, eps=0.0, negatives=False)
    layer.fit_to_data(x)
    y = layer(x).permute(0, 2, 3, 1).reshape(-1, 12).double()  # (patches, D)
    assert torch.allclose(torch.cov(y.T), torch.eye(12, dtype=torch.float64), atol=1e-4)
    assert bool(layer.fitted) and layer.eigenvalues[0] >= layer.eigenvalues[-1]
    assert not layer.conv.weight.requires_grad


def test_negatives_double_the_filters() -> None:
    layer = PatchWhitening(1, kernel=2)
    layer.fit_to_data(torch.rand(50, 1, 6, 6))
    w = layer.conv.weight
    assert layer.out_channels == 8 and torch.equal(w[4:], -w[:4])


class Whitened(nn.Module):
    def __init__(self, num_classes: int = 4, in_channels: int = 1) -> None:
        super().__init__()
        self.whiten = PatchWhitening(in_channels, kernel=2, bias_epochs=1)
        self.conv = nn.Conv2d(self.whiten.out_channels, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(torch.relu(self.whiten(x)))).amax((2, 3)))


def test_a_run_fits_it_before_training_and_trains_its_bias_for_bias_epochs(tmp_path) -> None:
    from conftest import tiny_config

    model = Whitened()
    biases = []

    def record(epoch: int, metrics: dict) -> None:
        biases.append(model.whiten.conv.bias.detach().clone())

    run = convlab.run(tiny_config(train={"epochs": 2}), model=model, runs_dir=tmp_path,
                      epoch_hook=record)
    assert run.status == "completed" and run.summary["fitted_to_data"] == ["whiten"]
    assert bool(model.whiten.fitted) and model.whiten.conv.weight.abs().sum() > 0
    assert not torch.equal(biases[0], torch.zeros_like(biases[0]))  # epoch 1 trained it
    assert torch.equal(biases[0], biases[1])  # epoch 2 did not
    saved = convlab.load_run(run.path, model=Whitened()).load_model()
    assert torch.equal(saved.whiten.conv.weight, model.whiten.conv.weight.cpu())


def test_the_fitting_sample_spans_the_whole_class_ordered_split() -> None:
    from convlab.train.runner import fitting_sample

    idx = fitting_sample(50_000, 10_000)
    assert len(idx) == len(set(idx.tolist())) == 10_000
    assert torch.equal(idx, idx.sort().values) and torch.equal(idx, fitting_sample(50_000, 10_000))
    # CIFAR-10's image folder holds 5,000 images per class in class order: all 10 appear
    assert set((idx // 5_000).tolist()) == set(range(10))
    assert len(fitting_sample(300, 10_000)) == 300
