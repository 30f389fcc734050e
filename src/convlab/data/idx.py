"""IDX files (MNIST, Fashion-MNIST): a validating reader and the MNIST-family loader.

Why our own reader rather than ``torchvision.datasets.mnist.read_sn3_pascalvincent_tensor``
(torchvision 0.29): it reads the whole file before looking at the header, checks the
payload size only with an ``assert`` (gone under ``python -O``; an ``AssertionError`` or
``KeyError`` rather than a typed error), ignores the two zero magic bytes, and reads
unpacked files only (torchvision inflates the ``.gz`` files to disk first, unbounded). We
want every bad file to be a one-line :class:`DataError` naming the file, sizes checked
before any allocation, ``.gz`` read in place with a bound on decompression. The format is
simple enough (LeCun et al., http://yann.lecun.com/exdb/mnist/):

    magic: 0x00 0x00 <dtype code> <ndim>   then ndim big-endian uint32 sizes, then data
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from convlab.data import ImageSet, RawDataset
from convlab.data.archive import DownloadError, fetch
from convlab.errors import DataError

# dtype code -> numpy dtype (big-endian as stored; converted to native on read).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_IDX_BYTES = 1 << 30  # 1 GiB: 20x full MNIST; anything larger is a broken or hostile header
MAX_NDIM = 8
_CHUNK = 1 << 22  # 4 MiB per gzip read: bounded memory growth, few Python round trips
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class IdxHeader:
    dtype: np.dtype
    dims: tuple[int, ...]

    @property
    def header_bytes(self) -> int:
        return 4 + 4 * len(self.dims)

    @property
    def payload_bytes(self) -> int:
        return math.prod(self.dims) * self.dtype.itemsize


def read_idx(path: Path) -> torch.Tensor:
    """Read one IDX file, plain or gzip-compressed (detected by content, not by name).

    Returns a tensor of the file's dims in its native dtype, e.g. (60000, 28, 28) uint8.
    Raises DataError for anything but a well-formed file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            if gz:
                with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                    return _read_stream(stream, path, file_size=None)
            return _read_stream(f, path, file_size=os.fstat(f.fileno()).st_size)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"{path}: not a readable IDX/gzip file ({e})") from None


def _read_stream(stream: BinaryIO, path: Path, file_size: int | None) -> torch.Tensor:
    header = _read_header(stream, path)
    expected = header.payload_bytes
    if file_size is not None and file_size != header.header_bytes + expected:
        # Checked against the file size before any payload is allocated.
        raise DataError(
            f"{path}: header says {_dims(header)} = {expected} payload bytes, "
            f"the file holds {max(file_size - header.header_bytes, 0)}"
        )
    payload = _read_bounded(stream, expected, path, header)
    array = np.frombuffer(payload, dtype=header.dtype).reshape(header.dims)
    if header.dtype.byteorder == ">":
        array = array.astype(header.dtype.newbyteorder("="))
    return torch.from_numpy(array)


def _read_header(stream: BinaryIO, path: Path) -> IdxHeader:
    """Validate magic, dtype code and ndim; refuse sizes beyond MAX_IDX_BYTES."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: truncated IDX header (expected at least 4 bytes)")
    zero, code, ndim = struct.unpack(">HBB", magic)
    if zero != 0 or code not in IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (magic {magic.hex()}; expected 0000 then a dtype code "
            f"in {', '.join(f'{c:02x}' for c in IDX_DTYPES)} and the number of dimensions)"
        )
    if not 1 <= ndim <= MAX_NDIM:
        raise DataError(f"{path}: IDX header claims {ndim} dimensions (expected 1..{MAX_NDIM})")
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({ndim} dimension sizes expected)")
    header = IdxHeader(IDX_DTYPES[code], struct.unpack(f">{ndim}I", raw_dims))
    if header.payload_bytes > MAX_IDX_BYTES:
        raise DataError(
            f"{path}: IDX header claims {_dims(header)} = {header.payload_bytes} bytes "
            f"(more than the {MAX_IDX_BYTES} bytes this reader accepts)"
        )
    return header


def _read_bounded(stream: BinaryIO, expected: int, path: Path, header: IdxHeader) -> bytearray:
    """Read exactly ``expected`` bytes and make sure nothing follows.

    At most expected + 1 bytes are ever read, so a gzip bomb (a small file inflating to
    gigabytes) costs at most one byte more than the header allows. Memory grows with the
    data actually present, never with what a header claims.
    """
    buf = bytearray()
    while len(buf) <= expected:
        piece = stream.read(min(_CHUNK, expected + 1 - len(buf)))
        if not piece:
            break
        buf += piece
    if len(buf) != expected:
        more = "more than" if len(buf) > expected else f"only {len(buf)} of"
        raise DataError(
            f"{path}: IDX payload holds {more} the {expected} bytes its header "
            f"declares ({_dims(header)})"
        )
    return buf


def _dims(header: IdxHeader) -> str:
    return "x".join(str(d) for d in header.dims) + f" {header.dtype.name}"


# ------------------------------------------------------------------- MNIST family

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxDataset:
    """One IDX dataset: where torchvision puts it and how to name it."""

    name: str  # registry name, e.g. "fashion_mnist"
    folder: str  # torchvision's folder under the root, e.g. "FashionMNIST"
    classes: tuple[str, ...]
    homepage: str
    torchvision_class: str  # the torchvision dataset whose mirrors/resources we download


MNIST = IdxDataset(
    "mnist", "MNIST", tuple(str(i) for i in range(10)),
    "http://yann.lecun.com/exdb/mnist/", "MNIST",
)
FASHION_MNIST = IdxDataset(
    "fashion_mnist", "FashionMNIST",
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "https://github.com/zalandoresearch/fashion-mnist", "FashionMNIST",
)


def candidate_dirs(spec: IdxDataset, root: Path, path: Path | None = None) -> list[Path]:
    """Folders searched, in order: torchvision's ``<root>/MNIST/raw``, ``<root>/MNIST``, root."""
    if path is not None:
        return [path / spec.folder / "raw", path / spec.folder, path]
    return [root / spec.folder / "raw", root / spec.folder, root]


def find_files(folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder`` (unpacked preferred over ``.gz``), or None if any is missing."""
    found: dict[str, Path] = {}
    for names in SPLIT_FILES.values():
        for name in names:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
            else:
                return None
    return found


def load_idx_dataset(spec: IdxDataset, root: Path, download: bool,
                     path: Path | None = None) -> RawDataset:
    """Find (or download) and read the four IDX files of an MNIST-like dataset."""
    dirs = candidate_dirs(spec, root, path)
    for folder in dirs:
        files = find_files(folder)
        if files is not None:
            return _read_dataset(spec, folder, files)
    if not download:
        raise DataError(_missing_message(spec, dirs, root, "data.download is false"))
    target = dirs[0]
    try:
        download_idx(spec, target)
    except DownloadError as e:
        raise DataError(_missing_message(spec, dirs, root, f"download failed: {e}")) from None
    files = find_files(target)
    if files is None:  # pragma: no cover - download_idx fetched all four or raised
        raise DataError(_missing_message(spec, dirs, root, "download left files missing"))
    return _read_dataset(spec, target, files)


def download_idx(spec: IdxDataset, target: Path) -> None:
    """Fetch the four ``.gz`` files with torchvision's downloader (its mirrors and MD5 list).

    We use torchvision's URLs, checksums and ``download_url`` but not its dataset class:
    constructing ``MNIST(root, download=True)`` would also parse the files with the reader
    this module replaces. The MD5s apply to downloaded files only; local copies are never
    checked against them (repackaged ``.gz`` wrappers differ while their content is equal).
    """
    import torchvision.datasets as tvd

    tv = getattr(tvd, spec.torchvision_class)
    target.mkdir(parents=True, exist_ok=True)
    for filename, md5 in tv.resources:
        urls = [f"{mirror}{filename}" for mirror in tv.mirrors]
        fetch(urls, target / filename, md5)


def _missing_message(spec: IdxDataset, dirs: list[Path], root: Path, why: str) -> str:
    import torchvision.datasets as tvd

    mirrors = getattr(getattr(tvd, spec.torchvision_class), "mirrors", [spec.homepage])
    names = ", ".join(n for pair in SPLIT_FILES.values() for n in pair)
    return (
        f"{spec.folder} not found: looked for {names} (each optionally .gz) in "
        f"{', '.join(str(d) for d in dirs)}; {why}. Get the files from {mirrors[0]} "
        f"(or {spec.homepage}) and put them in {dirs[0]}, or set CONVLAB_DATA (or data.root) "
        f"to a folder holding {spec.folder}/raw/"
    )


def _read_dataset(spec: IdxDataset, folder: Path, files: dict[str, Path]) -> RawDataset:
    train = _read_split(spec, files, "train")
    test = _read_split(spec, files, "test")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"{files[SPLIT_FILES['test'][0]]}: test images are "
            f"{tuple(test.images.shape[2:])}, train images {tuple(train.images.shape[2:])}"
        )
    return RawDataset(spec.name, train, test, list(spec.classes), str(folder))


def _read_split(spec: IdxDataset, files: dict[str, Path], split: str) -> ImageSet:
    image_name, label_name = SPLIT_FILES[split]
    image_path, label_path = files[image_name], files[label_name]
    images = _expect(read_idx(image_path), image_path, 3, "(N, H, W) uint8 images")
    labels = _expect(read_idx(label_path), label_path, 1, "(N,) uint8 labels")
    if len(images) != len(labels):
        raise DataError(f"{label_path}: {len(labels)} labels for {len(images)} images")
    if len(labels) == 0:
        raise DataError(f"{label_path}: no examples")
    if int(labels.max()) >= len(spec.classes):
        raise DataError(
            f"{label_path}: label {int(labels.max())} out of range 0..{len(spec.classes) - 1}"
        )
    # (N, H, W) uint8 -> (N, 1, H, W) uint8; labels (N,) uint8 -> int64
    return ImageSet(images.unsqueeze(1), labels.long())


def _expect(t: torch.Tensor, path: Path, ndim: int, what: str) -> torch.Tensor:
    if t.dtype != torch.uint8 or t.dim() != ndim:
        raise DataError(
            f"{path}: expected {what}, got {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"
        )
    return t

