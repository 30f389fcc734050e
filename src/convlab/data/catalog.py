"""The built-in datasets, declared in one place: name, settings, shape and classes, the
files read and how they download. Each loader imports its reader only when called."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt

from convlab.data import RawDataset
from convlab.data.classes import (
    CIFAR10_CLASSES,
    CIFAR100_COARSE,
    CIFAR100_FINE,
    DIGITS,
    EMNIST_CLASSES,
    EMNIST_SIZES,
    FASHION_CLASSES,
    IMAGENETTE_WNIDS,
    KMNIST_CLASSES,
    STL10_CLASSES,
)
from convlab.data.paths import default_root, resolve_path
from convlab.data.spec import DatasetInfo, Located, register_dataset
from convlab.data.synthetic import SyntheticConfig
from convlab.errors import DataError
from convlab.schema import Strict

_TV = "torchvision's mirrors of "


def _sizes(train: int, test: int) -> dict[str, int]:
    return {"train": train, "test": test}


# ------------------------------------------------------------------- MNIST family


def _idx_entry(name: str, folder: str, classes: tuple[str, ...], summary: str,
               url: str) -> None:
    def info(settings: Any) -> DatasetInfo:
        return DatasetInfo((1, 28, 28), classes, _sizes(60000, 10000))

    def locate(cfg: Any, settings: Any) -> Located:
        from convlab.data.idx import IDX_SPECS, locate_idx

        return locate_idx(IDX_SPECS[name], default_root(cfg), resolve_path(cfg))

    def load(cfg: Any, settings: Any) -> RawDataset:
        from convlab.data.idx import IDX_SPECS, load_idx_dataset

        return load_idx_dataset(IDX_SPECS[name], default_root(cfg), cfg.download,
                                resolve_path(cfg))

    register_dataset(name, summary=summary, info=info, locate=locate,
                     files=f"{folder}/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]",
                     download=_TV + url)(load)


_idx_entry("mnist", "MNIST", DIGITS, "MNIST: 28x28 grey handwritten digits",
           "http://yann.lecun.com/exdb/mnist/")
_idx_entry("fashion_mnist", "FashionMNIST", FASHION_CLASSES,
           "Fashion-MNIST: 28x28 grey clothing images (Zalando)",
           "https://github.com/zalandoresearch/fashion-mnist")
_idx_entry("kmnist", "KMNIST", KMNIST_CLASSES,
           "Kuzushiji-MNIST: 28x28 grey cursive Japanese characters, 10 hiragana",
           "http://codh.rois.ac.jp/kmnist/")


class EmnistSettings(Strict):
    """EMNIST's split: which classes (and files) to read."""

    split: Literal["balanced", "byclass", "bymerge", "letters", "digits", "mnist"] = Field(
        "balanced", description=(
            "balanced (47 classes, equal counts), byclass (62), bymerge (47), letters (26), "
            "digits (10), mnist (10)"))


def _emnist_info(s: EmnistSettings) -> DatasetInfo:
    return DatasetInfo((1, 28, 28), EMNIST_CLASSES[s.split], _sizes(*EMNIST_SIZES[s.split]))


def _emnist_locate(cfg: Any, s: EmnistSettings) -> Located:
    from convlab.data.idx import emnist_spec, locate_idx

    return locate_idx(emnist_spec(s.split), default_root(cfg), resolve_path(cfg))


@register_dataset(
    "emnist", summary="EMNIST: 28x28 grey handwritten digits and letters (NIST SD 19)",
    settings=EmnistSettings, info=_emnist_info, locate=_emnist_locate,
    files="EMNIST/raw/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]",
    download=_TV + "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip (535 MB, the files "
    "of the split taken from it)")
def _emnist(cfg: Any, s: EmnistSettings) -> RawDataset:
    from convlab.data.idx import emnist_spec, load_idx_dataset

    return load_idx_dataset(emnist_spec(s.split), default_root(cfg), cfg.download,
                            resolve_path(cfg))


# -------------------------------------------------------------------------- CIFAR


def _cifar10_locate(cfg: Any, settings: Any) -> Located:
    from convlab.data.cifar import cifar10_candidates

    return _first_existing(cifar10_candidates(default_root(cfg)), resolve_path(cfg))


@register_dataset(
    "cifar10", summary="CIFAR-10: 32x32 colour images of 10 classes",
    info=lambda s: DatasetInfo((3, 32, 32), CIFAR10_CLASSES, _sizes(50000, 10000)),
    locate=_cifar10_locate,
    files="cifar-10-batches-py/ (or cifar10-jpeg.zip, cifar10/ of train/<class>/ images)",
    download=_TV + "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
def _cifar10(cfg: Any, settings: Any) -> RawDataset:
    from convlab.data.cifar import load_cifar10

    return load_cifar10(default_root(cfg), resolve_path(cfg), cfg.download, cfg.skip_bad_images)


class Cifar100Settings(Strict):
    """Which of CIFAR-100's two labels to learn."""

    label: Literal["fine", "coarse"] = Field(
        "fine", description="fine: the 100 classes; coarse: their 20 superclasses")


def _cifar100_info(s: Cifar100Settings) -> DatasetInfo:
    classes = CIFAR100_FINE if s.label == "fine" else CIFAR100_COARSE
    return DatasetInfo((3, 32, 32), classes, _sizes(50000, 10000))


def _cifar100_locate(cfg: Any, s: Cifar100Settings) -> Located:
    from convlab.data.cifar import CIFAR100_FOLDER

    return _first_existing([default_root(cfg) / CIFAR100_FOLDER], resolve_path(cfg))


@register_dataset(
    "cifar100", summary="CIFAR-100: 32x32 colour images of 100 classes in 20 superclasses",
    settings=Cifar100Settings, info=_cifar100_info, locate=_cifar100_locate,
    files="cifar-100-python/{train,test}",
    download=_TV + "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")
def _cifar100(cfg: Any, s: Cifar100Settings) -> RawDataset:
    from convlab.data.cifar import load_cifar100

    return load_cifar100(default_root(cfg), resolve_path(cfg), cfg.download, s.label)


# ---------------------------------------------------------------- SVHN and STL-10


class SvhnSettings(Strict):
    """SVHN's optional third split."""

    extra: bool = Field(False, description=(
        "add the 531,131 'extra' images (extra_32x32.mat, 1.3 GB) to the training split"))


def _svhn_info(s: SvhnSettings) -> DatasetInfo:
    return DatasetInfo((3, 32, 32), DIGITS, _sizes(73257 + 531131 * s.extra, 26032))


def _svhn_locate(cfg: Any, s: SvhnSettings) -> Located:
    from convlab.data.svhn import locate_svhn

    return locate_svhn(default_root(cfg), resolve_path(cfg), s.extra)


@register_dataset(
    "svhn", summary="SVHN: 32x32 colour house-number digits from Street View (needs scipy)",
    settings=SvhnSettings, info=_svhn_info, locate=_svhn_locate,
    files="svhn/{train,test[,extra]}_32x32.mat (or SVHN/, or the root itself)",
    download=_TV + "http://ufldl.stanford.edu/housenumbers/")
def _svhn(cfg: Any, s: SvhnSettings) -> RawDataset:
    from convlab.data.svhn import load_svhn

    return load_svhn(default_root(cfg), resolve_path(cfg), cfg.download, s.extra)


def _stl10_locate(cfg: Any, settings: Any) -> Located:
    from convlab.data.stl10 import FOLDER

    return _first_existing([default_root(cfg) / FOLDER], resolve_path(cfg))


@register_dataset(
    "stl10", summary="STL-10: 96x96 colour images of 10 classes (the labelled splits)",
    info=lambda s: DatasetInfo((3, 96, 96), STL10_CLASSES, _sizes(5000, 8000)),
    locate=_stl10_locate, files="stl10_binary/{train,test}_{X,y}.bin",
    download=_TV + "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz (2.6 GB)")
def _stl10(cfg: Any, settings: Any) -> RawDataset:
    from convlab.data.stl10 import load_stl10

    return load_stl10(default_root(cfg), resolve_path(cfg), cfg.download)


# ---------------------------------------------------------------- image folders


class ImageFolderSettings(Strict):
    """How an image tree is split and labelled."""

    test_fraction: float | None = Field(None, gt=0, lt=1, description=(
        "split this fraction of each class off as the test set (a tree without test/)"))
    labels: Path | None = Field(None, description=(
        "a CSV of file,label[,split] rows labelling the images under data.path (instead "
        "of class folders)"))


def _imagefolder_locate(cfg: Any, settings: Any) -> Located:
    path = resolve_path(cfg)
    return Located([path] if path else [], path if path and path.exists() else None)


@register_dataset(
    "imagefolder", summary="your images: train/<class>/*, test/<class>/* (or split), "
    "or files labelled by a CSV", settings=ImageFolderSettings,
    info=lambda s: DatasetInfo(None, None), locate=_imagefolder_locate,
    files="data.path: a folder, .zip or .tar[.gz]")
def _imagefolder(cfg: Any, s: ImageFolderSettings) -> RawDataset:
    from convlab.data.imagefolder import load_imagefolder

    path = resolve_path(cfg)
    if path is None:
        raise DataError("data.path: the imagefolder dataset needs a folder, .zip or .tar[.gz] "
                        "holding train/<class>/ and test/<class>/ images")
    return load_imagefolder(path, test_fraction=s.test_fraction, split_seed=cfg.split_seed,
                            resize=cfg.resize, skip_bad_images=cfg.skip_bad_images,
                            labels=s.labels)


class ImagenetteSettings(Strict):
    """Which Imagenette download, and the square size its images are decoded to."""

    size: Literal["160", "320", "full"] = Field("160", description=(
        "the published variant: shorter side 160 px (imagenette2-160), 320 px, or full size"))
    image_size: PositiveInt | None = Field(None, description=(
        "decode each image to this square size (shorter side scaled, centre cropped); "
        "default: the variant's size, 320 for full"))

    @property
    def pixels(self) -> int:
        return self.image_size or (320 if self.size == "full" else int(self.size))


def _imagenette_locate(cfg: Any, s: ImagenetteSettings) -> Located:
    from convlab.data.imagefolder import imagenette_candidates

    return _first_existing(imagenette_candidates(default_root(cfg), s.size), resolve_path(cfg))


@register_dataset(
    "imagenette", summary="Imagenette: 10 easy ImageNet classes (fast.ai), train + val",
    settings=ImagenetteSettings, info=lambda s: DatasetInfo(
        (3, s.pixels, s.pixels), tuple(IMAGENETTE_WNIDS.values()), _sizes(9469, 3925)),
    locate=_imagenette_locate, files="imagenette2[-160|-320]/{train,val}/<wnid>/*.JPEG",
    download=_TV + "https://s3.amazonaws.com/fast-ai-imageclas/ (imagenette2-160.tgz: 94 MB)")
def _imagenette(cfg: Any, s: ImagenetteSettings) -> RawDataset:
    from convlab.data.imagefolder import load_imagenette

    return load_imagenette(default_root(cfg), resolve_path(cfg), cfg.download, s.size,
                           s.pixels, cfg.skip_bad_images)


# --------------------------------------------------------------------- synthetic


class SyntheticSettings(Strict):
    """The synthetic dataset's one key."""

    synthetic: SyntheticConfig = Field(
        SyntheticConfig(), description="shape, classes, sizes and seed of the images")


@register_dataset(
    "synthetic", summary="learnable random images from a seed: reads no file",
    settings=SyntheticSettings,
    info=lambda s: DatasetInfo(s.synthetic.shape, tuple(
        f"class_{i}" for i in range(s.synthetic.classes)),
        _sizes(s.synthetic.train_size, s.synthetic.test_size)))
def _synthetic(cfg: Any, s: SyntheticSettings) -> RawDataset:
    from convlab.data.synthetic import make_synthetic

    return make_synthetic(s.synthetic)


# ----------------------------------------------------------------------- helpers


def _first_existing(candidates: list[Path], path: Path | None) -> Located:
    """``data.path`` when set, else the candidates under the root, in order."""
    looked = [path] if path is not None else candidates
    return Located(looked, next((p for p in looked if p.exists()), None))
