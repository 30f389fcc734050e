"""Datasets: sources that read files into uint8 tensors, transforms, the in-memory loader."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """One split held in memory: ``images`` (N, C, H, W) uint8, ``labels`` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])


@dataclass
class RawDataset:
    """What a source returns: both splits as read from disk, before any processing."""

    name: str
    train: ImageSet
    test: ImageSet
    classes: list[str]
    location: str  # the file or folder the data came from (for provenance and errors)

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)
