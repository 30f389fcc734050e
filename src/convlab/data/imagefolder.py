"""Image folders: ``train/<class>/*`` + ``test/<class>/*``, or one ``<class>/*`` tree split.

The tree may be a folder, a ``.zip`` or a ``.tar[.gz]`` (read in place, see archive.py).
Images are decoded with Pillow, restricted to PNG/JPEG/BMP/GIF/WebP, with Pillow's
decompression-bomb limit enforced as an error. Decoding 60,000 small JPEGs costs seconds
on a 2-core CPU, so it runs in a process pool and the decoded uint8 arrays are cached
(``.npz`` read with ``allow_pickle=False``: a cache file can hold no code).

Why processes and not threads: measured on the 2-core machine with 32x32 CIFAR JPEGs,
~60% of the ~90 us per image is Python-level work in Pillow (header parsing, mode
handling) that holds the GIL; 2 threads took as long as 1, 2 forked processes 1.8x less.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from convlab.data import ImageSet, RawDataset
from convlab.data.archive import (
    DownloadError,
    TreeFile,
    fetch,
    folder_listing,
    read_tree,
    tree_kind,
)
from convlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
OPEN_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # the only Pillow plugins tried
ACCEPTED_FORMATS = (*OPEN_FORMATS, "MPO")  # MPO: multi-picture JPEG from cameras, via JPEG
PILLOW_DEFAULT_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3  # Pillow's own default limit
POOL_MIN_IMAGES = 2048  # below this a pool costs more than it saves
CHUNK = 512  # images per pool task
CACHE_VERSION = 1
SPLITS = ("train", "test")

# (what, images decoded, images in all): told while a tree decodes, e.g. to a progress line
DecodeProgress = Callable[[str, int, int], None]
_DECODE_PROGRESS: ContextVar[DecodeProgress | None] = ContextVar("decode_progress",
                                                                 default=None)


@contextmanager
def decode_progress(callback: DecodeProgress | None) -> Iterator[None]:
    """Within this block every decode of an image tree tells ``callback`` how far it is
    (after each chunk of images), so a caller can show "decoding cifar10-jpeg.zip
    12,000/60,000" without the data layer knowing how it is shown."""
    token = _DECODE_PROGRESS.set(callback)
    try:
        yield
    finally:
        _DECODE_PROGRESS.reset(token)


def current_decode_progress() -> DecodeProgress | None:
    """The callback of the enclosing :func:`decode_progress` block (a user's Dataset being
    read reports through it too), or None."""
    return _DECODE_PROGRESS.get()


@dataclass
class Decoded:
    """A decoded tree: per split (N, C, H, W) uint8 images and (N,) int64 labels.

    ``splits`` has ``train`` and ``test`` for a train/test tree, ``all`` for a flat one.
    """

    classes: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    skipped: list[str] = field(default_factory=list)  # "name: reason" of skipped images


# ------------------------------------------------------------------------ loading


def load_imagefolder(path: Path, *, test_fraction: float | None = None, split_seed: int = 0,
                     resize: int | None = None, skip_bad_images: bool = False,
                     name: str = "imagefolder", classes: Sequence[str] | None = None,
                     use_cache: bool = True, labels: Path | None = None,
                     split_dirs: tuple[str, str] = SPLITS, fit: bool = False,
                     class_names: Sequence[str] | None = None) -> RawDataset:
    """Read an image tree into a RawDataset.

    ``classes`` fixes the class list (and so the label of each folder), for datasets such
    as CIFAR-10 whose label order is defined elsewhere; otherwise it is the sorted list of
    class folders, as in torchvision's ``ImageFolder``. ``test_fraction`` splits a flat
    ``<class>/*`` tree per class (stratified), seeded by ``split_seed``. ``labels``: a CSV
    of ``file,label[,split]`` rows labels the files instead of class folders.
    ``split_dirs``: the folder names of the train and test splits (Imagenette: ``val``).
    ``fit``: with ``resize``, scale the shorter side and centre-crop (keeps the aspect).
    ``class_names``: the names to report for ``classes`` (Imagenette's WordNet ids).
    """
    decoded = read_image_tree(path, resize=resize, skip_bad_images=skip_bad_images,
                              classes=classes, use_cache=use_cache, labels=labels,
                              split_dirs=split_dirs, fit=fit)
    where = labels if labels is not None else path
    if "all" in decoded.splits:
        if test_fraction is None and labels is not None:
            raise DataError(f"{labels}: no train/test split; give each row a third column, "
                            f"train or test, or set data.test_fraction")
        if test_fraction is None:
            raise DataError(f"{path}: no train/ and test/ folders; {_layout_help()}")
        images, labels_ = decoded.splits["all"]
        train_idx, test_idx = stratified_split(labels_, test_fraction, split_seed)
        if len(test_idx) == 0:
            raise DataError(f"{where}: too few images per class to split off a test set")
        train = (images[train_idx], labels_[train_idx])
        test = (images[test_idx], labels_[test_idx])
    else:
        train, test = decoded.splits["train"], decoded.splits["test"]
    names = list(class_names) if class_names is not None else decoded.classes
    return RawDataset(name, _image_set(*train), _image_set(*test), names, str(path))


def read_image_tree(path: Path, *, resize: int | None = None, skip_bad_images: bool = False,
                    classes: Sequence[str] | None = None, use_cache: bool = True,
                    labels: Path | None = None, split_dirs: tuple[str, str] = SPLITS,
                    fit: bool = False) -> Decoded:
    """Decode every image of a tree (or take it from the cache), before any split."""
    path = Path(path)
    kind = tree_kind(path)
    extra = _extra_key(labels, split_dirs, fit)
    key = _cache_key(path, kind, resize, skip_bad_images, classes, extra) if use_cache else None
    cached = _cache_load(key, path) if key else None
    if cached is not None:
        for message in cached.skipped:
            warnings.warn(f"{path}: skipped {message}", stacklevel=2)
        return cached
    files = read_tree(path, is_image_name)
    grouping = label_csv(labels, path, [f.name for f in files]) if labels is not None else None
    decoded = decode_tree(path, files, resize=resize, skip_bad_images=skip_bad_images,
                          classes=classes, split_dirs=split_dirs, fit=fit, grouping=grouping)
    if key:
        _cache_save(key, decoded)
    return decoded


def _extra_key(labels: Path | None, split_dirs: tuple[str, str], fit: bool) -> list[object]:
    """What besides the images a decode depends on: the CSV's bytes, split names, crop."""
    if labels is None and split_dirs == SPLITS and not fit:
        return []  # the key of every tree decoded before these options existed
    digest = None
    if labels is not None:
        try:
            digest = hashlib.sha256(Path(labels).read_bytes()).hexdigest()
        except OSError:
            digest = "unreadable"
    return [digest, list(split_dirs), fit]


def is_image_name(name: str) -> bool:
    """Image suffix, and no hidden component (``.DS_Store``, ``__MACOSX/`` resource forks)."""
    parts = name.split("/")
    if any(p.startswith(".") for p in parts) or "__MACOSX" in parts:
        return False
    return name.lower().endswith(IMAGE_SUFFIXES)


def decode_tree(path: Path, files: list[TreeFile], *, resize: int | None = None,
                skip_bad_images: bool = False, classes: Sequence[str] | None = None,
                split_dirs: tuple[str, str] = SPLITS, fit: bool = False,
                grouping: tuple[dict[str, list[tuple[int, int]]], list[str]] | None = None,
                ) -> Decoded:
    """Label the files by folder (or by ``grouping``), decode those in a split, stack each."""
    if grouping is None:
        grouping = label_files(path, [f.name for f in files], classes, split_dirs)
    groups, class_list = grouping
    used = sorted(i for members in groups.values() for i, _ in members)  # not e.g. val/
    check_memory(path, [files[i].data for i in used], resize, fit)
    decoded = decode_many([files[i].data for i in used], resize, fit=fit, what=path.name)
    results = dict(zip(used, decoded, strict=True))
    skipped = _report_bad(path, [files[i] for i in used], decoded, skip_bad_images)
    channels = 3 if any(not isinstance(r, str) and r.shape[0] == 3 for r in decoded) else 1
    splits = {}
    for split, members in groups.items():
        good = [(i, label) for i, label in members if not isinstance(results[i], str)]
        if not good:
            raise DataError(f"{path}: no readable images in {split!r}")
        arrays = [results[i] for i, _ in good]
        images = stack_images(arrays, [files[i].name for i, _ in good], channels, path)
        splits[split] = (images, np.array([label for _, label in good], dtype=np.int64))
    return Decoded(list(class_list), splits, skipped)


def check_memory(path: Path, datas: list[bytes], resize: int | None, fit: bool) -> None:
    """Refuse, before decoding, a tree whose decoded images would not fit in memory
    (estimated from the first image that decodes, at the size it will have)."""
    from convlab.data.memory import check_fits

    for data in datas[:8]:
        first = _decode_or_reason(data, resize, fit)
        if not isinstance(first, str):
            c, h, w = first.shape
            check_fits(f"{path}", len(datas), (3 if c == 1 else c, h, w),
                       "set data.resize to decode them smaller, or use fewer images")
            return


def _report_bad(path: Path, files: list[TreeFile], results: list[np.ndarray | str],
                skip_bad_images: bool) -> list[str]:
    """Raise for the first bad image, or warn about each and return their descriptions."""
    skipped = []
    for f, result in zip(files, results, strict=True):
        if not isinstance(result, str):
            continue
        if not skip_bad_images:
            raise DataError(f"{path}: {f.name}: {result} (set data.skip_bad_images to skip)")
        skipped.append(f"{f.name}: {result}")
        warnings.warn(f"{path}: skipped {f.name}: {result}", stacklevel=3)
    return skipped


def label_files(path: Path, names: list[str], classes: Sequence[str] | None = None,
                split_dirs: tuple[str, str] = SPLITS,
                ) -> tuple[dict[str, list[tuple[int, int]]], list[str]]:
    """Group files by split: ``{"train": [(index into names, label), ...], ...}``.

    Layouts: ``train/<class>/...`` + ``test/<class>/...`` (other top folders ignored), or
    ``<class>/...`` (split ``all``). One wrapping top folder (``cifar10/train/...``) is
    looked through. Within a split, files are in name order.
    """
    if not names:
        raise DataError(f"{path}: no images (.png .jpg .jpeg .bmp .gif .webp) found")
    prefix = _wrapping_folder(names, split_dirs)
    rel = [n[len(prefix):] for n in names]
    tops = {r.split("/", 1)[0] for r in rel if "/" in r}
    if tops & set(split_dirs):
        missing = [s for s in split_dirs if s not in tops]
        if missing:
            other = split_dirs[1 - split_dirs.index(missing[0])]
            raise DataError(f"{path}: has no {missing[0]}/ folder beside {other}/; "
                            f"{_layout_help()}")
        per_split = {canon: _classes_of(path, names, rel, f"{d}/")
                     for canon, d in zip(SPLITS, split_dirs, strict=True)}
    else:
        per_split = {"all": _classes_of(path, names, rel, "")}
    found = sorted({c for members in per_split.values() for _, c in members})
    class_list = _check_classes(path, found, per_split, classes)
    index = {c: i for i, c in enumerate(class_list)}
    groups = {split: [(i, index[c]) for i, c in sorted(members, key=lambda m: names[m[0]])]
              for split, members in per_split.items()}
    return groups, class_list


def _wrapping_folder(names: list[str], split_dirs: tuple[str, str] = SPLITS) -> str:
    """``"top/"`` if every file sits under one folder that is not itself the tree."""
    first = {n.split("/", 1)[0] for n in names}
    if len(first) == 1 and all(n.count("/") >= 2 for n in names):
        (top,) = first
        if top not in split_dirs:
            return f"{top}/"
    return ""


def _classes_of(path: Path, names: list[str], rel: list[str],
                prefix: str) -> list[tuple[int, str]]:
    """(index, class) of the files under ``prefix``; refuse files outside class folders."""
    out = []
    for i, r in enumerate(rel):
        if not r.startswith(prefix):
            continue  # another top folder (e.g. val/) beside train/ and test/
        rest = r[len(prefix):]
        if "/" not in rest:
            raise DataError(f"{path}: {names[i]} is not inside a class folder; "
                            f"{_layout_help()}")
        out.append((i, rest.split("/", 1)[0]))
    return out


def _check_classes(path: Path, found: list[str], per_split: dict[str, list[tuple[int, str]]],
                   classes: Sequence[str] | None) -> list[str]:
    if classes is not None:
        if set(found) != set(classes):
            extra = sorted(set(found) - set(classes))
            missing = sorted(set(classes) - set(found))
            raise DataError(f"{path}: expected class folders {', '.join(classes)}; "
                            f"missing {missing or 'none'}, unexpected {extra or 'none'}")
        return list(classes)
    if "train" in per_split:
        train = {c for _, c in per_split["train"]}
        stray = sorted({c for _, c in per_split["test"]} - train)
        if stray:
            raise DataError(f"{path}: test/{stray[0]}/ has no matching train/{stray[0]}/ folder")
    if len(found) < 2:
        raise DataError(f"{path}: found {len(found)} class folder(s) {found}; expected at least 2")
    return found


def label_csv(csv_path: Path, path: Path, names: list[str],
              ) -> tuple[dict[str, list[tuple[int, int]]], list[str]]:
    """Group the files of a tree by a CSV of ``file,label[,split]`` rows (Kaggle's layout).

    ``file`` is relative to the tree (``data.path``), with or without its image suffix;
    a first row whose file is not in the tree is a header. ``split`` is ``train`` or
    ``test``; without it every row goes to split ``all`` (for ``data.test_fraction``).
    Classes are the sorted labels (numerically when every label is an integer).
    """
    rows = _read_csv(csv_path)
    index: dict[str, int] = {}
    for i, n in enumerate(names):
        index[n] = i
        index.setdefault(n.rsplit(".", 1)[0], i)  # "img_001" finds "img_001.png"
    if rows and _lookup(index, rows[0][1][0]) is None:
        rows = rows[1:]  # a header row: id,label
    if not rows:
        raise DataError(f"{csv_path}: no rows of file,label")
    entries: list[tuple[int, str, str]] = []
    seen: set[int] = set()
    for line, row in rows:
        if len(row) not in (2, 3) or not row[1].strip():
            raise DataError(f"{csv_path}:{line}: expected file,label or file,label,split, "
                            f"got {len(row)} field(s)")
        i = _lookup(index, row[0])
        if i is None:
            raise DataError(f"{csv_path}:{line}: {row[0]!r} is not an image under {path}")
        if i in seen:
            raise DataError(f"{csv_path}:{line}: {row[0]!r} is listed twice")
        seen.add(i)
        split = row[2].strip().lower() if len(row) == 3 else "all"
        if split not in ("train", "test", "all"):
            raise DataError(f"{csv_path}:{line}: split {row[2]!r}; expected train or test")
        entries.append((i, row[1].strip(), split))
    splits = {split for _, _, split in entries}
    if "all" in splits and len(splits) > 1:
        raise DataError(f"{csv_path}: some rows name a split and some do not")
    if "all" not in splits and splits != {"train", "test"}:
        raise DataError(f"{csv_path}: every row is {splits.pop()}; expected train and test rows")
    labels = sorted({label for _, label, _ in entries},
                    key=lambda x: (int(x), x) if _is_int(x) else (float("inf"), x))
    if len(labels) < 2:
        raise DataError(f"{csv_path}: found {len(labels)} label(s); expected at least 2")
    number = {label: k for k, label in enumerate(labels)}
    groups: dict[str, list[tuple[int, int]]] = {}
    for i, label, split in sorted(entries, key=lambda e: names[e[0]]):
        groups.setdefault(split, []).append((i, number[label]))
    return groups, labels


def _read_csv(csv_path: Path) -> list[tuple[int, list[str]]]:
    import csv

    try:
        text = Path(csv_path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{csv_path}: file not found (data.labels)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{csv_path}: cannot read ({e})") from None
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as e:
        raise DataError(f"{csv_path}: not a CSV file ({e})") from None
    return [(n, row) for n, row in enumerate(rows, 1) if any(f.strip() for f in row)]


def _lookup(index: dict[str, int], name: str) -> int | None:
    name = name.strip().removeprefix("./")
    return index.get(name, index.get(name.rsplit(".", 1)[0]) if "." in name else None)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _layout_help() -> str:
    return ("expected train/<class>/<image> and test/<class>/<image>, or one "
            "<class>/<image> tree with data.test_fraction set to split it")


def stratified_split(labels: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): ``fraction`` of each class to test, seeded.

    Every class with at least 2 images keeps at least one in each split.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = min(max(round(len(idx) * fraction), 1), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stack_images(arrays: list[np.ndarray], names: list[str], channels: int,
                 path: Path) -> np.ndarray:
    """(C, H, W) arrays of one size -> (N, C, H, W) uint8; grey (C=1) repeated to RGB."""
    h, w = arrays[0].shape[1:]
    for a, n in zip(arrays, names, strict=True):
        if a.shape[1:] != (h, w):
            raise DataError(
                f"{path}: {n} is {a.shape[2]}x{a.shape[1]}, {names[0]} is {w}x{h}; images "
                f"must have one size (set data.resize to resize them while decoding)"
            )
    if all(a.shape[0] == channels for a in arrays):  # the common case: one memcpy-like stack
        return np.stack(arrays)  # (N, C, H, W)
    out = np.empty((len(arrays), channels, h, w), dtype=np.uint8)  # (N, C, H, W)
    for i, a in enumerate(arrays):
        out[i] = a  # (1, H, W) broadcasts to (3, H, W)
    return out


def _image_set(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    return ImageSet(torch.from_numpy(np.ascontiguousarray(images)),
                    torch.from_numpy(np.ascontiguousarray(labels)))


# ----------------------------------------------------------------------- decoding


def decode_image(data: bytes, name: str = "<bytes>", resize: int | None = None) -> np.ndarray:
    """Decode one image to (1, H, W) uint8 (grey) or (3, H, W) uint8 (colour).

    Raises DataError naming ``name`` for anything that is not a complete PNG, JPEG, BMP,
    GIF or WebP image within Pillow's pixel limit.
    """
    with warnings.catch_warnings():  # Pillow's bomb *warning* is an error here too
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        result = _decode_or_reason(data, resize)
    if isinstance(result, str):
        raise DataError(f"{name}: {result}")
    return result


def _decode_or_reason(data: bytes, resize: int | None, fit: bool = False) -> np.ndarray | str:
    """The array, or why the bytes are not an acceptable image (picklable for a pool)."""
    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as im:
            if im.format not in ACCEPTED_FORMATS:
                return f"format {im.format} is not one of {', '.join(OPEN_FORMATS)}"
            limit = Image.MAX_IMAGE_PIXELS or PILLOW_DEFAULT_MAX_PIXELS
            if im.width * im.height > limit:  # also when the warning filter is not set
                return f"{im.width}x{im.height} pixels exceeds the {limit}-pixel limit " \
                       f"(decompression bomb?)"
            im.load()
            return _to_array(im, resize, fit)
    except UnidentifiedImageError:
        return "not a PNG, JPEG, BMP, GIF or WebP image"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return f"refused as a decompression bomb ({e})"
    except Exception as e:  # Pillow's parsers raise OSError, SyntaxError, ValueError, ...
        text = " ".join(str(e).split()) or type(e).__name__
        return f"unreadable or truncated image ({text[:150]})"


def _to_array(im: Image.Image, resize: int | None, fit: bool = False) -> np.ndarray:
    """Grey modes -> "L", everything else -> "RGB"; optional square resize (``fit``:
    shorter side to ``resize``, then the centre square: no distortion)."""
    if im.mode.startswith("I;16"):  # 16-bit grey: keep the high byte, not a clipped value
        im = Image.fromarray((np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8), "L")
    elif im.mode in ("1", "I", "F", "LA", "La"):
        im = im.convert("L")
    elif (im.mode == "P" and "transparency" in im.info) or im.mode == "PA":
        im = im.convert("RGBA").convert("RGB")
    elif im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    if resize and im.size != (resize, resize):
        if fit:
            im = ImageOps.fit(im, (resize, resize), Image.Resampling.BILINEAR)
        else:
            im = im.resize((resize, resize), Image.Resampling.BILINEAR)
    array = np.asarray(im, dtype=np.uint8)  # (H, W) or (H, W, 3)
    if array.ndim == 2:
        return array[None]  # (1, H, W)
    # (H, W, 3) -> (3, H, W), made contiguous here: in the pool workers, not the parent
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def decode_many(datas: list[bytes], resize: int | None = None,
                workers: int | None = None, fit: bool = False,
                what: str = "images") -> list[np.ndarray | str]:
    """Decode many images, in a pool when there are enough; each result is an array or
    the reason the image was refused. The bomb warning is an error while this runs.
    Progress goes to the :func:`decode_progress` callback, if one is set."""
    workers = _default_workers() if workers is None else workers
    if multiprocessing.current_process().daemon:  # e.g. inside a multiprocessing.Pool
        workers = 1  # daemonic processes may not start children
    progress = _DECODE_PROGRESS.get()
    with warnings.catch_warnings():  # set in this thread, before any worker starts
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if workers <= 1 or len(datas) < POOL_MIN_IMAGES:
            out: list[np.ndarray | str] = []
            for start in range(0, len(datas), CHUNK):
                out += [_decode_or_reason(d, resize, fit) for d in datas[start:start + CHUNK]]
                if progress is not None:
                    progress(what, len(out), len(datas))
            return out
        return _decode_in_pool(datas, resize, workers, fit, what, progress)


# Inputs of running pools by token. Forked workers inherit this dict (copy-on-write), so
# the compressed bytes are never pickled to them; only (token, start, stop) travels.
_POOL_INPUTS: dict[int, list[bytes]] = {}


def _decode_range(token: int, start: int, stop: int, resize: int | None,
                  fit: bool = False) -> tuple[np.ndarray | None, list[np.ndarray | str]]:
    """Decode ``_POOL_INPUTS[token][start:stop]``; equal-shaped results come back as one
    stacked array (one buffer to pickle instead of hundreds of small ones)."""
    results = [_decode_or_reason(d, resize, fit) for d in _POOL_INPUTS[token][start:stop]]
    shapes = {r.shape if not isinstance(r, str) else None for r in results}
    if len(shapes) == 1 and None not in shapes:
        return np.stack(results), []  # type: ignore[arg-type]  # (n, C, H, W)
    return None, results


def _decode_in_pool(datas: list[bytes], resize: int | None,
                    workers: int, fit: bool = False, what: str = "images",
                    progress: DecodeProgress | None = None) -> list[np.ndarray | str]:
    token = id(datas)
    _POOL_INPUTS[token] = datas  # registered before the pool forks its workers
    starts = range(0, len(datas), CHUNK)
    try:
        with _executor(workers) as pool:
            parts = []
            for start, part in zip(starts, pool.map(
                    _decode_range, repeat(token), starts,
                    [min(s + CHUNK, len(datas)) for s in starts], repeat(resize),
                    repeat(fit)), strict=True):  # in order, as each chunk is done
                parts.append(part)
                if progress is not None:
                    progress(what, min(start + CHUNK, len(datas)), len(datas))
    except BrokenProcessPool:  # a worker died (e.g. out of memory): finish in this process
        return [_decode_or_reason(d, resize, fit) for d in datas]
    finally:
        del _POOL_INPUTS[token]
    return [r for stacked, items in parts for r in (list(stacked) if stacked is not None
                                                     else items)]


def _executor(workers: int) -> Executor:
    """Forked processes on Linux (workers inherit the loaded modules and the inputs: no
    re-import of torch, no copy of the bytes); threads elsewhere (fork is unsafe on macOS)."""
    if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(workers)


def _default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


# -------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """``$CONVLAB_CACHE``, else ``$XDG_CACHE_HOME/convlab/decoded`` (``~/.cache/...``)."""
    env = os.environ.get("CONVLAB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convlab" / "decoded"


def cache_file(path: Path, *, resize: int | None = None, skip_bad_images: bool = False,
               classes: Sequence[str] | None = None) -> Path | None:
    """Where the decoded arrays of this tree are (or would be) cached; None if unknowable."""
    path = Path(path)
    key = _cache_key(path, tree_kind(path), resize, skip_bad_images, classes)
    return cache_dir() / f"{key}.npz" if key else None


def _cache_key(path: Path, kind: str, resize: int | None, skip_bad: bool,
               classes: Sequence[str] | None, extra: list[object] | None = None) -> str | None:
    """A hash of what the decoded arrays depend on: the file(s) by size and mtime, and the
    decoding settings. A folder is keyed by every image's (name, size, mtime)."""
    try:
        resolved = path.resolve()
        if kind == "folder":
            stamp: object = hashlib.sha256(
                json.dumps(folder_listing(resolved, is_image_name)).encode()
            ).hexdigest()
        else:
            st = resolved.stat()
            stamp = [st.st_size, st.st_mtime_ns]
    except OSError:
        return None
    blob = json.dumps([CACHE_VERSION, str(resolved), kind, stamp, resize, skip_bad,
                       list(classes) if classes is not None else None, *(extra or [])])
    return f"{_safe_stem(path)}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


def _safe_stem(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.name)
    return stem[:40] or "tree"


def _cache_load(key: str, path: Path) -> Decoded | None:
    """The cached arrays, or None if absent or not exactly what we write (then re-decode)."""
    file = cache_dir() / f"{key}.npz"
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as npz:  # no pickle: a cache holds no code
            meta = json.loads(str(npz["meta"]))
            classes, skipped = list(meta["classes"]), list(meta["skipped"])
            splits = {s: (npz[f"{s}_images"], npz[f"{s}_labels"]) for s in meta["splits"]}
    except Exception:  # a damaged or foreign cache file is a miss, never an error
        return None
    for images, labels in splits.values():
        if (images.dtype != np.uint8 or images.ndim != 4 or labels.dtype != np.int64
                or labels.shape != images.shape[:1] or labels.min(initial=0) < 0
                or labels.max(initial=0) >= len(classes)):
            return None
    return Decoded(classes, splits, skipped)


def _cache_save(key: str, decoded: Decoded) -> None:
    """Write atomically (temporary file in the cache folder, then rename); skip on failure."""
    folder = cache_dir()
    meta = {"classes": decoded.classes, "skipped": decoded.skipped,
            "splits": list(decoded.splits)}
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
    for split, (images, labels) in decoded.splits.items():
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    tmp_name = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{key}-", suffix=".tmp",
                                         delete=False) as tmp:
            tmp_name = tmp.name
            np.savez(tmp, **arrays)
        os.replace(tmp_name, folder / f"{key}.npz")
        tmp_name = None
    except OSError:
        pass  # a read-only or full cache folder only costs speed
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


# ---------------------------------------------------------------------- imagenette

IMAGENETTE_FOLDERS = {"160": "imagenette2-160", "320": "imagenette2-320", "full": "imagenette2"}
_IMAGENETTE_ARCHIVES = {"160": "160px", "320": "320px", "full": "full"}  # torchvision's keys


def imagenette_candidates(root: Path, size: str) -> list[Path]:
    """Where Imagenette of one size is looked for: its published folder, or its .tgz."""
    folder = IMAGENETTE_FOLDERS[size]
    return [root / folder, root / f"{folder}.tgz"]


def load_imagenette(root: Path, path: Path | None, download: bool, size: str, pixels: int,
                    skip_bad_images: bool = False) -> RawDataset:
    """Imagenette (fast.ai) in its published layout, ``imagenette2-160/{train,val}/<wnid>/``
    (``val`` is the test split), decoded to ``pixels`` squares (shorter side, centre
    crop); ``path`` may name the folder or its .tgz, read in place."""
    from convlab.data.classes import IMAGENETTE_WNIDS

    candidates = [path] if path is not None else imagenette_candidates(root, size)
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        if path is not None or not download:
            why = "data.download is false" if path is None else "data.path does not exist"
            raise DataError(_imagenette_missing(candidates, root, size, why))
        try:
            found = download_imagenette(root, size)
        except DownloadError as e:
            raise DataError(_imagenette_missing(candidates, root, size,
                                                f"download failed: {e}")) from None
    wnids = tuple(IMAGENETTE_WNIDS)
    return load_imagefolder(found, resize=pixels, fit=True, skip_bad_images=skip_bad_images,
                            name="imagenette", classes=wnids, split_dirs=("train", "val"),
                            class_names=[IMAGENETTE_WNIDS[w] for w in wnids])


def download_imagenette(root: Path, size: str) -> Path:
    """The .tgz with torchvision's URL and MD5, read in place (no extraction needed)."""
    import torchvision.datasets as tvd

    url, md5 = tvd.Imagenette._ARCHIVES[_IMAGENETTE_ARCHIVES[size]]
    tarball = root / f"{IMAGENETTE_FOLDERS[size]}.tgz"
    fetch([url], tarball, md5)
    return tarball


def _imagenette_missing(candidates: list[Path], root: Path, size: str, why: str) -> str:
    return (f"Imagenette ({size}) not found: looked for {', '.join(map(str, candidates))}; "
            f"{why}. Get {IMAGENETTE_FOLDERS[size]}.tgz from "
            f"https://github.com/fastai/imagenette and put it (or its folder) in {root}, or "
            f"set CONVLAB_DATA (or data.root) to the folder holding it")
