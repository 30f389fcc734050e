"""Datasets: sources that read files into uint8 tensors, transforms, the in-memory loader.

Importing this package costs no torch import: the registry of datasets
(:mod:`convlab.data.sources`) is declarations only, so every CLI command can know the
datasets' settings; readers are imported when a dataset is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
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
    """What a source returns: the splits as read from disk, before any processing.

    ``val`` is set only by sources whose files hold a validation split of their own (a
    user's dataset may return one); otherwise ``data.val_fraction`` holds one out.
    """

    name: str
    train: ImageSet
    test: ImageSet
    classes: list[str]
    location: str  # the file or folder the data came from (for provenance and errors)
    val: ImageSet | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        lazy = getattr(self.train, "sample_shape", None)  # a user's Dataset, not yet read
        c, h, w = lazy if lazy is not None else self.train.images.shape[1:]
        return int(c), int(h), int(w)


def input_spec(data_cfg: object) -> tuple[tuple[int, int, int], int]:
    """((C, H, W), num_classes) of the images a model will see, after any resize.

    Reads no file when the dataset's registry entry knows its shape and classes from its
    settings alone; otherwise (``imagefolder``, a user's dataset) it loads the source.
    """
    from convlab.data.settings import DataConfig
    from convlab.data.sources import dataset_info, load_raw

    assert isinstance(data_cfg, DataConfig)
    info = dataset_info(data_cfg)
    if info.shape is not None and info.classes is not None:
        shape, classes = info.shape, len(info.classes)
    else:
        raw = load_raw(data_cfg)
        shape, classes = raw.shape, len(raw.classes)
    c, h, w = shape
    if data_cfg.resize:
        h = w = data_cfg.resize
    return (c, h, w), classes
