"""The entries of the registry of datasets: what one registered dataset declares.

A dataset registers with :func:`register_dataset` (the built-in ones in
:mod:`convlab.data.catalog`); nothing else lists dataset names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from convlab.registry import Registry
from convlab.schema import Strict


class NoSettings(Strict):
    """A dataset that adds no key of its own to the data section."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset holds, known from its settings alone (None: the files decide)."""

    shape: tuple[int, int, int] | None  # (C, H, W) as read, before data.resize
    classes: tuple[str, ...] | None  # class names, in label order
    sizes: dict[str, int] = field(default_factory=dict)  # images per split, when fixed


@dataclass(frozen=True)
class Located:
    """Where a dataset's files were looked for, in order, and the first place holding them."""

    looked: list[Path]
    found: Path | None


# (data config, validated settings) -> RawDataset; the config is a DataConfig
Loader = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset."""

    name: str
    summary: str  # one line: what it is
    settings: type[BaseModel]  # the keys it adds to the data section
    load: Loader  # (data config, validated settings) -> RawDataset
    info: Callable[[Any], DatasetInfo]  # settings -> shape, class names, sizes
    locate: Callable[[Any, Any], Located] | None  # (config, settings); None: reads no file
    files: str  # the files it reads, as a pattern under the root
    download: str  # how it downloads when its files are absent ("": never)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(
    name: str, *, summary: str, info: Callable[[Any], DatasetInfo],
    settings: type[BaseModel] = NoSettings,
    locate: Callable[[Any, Any], Located] | None = None,
    files: str = "", download: str = "",
) -> Callable[[Loader], Loader]:
    """Decorator for a loader ``(cfg, settings) -> RawDataset``; refuses a taken name."""

    def add(load: Loader) -> Loader:
        DATASETS.add(name, DatasetSpec(name, summary, settings, load, info, locate, files,
                                       download))
        return load

    return add
