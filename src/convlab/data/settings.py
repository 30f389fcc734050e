"""The data section of an experiment: the keys every dataset shares.

Defined in the data package (and re-exported by ``convlab.config``) because validating
it needs the registry of datasets: the keys a dataset adds (``label`` of cifar100,
``split`` of emnist) are checked against that dataset's own settings model, as a model
section's keys are against its builder's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from convlab.schema import Fill, Strict


class PermuteConfig(Strict):
    """One fixed pixel permutation, the same for every image (permuted MNIST)."""

    seed: int = Field(0, description="seed of the permutation; the same seed, the same order")


class SubsetConfig(Strict):
    """Keep only the first N images of a split (after shuffling with the split seed)."""

    train: PositiveInt | None = Field(None, description="training images kept (None: all)")
    val: PositiveInt | None = Field(
        None, description="validation images kept: evaluating fewer each epoch saves time")
    test: PositiveInt | None = Field(None, description="test images kept (None: all)")


class ColorJitterConfig(Strict):
    """Per-image random factors in ``[1 - x, 1 + x]`` (torchvision's convention)."""

    brightness: float = Field(0.0, ge=0, le=1, description="brightness factor range")
    contrast: float = Field(0.0, ge=0, le=1, description="contrast factor range")
    saturation: float = Field(0.0, ge=0, le=1, description="saturation factor range")


class AugmentConfig(Strict):
    """Training-time augmentation, run per batch on the device, one draw per image."""

    crop_padding: NonNegativeInt = Field(
        0, description="random crop from a copy padded by this many pixels (see fill)")
    flip: bool | Literal["alternate"] = Field(False, description=(
        "horizontal flip with probability 1/2; alternate: each image flipped on every other "
        "epoch (a fixed random half in odd epochs, the other half in even ones), so every "
        "image is seen both ways every two epochs"))
    translate: NonNegativeInt = Field(
        0, description="random shift of up to this many pixels in x and y")
    fill: Fill = Field("zeros", description=(
        "what a crop, shift or rotation brings in at the border: zeros (black, as "
        "torchvision's RandomCrop) or the image mirrored at its edge (airbench's)"))
    rotate: float = Field(
        0.0, ge=0, le=180, description="random rotation in [-rotate, rotate] degrees")
    color_jitter: ColorJitterConfig = Field(
        ColorJitterConfig(), description="random brightness, contrast and saturation")
    noise: NonNegativeFloat = Field(
        0.0, description="Gaussian noise std, in units of [0, 1] pixel values")

    @property
    def enabled(self) -> bool:
        cj = self.color_jitter
        return bool(
            self.crop_padding or self.flip or self.translate or self.rotate or self.noise
            or cj.brightness or cj.contrast or cj.saturation
        )


class DataConfig(BaseModel):
    """The data section: keys every dataset shares, declared here, plus the keys of the
    chosen dataset's own settings model (``label`` of cifar100, ``split`` of emnist, ...),
    which the registry of datasets validates (``convlab data show NAME`` lists them)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    dataset: str = Field("mnist", description=(
        "a registered dataset (convlab data ls), or a user's loader named by a colon: "
        "'mydata.py:load' or 'module:function'"))
    root: Path | None = Field(None, description=(
        "folder holding the datasets' files; default $CONVLAB_DATA, else "
        "~/.cache/convlab/data"))
    path: Path | None = Field(None, description=(
        "a dataset's own file or folder (imagefolder: a folder, .zip or .tar)"))
    args: dict[str, Any] = Field(default_factory=dict, description=(
        "a user's loader: its keyword arguments (checked against its signature)"))
    download: bool = Field(
        True, description="fetch through torchvision when files are absent (online only)")
    permute: PermuteConfig | None = Field(
        None, description="one fixed pixel permutation of every image")
    val_fraction: float = Field(
        0.0, ge=0, lt=1, description="fraction of the training split held out for validation")
    split_seed: int = Field(0, description="seed of the validation split and the subsets")
    subset: SubsetConfig = Field(
        SubsetConfig(), description="keep only the first N images of each split")
    normalize: Literal["auto", "none", "channel", "mean_image", "zca"] = Field(
        "auto", description=(
            "input normalization fitted on the training split; auto: 'channel', or 'none' "
            "for a model that normalizes its own input (a pretrained ResNet)"))
    zca_epsilon: PositiveFloat = Field(1e-2, description="ZCA whitening regularizer")
    augment: AugmentConfig = Field(
        AugmentConfig(), description="training-time augmentation, per batch on the device")
    resize: PositiveInt | None = Field(
        None, description="resize every image to this square size (on the device)")
    skip_bad_images: bool = Field(
        False, description="skip unreadable images of an image folder (with a warning)")

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        from convlab.data.resolve import resolve_section

        if not isinstance(data, dict):
            return data
        return resolve_section(data, frozenset(cls.model_fields))

    @property
    def settings(self) -> dict[str, Any]:
        """The keys the dataset adds (its own settings), as validated."""
        return dict(self.__pydantic_extra__ or {})
