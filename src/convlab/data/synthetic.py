"""The synthetic dataset: deterministic learnable images from a seed, no file read.

Importing it costs no torch import (the registry reads its settings model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, PositiveInt

from convlab.data import ImageSet, RawDataset
from convlab.schema import Strict

if TYPE_CHECKING:  # pragma: no cover
    import torch

class SyntheticConfig(Strict):
    """Deterministic random images: for tests and smoke runs."""

    shape: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        (1, 28, 28), description="(C, H, W) of the images")
    classes: int = Field(10, ge=2, description="number of classes (one template each)")
    train_size: PositiveInt = Field(1024, description="training images")
    test_size: PositiveInt = Field(256, description="test images")
    seed: int = Field(0, description="seed of templates, noise and labels")


TEMPLATE_GRID = 4  # templates are 4x4 random grids upsampled: low frequency, easy to learn
TEMPLATE_SCALE = 60.0  # pixel units: the class signal ...
NOISE_SCALE = 40.0  # ... and the per-image noise around it


def make_synthetic(spec: SyntheticConfig) -> RawDataset:
    """Learnable random images: a fixed low-frequency template per class plus noise.

    Everything derives from ``spec.seed`` (one CPU generator), so the same config gives the
    same bytes on every machine. A tiny CNN reaches well above chance in one epoch, which
    makes this the dataset of smoke tests and examples.
    """
    import torch
    import torch.nn.functional as F

    c, h, w = spec.shape
    g = torch.Generator().manual_seed(spec.seed)
    grid = torch.randn(spec.classes, c, TEMPLATE_GRID, TEMPLATE_GRID, generator=g)
    templates = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
    templates = templates / templates.std(correction=0).clamp_min(1e-6)  # (K, C, H, W)
    train = _synthetic_split(templates, spec.train_size, g)
    test = _synthetic_split(templates, spec.test_size, g)
    classes = [f"class_{i}" for i in range(spec.classes)]
    return RawDataset("synthetic", train, test, classes, f"synthetic(seed={spec.seed})")


def _synthetic_split(templates: torch.Tensor, n: int, g: torch.Generator) -> ImageSet:
    import torch

    k = templates.shape[0]
    labels = torch.arange(n) % k  # balanced classes ...
    labels = labels[torch.randperm(n, generator=g)]  # ... in random order, (N,)
    noise = torch.randn((n, *templates.shape[1:]), generator=g)  # (N, C, H, W)
    pixels = 128.0 + TEMPLATE_SCALE * templates[labels] + NOISE_SCALE * noise
    return ImageSet(pixels.round().clamp(0, 255).to(torch.uint8), labels.long())
