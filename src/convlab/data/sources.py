"""Dataset sources: each reads one dataset from disk into a :class:`RawDataset`.

``SOURCES`` maps ``data.dataset`` to a loader ``(DataConfig) -> RawDataset``; new sources
register with ``@SOURCES.register("name")``. Loaders import their readers lazily, so
importing this module costs nothing beyond torch.

Where files are looked for: ``data.root``, else ``$CONVLAB_DATA``, else
``$XDG_CACHE_HOME/convlab/data`` (``~/.cache/convlab/data``), in torchvision's layouts
(``MNIST/raw``, ``FashionMNIST/raw``, ``cifar-10-batches-py``), so an existing
torchvision download folder works as a root.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from convlab.config import DataConfig, SyntheticConfig
from convlab.data import ImageSet, RawDataset
from convlab.errors import DataError
from convlab.registry import Registry

Loader = Callable[[DataConfig], RawDataset]
SOURCES: Registry[Loader] = Registry("dataset")


def load_raw(cfg: DataConfig) -> RawDataset:
    """Read the dataset that ``cfg.dataset`` names; every problem is a one-line DataError."""
    return SOURCES.get(cfg.dataset)(cfg)


def default_root(cfg: DataConfig | None = None) -> Path:
    """``cfg.root``, else ``$CONVLAB_DATA``, else ``$XDG_CACHE_HOME/convlab/data``."""
    if cfg is not None and cfg.root is not None:
        return Path(cfg.root).expanduser()
    env = os.environ.get("CONVLAB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "convlab" / "data"


def resolve_path(cfg: DataConfig) -> Path | None:
    """``cfg.path`` as given, or relative to the data root when it exists only there."""
    if cfg.path is None:
        return None
    path = Path(cfg.path).expanduser()
    if not path.exists() and not path.is_absolute():
        under_root = default_root(cfg) / path
        if under_root.exists():
            return under_root
    return path


# ----------------------------------------------------------------------- sources


@SOURCES.register("mnist")
def mnist(cfg: DataConfig) -> RawDataset:
    """MNIST: 60,000 + 10,000 28x28 grey digits, classes "0".."9"."""
    from convlab.data.idx import MNIST, load_idx_dataset

    return load_idx_dataset(MNIST, default_root(cfg), cfg.download, resolve_path(cfg))


@SOURCES.register("fashion_mnist")
def fashion_mnist(cfg: DataConfig) -> RawDataset:
    """Fashion-MNIST: 60,000 + 10,000 28x28 grey clothing images, 10 classes."""
    from convlab.data.idx import FASHION_MNIST, load_idx_dataset

    return load_idx_dataset(FASHION_MNIST, default_root(cfg), cfg.download, resolve_path(cfg))


@SOURCES.register("cifar10")
def cifar10(cfg: DataConfig) -> RawDataset:
    """CIFAR-10: 50,000 + 10,000 32x32 RGB images, from pickled batches or an image folder."""
    from convlab.data.cifar import load_cifar10

    return load_cifar10(default_root(cfg), resolve_path(cfg), cfg.download, cfg.skip_bad_images)


@SOURCES.register("imagefolder")
def imagefolder(cfg: DataConfig) -> RawDataset:
    """A folder, .zip or .tar[.gz] of ``train/<class>/*`` + ``test/<class>/*`` (or split)."""
    from convlab.data.imagefolder import load_imagefolder

    path = resolve_path(cfg)
    if path is None:
        raise DataError("data.path: the imagefolder dataset needs a folder, .zip or .tar[.gz] "
                        "holding train/<class>/ and test/<class>/ images")
    return load_imagefolder(path, test_fraction=cfg.test_fraction, split_seed=cfg.split_seed,
                            resize=cfg.resize, skip_bad_images=cfg.skip_bad_images)


@SOURCES.register("synthetic")
def synthetic(cfg: DataConfig) -> RawDataset:
    """Deterministic learnable images (see :func:`make_synthetic`); reads no file."""
    return make_synthetic(cfg.synthetic)


# --------------------------------------------------------------------- synthetic

TEMPLATE_GRID = 4  # templates are 4x4 random grids upsampled: low frequency, easy to learn
TEMPLATE_SCALE = 60.0  # pixel units: the class signal ...
NOISE_SCALE = 40.0  # ... and the per-image noise around it


def make_synthetic(spec: SyntheticConfig) -> RawDataset:
    """Learnable random images: a fixed low-frequency template per class plus noise.

    Everything derives from ``spec.seed`` (one CPU generator), so the same config gives the
    same bytes on every machine. A tiny CNN reaches well above chance in one epoch, which
    makes this the dataset of smoke tests and examples.
    """
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
    k = templates.shape[0]
    labels = torch.arange(n) % k  # balanced classes ...
    labels = labels[torch.randperm(n, generator=g)]  # ... in random order, (N,)
    noise = torch.randn((n, *templates.shape[1:]), generator=g)  # (N, C, H, W)
    pixels = 128.0 + TEMPLATE_SCALE * templates[labels] + NOISE_SCALE * noise
    return ImageSet(pixels.round().clamp(0, 255).to(torch.uint8), labels.long())
