"""SVHN (Netzer et al. 2011): the cropped-digit ``*_32x32.mat`` files, read with scipy.

The files are MATLAB v5 files: ``X`` is (32, 32, 3, N) uint8 and ``y`` (N, 1) with 1..10,
where 10 stands for the digit 0 (torchvision maps it the same way). ``scipy.io.loadmat``
builds plain arrays (no code runs on load); scipy is an optional extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from convlab.data import ImageSet, RawDataset
from convlab.data.archive import DownloadError, fetch
from convlab.data.classes import DIGITS
from convlab.data.spec import Located
from convlab.errors import DataError

SPLIT_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
MAX_MAT_BYTES = 2 << 30  # extra_32x32.mat is 1.3 GB
SCIPY_HINT = "reading SVHN's .mat files needs scipy: pip install 'convlab[scipy]'"


def candidate_dirs(root: Path, path: Path | None) -> list[Path]:
    """``data.path``, else ``<root>/svhn``, ``<root>/SVHN`` and the root itself
    (torchvision's ``SVHN(root)`` keeps the files in the root)."""
    if path is not None:
        return [path]
    return [root / "svhn", root / "SVHN", root]


def _needed(extra: bool) -> list[str]:
    return ["train", "test", *(["extra"] if extra else [])]


def locate_svhn(root: Path, path: Path | None, extra: bool) -> Located:
    dirs = candidate_dirs(root, path)
    found = next((d for d in dirs if all((d / SPLIT_FILES[s]).is_file()
                                         for s in _needed(extra))), None)
    return Located(dirs, found)


def load_svhn(root: Path, path: Path | None = None, download: bool = True,
              extra: bool = False) -> RawDataset:
    """Find (or download) and read the splits; ``extra`` appends the extra split to train."""
    located = locate_svhn(root, path, extra)
    folder = located.found
    if folder is None:
        if not download:
            raise DataError(_missing_message(located.looked, extra, "data.download is false"))
        folder = located.looked[0]
        try:
            download_svhn(folder, _needed(extra))
        except DownloadError as e:
            raise DataError(_missing_message(located.looked, extra,
                                             f"download failed: {e}")) from None
    parts = {s: read_svhn_mat(folder / SPLIT_FILES[s]) for s in _needed(extra)}
    train = parts["train"]
    if extra:
        train = ImageSet(torch.cat([train.images, parts["extra"].images]),
                         torch.cat([train.labels, parts["extra"].labels]))
    return RawDataset("svhn", train, parts["test"], list(DIGITS), str(folder))


def download_svhn(folder: Path, splits: list[str]) -> None:
    """Each missing file from torchvision's URL with its MD5."""
    import torchvision.datasets as tvd

    for split in splits:
        url, filename, md5 = tvd.SVHN.split_list[split]
        if not (folder / filename).is_file():
            fetch([url], folder / filename, md5)


def read_svhn_mat(path: Path) -> ImageSet:
    """One ``*_32x32.mat`` -> (N, 3, 32, 32) uint8 images, (N,) labels 0..9."""
    try:
        from scipy.io import loadmat, whosmat
    except ImportError:
        raise DataError(f"{path}: {SCIPY_HINT}") from None
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if size > MAX_MAT_BYTES:
        raise DataError(f"{path}: {size} bytes, more than the {MAX_MAT_BYTES} an SVHN file has")
    try:
        _check_declared(dict((n, (shape, kind)) for n, shape, kind in whosmat(str(path))), path)
        mat = loadmat(str(path), variable_names=["X", "y"])
    except DataError:
        raise
    except Exception as e:  # scipy raises ValueError, TypeError, OSError ... on junk
        text = " ".join(str(e).split())[:150] or type(e).__name__
        raise DataError(f"{path}: not a readable MATLAB .mat file ({text})") from None
    return _parse(mat, path)


def _check_declared(variables: dict[str, tuple[tuple[int, ...], str]], path: Path) -> None:
    """Refuse, from the headers alone, a file whose arrays are not SVHN's or larger than
    it can hold: a compressed .mat element could otherwise inflate without bound."""
    x, y = variables.get("X"), variables.get("y")
    if x is None or y is None:
        raise DataError(f"{path}: expected variables X and y, found "
                        f"{', '.join(variables) or 'none'}")
    (shape, kind), (y_shape, _) = x, y
    if len(shape) != 4 or tuple(shape[:3]) != (32, 32, 3) or kind != "uint8":
        raise DataError(f"{path}: expected 'X' as a (32, 32, 3, N) uint8 array, got "
                        f"{tuple(shape)} {kind}")
    if shape[3] * 3072 > MAX_MAT_BYTES or int(np.prod(y_shape)) != shape[3]:
        raise DataError(f"{path}: declares {shape[3]} images and {int(np.prod(y_shape))} "
                        f"labels; expected equal counts of at most {MAX_MAT_BYTES // 3072}")


def _parse(mat: dict[str, Any], path: Path) -> ImageSet:
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 \
            or x.shape[:3] != (32, 32, 3):
        got = f"{x.shape} {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: expected 'X' as a (32, 32, 3, N) uint8 array, got {got}")
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iuf" or y.size != x.shape[3]:
        got = f"{y.shape} {y.dtype}" if isinstance(y, np.ndarray) else type(y).__name__
        raise DataError(f"{path}: expected 'y' as {x.shape[3]} labels 1..10, got {got}")
    labels = y.reshape(-1)
    if labels.size and (labels.min() < 1 or labels.max() > 10 or
                        not np.array_equal(labels, np.round(labels))):
        raise DataError(f"{path}: labels outside 1..10 (10 stands for the digit 0)")
    labels = labels.astype(np.int64) % 10  # 10 -> 0
    # X[h, w, c, n] -> (N, C, H, W)
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels))


def _missing_message(dirs: list[Path], extra: bool, why: str) -> str:
    names = ", ".join(SPLIT_FILES[s] for s in _needed(extra))
    return (f"SVHN not found: looked for {names} in {', '.join(str(d) for d in dirs)}; {why}. "
            f"Get them from http://ufldl.stanford.edu/housenumbers/ and put them in "
            f"{dirs[0]}, or set CONVLAB_DATA (or data.root) to a folder holding svhn/")
