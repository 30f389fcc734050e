"""IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST): a validating reader and their loader.

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
from convlab.data.spec import Located
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


@dataclass(frozen=True)
class IdxDataset:
    """One IDX dataset: where torchvision puts it, its file names and how to read them."""

    name: str  # registry name, e.g. "fashion_mnist"
    folder: str  # torchvision's folder under the root, e.g. "FashionMNIST"
    classes: tuple[str, ...]
    homepage: str
    torchvision_class: str  # the torchvision dataset whose mirrors/resources we download
    prefix: str = ""  # EMNIST: "emnist-balanced-"
    split_stems: tuple[str, str] = ("train", "t10k")  # EMNIST: ("train", "test")
    transposed: bool = False  # EMNIST stores each image transposed (column-major)
    first_label: int = 0  # EMNIST letters: labels 1..26 in the files

    def split_files(self) -> dict[str, tuple[str, str]]:
        """``{"train": (images file, labels file), "test": (...)}``, without ``.gz``."""
        return {split: (f"{self.prefix}{stem}-images-idx3-ubyte",
                        f"{self.prefix}{stem}-labels-idx1-ubyte")
                for split, stem in zip(("train", "test"), self.split_stems, strict=True)}


def _spec(name: str, folder: str, homepage: str, tv: str) -> IdxDataset:
    from convlab.data.classes import DIGITS, FASHION_CLASSES, KMNIST_CLASSES

    classes = {"mnist": DIGITS, "fashion_mnist": FASHION_CLASSES, "kmnist": KMNIST_CLASSES}
    return IdxDataset(name, folder, classes[name], homepage, tv)


MNIST = _spec("mnist", "MNIST", "http://yann.lecun.com/exdb/mnist/", "MNIST")
FASHION_MNIST = _spec("fashion_mnist", "FashionMNIST",
                      "https://github.com/zalandoresearch/fashion-mnist", "FashionMNIST")
KMNIST = _spec("kmnist", "KMNIST", "http://codh.rois.ac.jp/kmnist/", "KMNIST")
IDX_SPECS = {s.name: s for s in (MNIST, FASHION_MNIST, KMNIST)}
MAX_EMNIST_MEMBER = 1 << 30  # the largest file of EMNIST's zip inflates to ~550 MB


def emnist_spec(split: str) -> IdxDataset:
    """EMNIST's files of one split (``balanced``, ``byclass``, ``letters``, ...)."""
    from convlab.data.classes import EMNIST_CLASSES

    return IdxDataset("emnist", "EMNIST", EMNIST_CLASSES[split],
                      "https://www.nist.gov/itl/products-and-services/emnist-dataset",
                      "EMNIST", prefix=f"emnist-{split}-", split_stems=("train", "test"),
                      transposed=True, first_label=1 if split == "letters" else 0)


def candidate_dirs(spec: IdxDataset, root: Path, path: Path | None = None) -> list[Path]:
    """Folders searched, in order: torchvision's ``<root>/MNIST/raw``, ``<root>/MNIST``, root."""
    base = path if path is not None else root
    return [base / spec.folder / "raw", base / spec.folder, base]


def locate_idx(spec: IdxDataset, root: Path, path: Path | None = None) -> Located:
    """Where the four files are looked for, and the first folder holding all of them."""
    dirs = candidate_dirs(spec, root, path)
    return Located(dirs, next((d for d in dirs if find_files(spec, d) is not None), None))


def find_files(spec: IdxDataset, folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder`` (unpacked preferred over ``.gz``), or None if any is missing."""
    found: dict[str, Path] = {}
    for names in spec.split_files().values():
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
        files = find_files(spec, folder)
        if files is not None:
            return _read_dataset(spec, folder, files)
    if not download:
        raise DataError(_missing_message(spec, dirs, root, "data.download is false"))
    target = dirs[0]
    try:
        if spec.name == "emnist":
            download_emnist(spec, target)
        else:
            download_idx(spec, target)
    except DownloadError as e:
        raise DataError(_missing_message(spec, dirs, root, f"download failed: {e}")) from None
    files = find_files(spec, target)
    if files is None:  # pragma: no cover - the downloads fetched all four or raised
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


def download_emnist(spec: IdxDataset, target: Path) -> None:
    """Fetch EMNIST's one zip (torchvision's URL and MD5; kept for the other splits) and
    take out the four ``gzip/<file>.gz`` of this split, names chosen by us, not the zip."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import check_integrity

    from convlab.data.archive import extract_members

    archive = target / "gzip.zip"
    if not check_integrity(str(archive), tvd.EMNIST.md5):
        fetch([tvd.EMNIST.url], archive, tvd.EMNIST.md5)
    names = [f"{n}.gz" for pair in spec.split_files().values() for n in pair]
    extract_members(archive, {f"gzip/{n}": target / n for n in names}, MAX_EMNIST_MEMBER)


def _missing_message(spec: IdxDataset, dirs: list[Path], root: Path, why: str) -> str:
    import torchvision.datasets as tvd

    tv = getattr(tvd, spec.torchvision_class)
    source = getattr(tv, "mirrors", None) or [getattr(tv, "url", spec.homepage)]
    names = ", ".join(n for pair in spec.split_files().values() for n in pair)
    return (
        f"{spec.folder} not found: looked for {names} (each optionally .gz) in "
        f"{', '.join(str(d) for d in dirs)}; {why}. Get the files from {source[0]} "
        f"(or {spec.homepage}) and put them in {dirs[0]}, or set CONVLAB_DATA (or data.root) "
        f"to a folder holding {spec.folder}/raw/"
    )


def _read_dataset(spec: IdxDataset, folder: Path, files: dict[str, Path]) -> RawDataset:
    train = _read_split(spec, files, "train")
    test = _read_split(spec, files, "test")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"{files[spec.split_files()['test'][0]]}: test images are "
            f"{tuple(test.images.shape[2:])}, train images {tuple(train.images.shape[2:])}"
        )
    return RawDataset(spec.name, train, test, list(spec.classes), str(folder))


def _read_split(spec: IdxDataset, files: dict[str, Path], split: str) -> ImageSet:
    image_name, label_name = spec.split_files()[split]
    image_path, label_path = files[image_name], files[label_name]
    images = _expect(read_idx(image_path), image_path, 3, "(N, H, W) uint8 images")
    labels = _expect(read_idx(label_path), label_path, 1, "(N,) uint8 labels")
    if len(images) != len(labels):
        raise DataError(f"{label_path}: {len(labels)} labels for {len(images)} images")
    if len(labels) == 0:
        raise DataError(f"{label_path}: no examples")
    low, high = spec.first_label, spec.first_label + len(spec.classes) - 1
    if int(labels.min()) < low or int(labels.max()) > high:
        bad = int(labels.min()) if int(labels.min()) < low else int(labels.max())
        raise DataError(f"{label_path}: label {bad} out of range {low}..{high}")
    if spec.transposed:  # (N, W, H) as stored -> (N, H, W): upright characters
        images = images.transpose(1, 2).contiguous()
    # (N, H, W) uint8 -> (N, 1, H, W) uint8; labels (N,) uint8 -> int64 from 0
    return ImageSet(images.unsqueeze(1), labels.long() - spec.first_label)


def _expect(t: torch.Tensor, path: Path, ndim: int, what: str) -> torch.Tensor:
    if t.dtype != torch.uint8 or t.dim() != ndim:
        raise DataError(
            f"{path}: expected {what}, got {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"
        )
    return t
