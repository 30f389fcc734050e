"""A user's own data: ``data: {dataset: "mydata.py:load", args: {n: 400}}``.

The function (named by a colon, as user models are; see :mod:`convlab.usercode`) is
called with ``data.args`` as keyword arguments, checked against its signature, and
returns ``{"train": (x, y), "test": (x, y)}`` with an optional ``"val"`` and
``"classes"`` (names). ``x`` is a numpy array or tensor: uint8 ``N x H x W x C``,
``N x C x H x W`` or ``N x H x W``, or float in [0, 1]; ``y`` integer labels. A split may
instead be a map-style ``torch.utils.data.Dataset`` of ``(image, label)`` samples; it is
materialized into memory once, for the indices the run keeps (so ``data.subset`` limits
what is read), with a progress bar, and cached by the user file's hash, the arguments
and the indices. Everything else of the data section applies as to any dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convlab.data import ImageSet, RawDataset
from convlab.data.memory import check_fits
from convlab.errors import DataError

SPLITS = ("train", "val", "test")
PROGRESS_EVERY = 512  # samples between progress reports
_MEMO: dict[str, RawDataset] = {}  # the last dataset loaded: a run asks twice (shape, data)


def load_user_dataset(cfg: Any) -> RawDataset:
    """Call the user's loader named by ``cfg.dataset`` and check what it returns."""
    from convlab.usercode import call_user, check_kwargs, load_object

    loaded = load_object(cfg.dataset)
    key = json.dumps([loaded.ref, loaded.sha256, cfg.args], sort_keys=True, default=str)
    if key in _MEMO:
        return _MEMO[key]
    where = f"data.dataset {cfg.dataset!r}"
    if not callable(loaded.obj):
        raise DataError(f"{where}: expected a function returning the splits, got "
                        f"{type(loaded.obj).__name__}")
    kwargs = check_kwargs(loaded.obj, dict(cfg.args), "data.args")
    out = call_user(loaded.obj, kwargs, where)
    location = str(loaded.file) if loaded.file else loaded.ref
    raw = to_raw(out, cfg.dataset, location, cache_tag=hashlib.sha256(key.encode()).hexdigest())
    _MEMO.clear()
    _MEMO[key] = raw
    return raw


def to_raw(out: Any, where: str, location: str, cache_tag: str | None = None) -> RawDataset:
    """Check a loader's return value and turn it into a RawDataset (one-line errors)."""
    if not isinstance(out, Mapping):
        raise DataError(f"{where}: expected a mapping {{'train': (x, y), 'test': (x, y)}}, "
                        f"got {type(out).__name__}")
    unknown = sorted(set(out) - {*SPLITS, "classes"})
    if unknown or "train" not in out or "test" not in out:
        raise DataError(f"{where}: expected keys train, test (and optionally val, classes), "
                        f"got {', '.join(map(str, out))}")
    splits: dict[str, Any] = {}
    for split in SPLITS:
        if out.get(split) is None:
            continue
        value = out[split]
        if _is_dataset(value):
            splits[split] = DatasetSplit(value, f"{where} {split}", cache_tag and
                                         f"{cache_tag}-{split}")
        else:
            splits[split] = _arrays(value, f"{where} {split}")
    shapes = {s: tuple(v.images.shape[1:]) if isinstance(v, ImageSet) else v.sample_shape
              for s, v in splits.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{s} {'x'.join(map(str, sh))}" for s, sh in shapes.items())
        raise DataError(f"{where}: the splits' images differ in size ({listed}); "
                        f"they must have one C x H x W")
    classes = _classes(out.get("classes"), splits, where)
    return RawDataset(where, splits["train"], splits["test"], classes, location,
                      val=splits.get("val"))


def _is_dataset(value: Any) -> bool:
    return (not isinstance(value, tuple | list | np.ndarray | torch.Tensor)
            and hasattr(value, "__getitem__") and hasattr(value, "__len__"))


def _arrays(value: Any, where: str) -> ImageSet:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise DataError(f"{where}: expected (x, y) or a map-style Dataset, "
                        f"got {type(value).__name__}")
    x, y = value
    images = to_images(x, where)
    labels = to_labels(y, where)
    if len(labels) != len(images):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise DataError(f"{where}: no images")
    return ImageSet(images, labels)


def to_images(x: Any, where: str) -> torch.Tensor:
    """An array of images -> (N, C, H, W) uint8."""
    t = _tensor(x, where, "x")
    if t.dim() == 2:
        raise DataError(f"{where}: x is a 2-D array {tuple(t.shape)} where images were "
                        f"expected: reshape it to N x H x W (grey) or N x H x W x C")
    if t.dim() == 3:
        t = t.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    elif t.dim() == 4:
        t = _channels_first(t, tuple(t.shape[1:]), where)
    else:
        raise DataError(f"{where}: x has {t.dim()} dimensions {tuple(t.shape)}; expected "
                        f"N x H x W, N x H x W x C or N x C x H x W")
    return _to_uint8(t, where).contiguous()


def _channels_first(t: torch.Tensor, shape: tuple[int, ...], where: str) -> torch.Tensor:
    """(N, C, H, W) or (N, H, W, C) with C 1 or 3 -> (N, C, H, W)."""
    first, last = shape[0] in (1, 3), shape[-1] in (1, 3)
    if first:
        return t
    if last:
        return t.permute(0, 3, 1, 2) if t.dim() == 4 else t.permute(2, 0, 1)
    raise DataError(f"{where}: images of shape {shape}: expected 1 or 3 channels first "
                    f"(C x H x W) or last (H x W x C)")


def _tensor(x: Any, where: str, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if hasattr(x, "__array__") or isinstance(x, list | tuple):
        try:
            array = np.asarray(x)
        except Exception as e:  # numpy: "inhomogeneous shape" for ragged lists
            text = " ".join(str(e).split())[:120]
            raise DataError(f"{where}: {what} is not one numeric array (images of different "
                            f"sizes?): {text}") from None
        if array.dtype == object:
            raise DataError(f"{where}: {what} holds mixed objects (images of different "
                            f"sizes?); expected one numeric array")
        return torch.from_numpy(np.ascontiguousarray(array))
    raise DataError(f"{where}: {what} should be a numpy array or a tensor, "
                    f"got {type(x).__name__}")


def _to_uint8(t: torch.Tensor, where: str) -> torch.Tensor:
    if t.dtype == torch.uint8:
        return t
    if t.is_floating_point():
        if t.numel() and not torch.isfinite(t).all():
            raise DataError(f"{where}: images hold NaN or infinite values")
        low, high = (float(t.min()), float(t.max())) if t.numel() else (0.0, 0.0)
        if low < 0 or high > 1:
            raise DataError(f"{where}: float images must lie in [0, 1], these span "
                            f"[{low:g}, {high:g}]; scale them (x / 255) or pass uint8")
        return (t.float() * 255).round_().to(torch.uint8)
    raise DataError(f"{where}: images are {str(t.dtype).removeprefix('torch.')}; expected "
                    f"uint8 (0..255) or float in [0, 1]")


def to_labels(y: Any, where: str) -> torch.Tensor:
    """Labels -> (N,) int64; floats only when they hold whole numbers."""
    t = _tensor(y, where, "y").reshape(-1)
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            bad = float(t[t != t.round()][0])
            raise DataError(f"{where}: labels are not integers (e.g. {bad:g})")
        t = t.long()
    if t.dtype == torch.bool or t.is_complex():
        raise DataError(f"{where}: labels are {str(t.dtype).removeprefix('torch.')}; expected "
                        f"integers 0..K-1")
    return t.long()


def _classes(names: Any, splits: dict[str, Any], where: str) -> list[str]:
    top = max(int(s.labels.max()) for s in splits.values() if isinstance(s, ImageSet)) \
        if any(isinstance(s, ImageSet) for s in splits.values()) else -1
    low = min((int(s.labels.min()) for s in splits.values() if isinstance(s, ImageSet)),
              default=0)
    if names is not None:
        names = [str(n) for n in names]
        if len(names) < 2:
            raise DataError(f"{where}: 'classes' names {len(names)} class(es); expected >= 2")
    if names is None:
        names = _lazy_names(splits)
    k = len(names) if names is not None else top + 1
    lazy = [s for s in splits.values() if not isinstance(s, ImageSet)]
    if names is None and lazy and top < 0:
        raise DataError(f"{where}: a Dataset split needs the class names: return them as "
                        f"'classes' (or give the Dataset a .classes attribute)")
    for s in lazy:
        s.num_classes = k
    if low < 0 or top >= k:
        bad = low if low < 0 else top
        raise DataError(f"{where}: label {bad} out of range 0..{k - 1}"
                        + ("" if names is None else f" (the {k} names in 'classes')"))
    if k < 2:
        raise DataError(f"{where}: every label is 0; expected at least 2 classes")
    return names if names is not None else [str(i) for i in range(k)]


def _lazy_names(splits: dict[str, Any]) -> list[str] | None:
    """Class names of a Dataset split: its ``classes`` attribute (torchvision's convention)."""
    for s in splits.values():
        if not isinstance(s, ImageSet):
            classes = getattr(s.dataset, "classes", None)
            if classes is not None:
                return [str(c) for c in classes]
    return None


# ------------------------------------------------------------ map-style datasets


class DatasetSplit:
    """A map-style Dataset split read on demand: :meth:`take` materializes the indices a
    run keeps into one uint8 ImageSet (checked against memory first, cached on disk)."""

    def __init__(self, dataset: Any, where: str, cache_tag: str | None) -> None:
        self.dataset = dataset
        self.where = where
        self.cache_tag = cache_tag
        if len(dataset) == 0:
            raise DataError(f"{where}: the Dataset is empty")
        image, _ = self._sample(0)
        self.sample_shape = tuple(image.shape)  # (C, H, W)
        self.num_classes: int | None = None  # set once the dataset's classes are known

    def __len__(self) -> int:
        return len(self.dataset)

    def _sample(self, i: int) -> tuple[torch.Tensor, int]:
        item = self._get(i)
        if not isinstance(item, tuple | list) or len(item) < 2:
            raise DataError(f"{self.where}: sample {i} is {type(item).__name__}; expected "
                            f"(image, label)")
        x, y = item[0], item[1]
        if hasattr(x, "mode") and hasattr(x, "size") and not hasattr(x, "shape"):  # PIL
            x = np.asarray(x)
        t = _tensor(x, f"{self.where} sample {i}", "image")
        if t.dim() == 2:
            t = t.unsqueeze(0)
        elif t.dim() == 3:
            t = _channels_first(t, tuple(t.shape), f"{self.where} sample {i}")
        else:
            raise DataError(f"{self.where}: sample {i} image has shape {tuple(t.shape)}; "
                            f"expected H x W, H x W x C or C x H x W")
        label = to_labels(y if not isinstance(y, int) else [y], f"{self.where} sample {i}")
        if label.numel() != 1:
            raise DataError(f"{self.where}: sample {i} label has {label.numel()} values")
        return _to_uint8(t, f"{self.where} sample {i}"), int(label[0])

    def _get(self, i: int) -> Any:
        try:
            return self.dataset[i]
        except Exception as e:
            from convlab.usercode import user_error

            raise user_error(e, f"{self.where}: sample {i}") from e

    def take(self, index: torch.Tensor) -> ImageSet:
        """The samples at ``index`` in memory: (n, C, H, W) uint8 and (n,) labels."""
        idx = [int(i) for i in index]
        check_fits(self.where, len(idx), self.sample_shape)  # type: ignore[arg-type]
        cached = self._cache_load(idx)
        if cached is not None:
            return cached
        images = torch.empty((len(idx), *self.sample_shape), dtype=torch.uint8)
        labels = torch.empty(len(idx), dtype=torch.int64)
        report = _progress(len(idx), self.where)
        try:
            for j, i in enumerate(idx):
                if j % PROGRESS_EVERY == 0 and j:
                    report(j)
                image, label = self._sample(i)
                if tuple(image.shape) != self.sample_shape:
                    raise DataError(f"{self.where}: sample {i} is "
                                    f"{'x'.join(map(str, image.shape))}, sample 0 is "
                                    f"{'x'.join(map(str, self.sample_shape))}; images must "
                                    f"have one size")
                images[j], labels[j] = image, label
        finally:
            report(len(idx), done=True)  # also ends a terminal bar when a sample fails
        k = self.num_classes
        if len(labels) and (int(labels.min()) < 0 or (k is not None and int(labels.max()) >= k)):
            bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
            raise DataError(f"{self.where}: label {bad} out of range 0..{(k or 0) - 1}")
        out = ImageSet(images, labels)
        self._cache_save(idx, out)
        return out

    def _cache_file(self, idx: list[int]) -> Path | None:
        if self.cache_tag is None:
            return None
        from convlab.data.imagefolder import cache_dir

        digest = hashlib.sha256(np.asarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]
        return cache_dir() / f"userdata-{self.cache_tag[:24]}-{digest}.npz"

    def _cache_load(self, idx: list[int]) -> ImageSet | None:
        file = self._cache_file(idx)
        if file is None or not file.is_file():
            return None
        try:
            with np.load(file, allow_pickle=False) as npz:
                images, labels = npz["images"], npz["labels"]
        except Exception:  # a damaged cache file is a miss
            return None
        if images.dtype != np.uint8 or images.shape != (len(idx), *self.sample_shape) \
                or labels.shape != (len(idx),):
            return None
        return ImageSet(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))

    def _cache_save(self, idx: list[int], s: ImageSet) -> None:
        file = self._cache_file(idx)
        if file is None:
            return
        tmp = None
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=file.parent, suffix=".tmp",
                                             delete=False) as f:
                tmp = f.name
                np.savez(f, images=s.images.numpy(), labels=s.labels.numpy())
            os.replace(tmp, file)
            tmp = None
        except OSError:
            pass  # a read-only cache only costs speed
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def _progress(total: int, where: str) -> Callable[..., None]:
    """``report(done, done=False)``: to the runner's progress line when one is listening
    (:func:`convlab.data.imagefolder.decode_progress`), else a transient bar on a terminal
    for more than a few thousand samples, else nothing."""
    from convlab.data.imagefolder import current_decode_progress

    callback = current_decode_progress()
    if callback is not None:
        return lambda n, done=False: callback(f"{where} (reading samples)", n, total)
    import sys

    if total < 2000 or not sys.stderr.isatty():
        return lambda n, done=False: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task(f"reading {where}", total=total)
    bar.start()

    def report(n: int, done: bool = False) -> None:
        bar.update(task, completed=n)
        if done:
            bar.stop()

    return report
