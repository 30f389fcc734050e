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


# Shapes and class counts known without reading any file (imagefolder must be read).
KNOWN_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}


def input_spec(data_cfg: object) -> tuple[tuple[int, int, int], int]:
    """((C, H, W), num_classes) of the images a model will see, after any resize.

    Reads no file for the built-in datasets; for ``imagefolder`` it loads the source.
    """
    from convlab.config import DataConfig

    assert isinstance(data_cfg, DataConfig)
    if data_cfg.dataset == "synthetic":
        shape, classes = data_cfg.synthetic.shape, data_cfg.synthetic.classes
    elif data_cfg.dataset in KNOWN_SHAPES:
        shape, classes = KNOWN_SHAPES[data_cfg.dataset]
    else:
        from convlab.data.sources import load_raw

        raw = load_raw(data_cfg)
        shape, classes = raw.shape, len(raw.classes)
    c, h, w = shape
    if data_cfg.resize:
        h = w = data_cfg.resize
    return (c, h, w), classes
