"""STL-10 (Coates et al. 2011): the labelled train/test splits of ``stl10_binary/``.

``*_X.bin`` holds N images of 3 x 96 x 96 bytes, each channel stored column-major (so a
plain reshape gives transposed images; torchvision transposes them back the same way);
``*_y.bin`` one byte per image, 1..10. The 100,000 unlabelled images are not read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convlab.data import ImageSet, RawDataset
from convlab.data.archive import extract_members, fetch, find_or_download
from convlab.data.classes import STL10_CLASSES
from convlab.errors import DataError

FOLDER = "stl10_binary"
SPLITS = ("train", "test")
IMAGE_BYTES = 3 * 96 * 96
MAX_BIN_BYTES = 1 << 30  # test_X.bin, the largest labelled file, is 221 MB


def load_stl10(root: Path, path: Path | None = None, download: bool = True) -> RawDataset:
    """``path`` (``stl10_binary/`` or a folder holding it), else ``<root>/stl10_binary``,
    else a download of the tarball (2.6 GB) from which the four labelled files are taken."""
    folder = find_or_download(path, root, FOLDER, "train_X.bin", download, download_stl10,
                              lambda f, why: _missing_message(f, root, why))
    train, test = (read_split(folder, split) for split in SPLITS)
    return RawDataset("stl10", train, test, list(STL10_CLASSES), str(folder))


def read_split(folder: Path, split: str) -> ImageSet:
    """``<split>_X.bin`` and ``<split>_y.bin`` -> (N, 3, 96, 96) uint8, (N,) labels 0..9."""
    x_path, y_path = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    x, y = _read_bytes(x_path), _read_bytes(y_path)
    if len(x) % IMAGE_BYTES:
        raise DataError(f"{x_path}: {len(x)} bytes is not a whole number of 3x96x96 images "
                        f"({IMAGE_BYTES} bytes each); truncated?")
    n = len(x) // IMAGE_BYTES
    if len(y) != n:
        raise DataError(f"{y_path}: {len(y)} labels for {n} images in {x_path.name}")
    if n == 0:
        raise DataError(f"{x_path}: no images")
    labels = np.frombuffer(y, dtype=np.uint8)
    if labels.min() < 1 or labels.max() > 10:
        raise DataError(f"{y_path}: labels outside 1..10")
    # (N, C, W, H) as stored -> (N, C, H, W)
    images = np.frombuffer(x, dtype=np.uint8).reshape(n, 3, 96, 96).transpose(0, 1, 3, 2)
    return ImageSet(torch.from_numpy(np.ascontiguousarray(images)),
                    torch.from_numpy(labels.astype(np.int64) - 1))


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BIN_BYTES:
            raise DataError(f"{path}: {size} bytes, more than an STL-10 file holds")
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def download_stl10(root: Path) -> Path:
    """torchvision's URL and MD5; only the labelled files are taken out of the tarball."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import check_integrity

    tarball = root / tvd.STL10.filename
    if not check_integrity(str(tarball), tvd.STL10.tgz_md5):
        fetch([tvd.STL10.url], tarball, tvd.STL10.tgz_md5)
    folder = root / FOLDER
    names = [f"{s}_{k}.bin" for s in SPLITS for k in "Xy"]
    extract_members(tarball, {f"{FOLDER}/{n}": folder / n for n in names}, MAX_BIN_BYTES)
    return folder


def _missing_message(folder: Path, root: Path, why: str) -> str:
    import torchvision.datasets as tvd

    return (f"STL-10 not found: looked for {folder}/{{train,test}}_{{X,y}}.bin; {why}. "
            f"Get {tvd.STL10.url} and unpack it in {root}, or set CONVLAB_DATA (or "
            f"data.root) to a folder holding {FOLDER}/")
