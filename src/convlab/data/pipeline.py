"""From a data config to batches on the training device.

Read the source once, then keep every split as one uint8 tensor on the device and
gather batches by index; augmentation and normalization run per batch as tensor ops.
(A DataLoader with per-sample PIL transforms costs ~10 s per MNIST epoch on the 2-core
CPU this was measured on; gathering from memory costs ~35 ms.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from convlab.data import ImageSet
from convlab.data.settings import DataConfig
from convlab.errors import ConfigError


@dataclass
class PreparedData:
    """Splits in memory on the device, with the fitted input pipeline."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    classes: list[str]
    shape: tuple[int, int, int]  # (C, H, W) as the model sees it (after resize)
    normalizer: object  # transforms.Normalizer
    augmenter: object | None  # transforms.Augmenter, None when augmentation is off
    resize: int | None
    fingerprint: str
    location: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sizes(self) -> dict[str, int]:
        """Images per split as trained and evaluated (after val_fraction and subset): what
        the run's header line reports."""
        return {"train": len(self.train), "val": len(self.val) if self.val is not None else 0,
                "test": len(self.test)}


def prepare_data(
    cfg: DataConfig, device: torch.device, model_normalizes: bool = False
) -> PreparedData:
    """Load, split (train/val), subset, permute, fit normalization: the fixed part.

    ``model_normalizes``: the model standardizes its own input (pretrained weights with
    their own statistics), so ``normalize: auto`` means none here.
    """
    from convlab.data.sources import load_raw
    from convlab.data.transforms import (
        Augmenter,
        fit_normalizer,
        permute_pixels,
        pixel_permutation,
    )

    raw = load_raw(cfg)
    train, test = raw.train, raw.test
    g = torch.Generator().manual_seed(cfg.split_seed)
    order = torch.randperm(len(train), generator=g)  # one fixed shuffle for split and subset
    if raw.val is not None:  # the source's own validation split
        if cfg.val_fraction:
            raise ConfigError(f"data.val_fraction: {raw.location} has a validation split of "
                              f"its own; set val_fraction to 0 to use it")
        n_val, val = 0, raw.val
    else:
        n_val = round(len(train) * cfg.val_fraction)
        val = train.take(order[:n_val].sort().values) if n_val else None
    train_idx = order[n_val:]
    if cfg.subset.train:
        train_idx = train_idx[: cfg.subset.train]
    train = train.take(train_idx.sort().values)
    if val is not None and cfg.subset.val and cfg.subset.val < len(val):
        val = val.take(torch.randperm(len(val), generator=g)[: cfg.subset.val].sort().values)
    if cfg.subset.test and cfg.subset.test < len(test):
        test = test.take(torch.randperm(len(test), generator=g)[: cfg.subset.test].sort().values)
    val = _whole(val) if val is not None else None
    test = _whole(test)
    c, h, w = (int(d) for d in train.images.shape[1:])
    if cfg.permute is not None:
        perm = pixel_permutation(cfg.permute.seed, h, w)
        train, test = (ImageSet(permute_pixels(s.images, perm), s.labels) for s in (train, test))
        if val is not None:
            val = ImageSet(permute_pixels(val.images, perm), val.labels)
    mode = effective_normalize(cfg.normalize, model_normalizes)
    if cfg.resize and mode in ("mean_image", "zca"):
        raise ConfigError(
            f"data.normalize: {mode!r} cannot be combined with data.resize; "
            f"use 'channel' or 'none'"
        )
    normalizer = fit_normalizer(train.images, mode, cfg.zca_epsilon)
    fingerprint = data_fingerprint(train, val, test)
    if cfg.resize:
        h = w = cfg.resize
    return PreparedData(
        train=_to(train, device),
        val=_to(val, device) if val is not None else None,
        test=_to(test, device),
        classes=raw.classes,
        shape=(c, h, w),
        normalizer=normalizer.to(device),
        augmenter=Augmenter(cfg.augment) if cfg.augment.enabled else None,
        resize=cfg.resize,
        fingerprint=fingerprint,
        location=raw.location,
    )


def _whole(s: Any) -> ImageSet:
    """A split in memory: a lazy one (a user's map-style dataset) is materialized whole."""
    return s if isinstance(s, ImageSet) else s.take(torch.arange(len(s)))


def effective_normalize(mode: str, model_normalizes: bool) -> str:
    if mode == "auto":
        return "none" if model_normalizes else "channel"
    return mode


def _to(s: ImageSet, device: torch.device) -> ImageSet:
    return ImageSet(s.images.to(device).contiguous(), s.labels.to(device))


def data_fingerprint(*splits: ImageSet | None) -> str:
    """BLAKE2b of every split's pixels and labels, after subsetting: what the run saw."""
    h = hashlib.blake2b(digest_size=16)
    for s in splits:
        if s is None:
            h.update(b"none")
            continue
        h.update(str(tuple(s.images.shape)).encode())
        h.update(s.images.contiguous().numpy().tobytes())
        h.update(s.labels.contiguous().numpy().tobytes())
    return h.hexdigest()


class InMemoryLoader:
    """Batches gathered by index from a split held on the device.

    Each batch: gather uint8 -> float in [0, 1] -> augment (train) -> resize ->
    normalize -> channels_last. The shuffle and the augmentation draws come from the
    generators, so a run with a seed is repeatable and a resumed run continues the same
    sequence.
    """

    def __init__(
        self, data: ImageSet, batch_size: int, *, normalizer: object, shuffle: bool = False,
        augmenter: object | None = None, resize: int | None = None, channels_last: bool = False,
        generator: torch.Generator | None = None, aug_generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.normalizer = normalizer
        self.shuffle = shuffle
        self.augmenter = augmenter
        self.resize = resize
        self.channels_last = channels_last
        self.generator = generator  # CPU: the shuffle
        self.aug_generator = aug_generator  # on the data's device: augmentation draws
        self.dtype = dtype
        self.epoch = 0  # epochs trained before this pass: set by the loop (alternating flip)
        self._flips: torch.Tensor | None = None

    CHUNK_BYTES = 1 << 20  # see _chunk_images

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches from number ``start`` on (a resumed epoch skips those already trained;
        the shuffle is drawn first either way, so the order is the same)."""
        n, bs = len(self.data), self.batch_size
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.data.images.device)
        step = self._chunk_images()
        for i in range(start * bs, n, step):
            stop = min(i + step, n)
            if order is None:
                idx = None
                images, labels = self.data.images[i:stop], self.data.labels[i:stop]
            else:
                idx = order[i:stop]
                images, labels = self.data.images[idx], self.data.labels[idx]
            x = self.transform(images, self.alternate_flips(idx, i, stop))
            for j in range(0, stop - i, bs):
                yield x[j : j + bs], labels[j : j + bs]

    def _chunk_images(self) -> int:
        """Images gathered and transformed in one go: several batches when that is exact.

        With no augmentation, no resize and an elementwise normalization every op acts on
        each pixel alone and draws nothing, so transforming ~1 MB of images at once (still
        cache-resident) and slicing it gives the same batches, bit for bit, with a fraction
        of the per-op overhead: at batch size 2 the per-batch gather/convert/normalize cost
        ~120 us, 8% of an MNIST step here. Augmentation keeps one transform per batch, so
        its random draws stay as they are; ZCA (a matrix product) keeps per-batch too.
        """
        bs = self.batch_size
        elementwise = getattr(self.normalizer, "mode", None) in ("none", "channel", "mean_image")
        if self.augmenter is not None or self.resize or not elementwise:
            return bs
        c, h, w = self.data.images.shape[1:]
        per_image = int(c * h * w) * torch.empty((), dtype=self.dtype).element_size()
        return bs * max(1, self.CHUNK_BYTES // (per_image * bs))

    def alternate_flips(
        self, idx: torch.Tensor | None, start: int, stop: int
    ) -> torch.Tensor | None:
        """The mirror decisions of images ``idx`` (else ``start:stop``) this epoch under
        ``flip: alternate``; None otherwise."""
        if getattr(getattr(self.augmenter, "cfg", None), "flip", None) != "alternate":
            return None
        if self._flips is None:
            from convlab.data.transforms import alternate_flips

            self._flips = alternate_flips(len(self.data), self.data.images.device)
        base = self._flips[start:stop] if idx is None else self._flips[idx]
        return base ^ (self.epoch % 2 == 1)

    def transform(
        self, images: torch.Tensor, flips: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, C, H, W) uint8 -> (B, C, H', W') float, ready for the model."""
        from convlab.data.transforms import resize

        x = images.to(self.dtype).div_(255)
        if self.augmenter is not None:
            x = self.augmenter(x, self.aug_generator, flips)  # type: ignore[operator]
        if self.resize:
            x = resize(x, self.resize)
        x = self.normalizer(x)  # type: ignore[operator]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
