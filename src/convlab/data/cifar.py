"""CIFAR-10 and CIFAR-100: python pickles (read with a restricted unpickler), or images.

The official ``cifar-10-python.tar.gz`` holds pickles, and unpickling runs whatever code
a file names (``os.system`` through ``__reduce__``). torchvision's ``CIFAR10`` calls
plain ``pickle.load``. We use a ``pickle.Unpickler`` whose ``find_class`` hands out only
numpy's array/dtype rebuilding functions, wrapped so that they build plain numeric
arrays and nothing else; any other global is refused with a DataError naming the file.
Every other value in a batch (dict, list, bytes, str, int) needs no global at all.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convlab.data import ImageSet, RawDataset
from convlab.data.archive import (
    DownloadError,
    extract_folder,
    extract_members,
    fetch,
    find_or_download,
)
from convlab.data.classes import CIFAR10_CLASSES, CIFAR100_COARSE, CIFAR100_FINE
from convlab.errors import DataError

BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
ZIP_NAME = "cifar10-jpeg.zip"
FOLDER_NAME = "cifar10"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_FILES = ("train", "test")
MAX_PICKLE_BYTES = 256 << 20  # a real batch is 31 MB
_NUMERIC_CODES = frozenset(
    f"{kind}{size}" for kind, sizes in (("b", "1"), ("i", "1248"), ("u", "1248"), ("f", "248"))
    for size in sizes
)


# ------------------------------------------------------------- restricted unpickler


class _NDArrayMarker:
    """Stands in for ``numpy.ndarray`` in a pickle: accepted only as the first argument of
    ``_reconstruct``, never callable (``ndarray(shape)`` could allocate any size)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _NDArrayMarker:
        raise pickle.UnpicklingError("numpy.ndarray may only be rebuilt via _reconstruct")


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain ndarrays only: an empty array whose
    ``__setstate__`` (the BUILD opcode that follows) sets shape, dtype and data."""
    if subtype is not _NDArrayMarker:
        raise pickle.UnpicklingError("_reconstruct is allowed for numpy.ndarray only")
    return np.empty((0,), dtype=np.uint8)


def _dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` for numeric type codes (``'u1'``, ``'<f4'``, ...) only."""
    code = obj.decode("latin1") if isinstance(obj, bytes) else obj
    if not isinstance(code, str) or code.lstrip("<>|=") not in _NUMERIC_CODES:
        raise pickle.UnpicklingError(f"dtype {obj!r} is not a plain numeric type")
    return np.dtype(code)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's protocol-5 path: an array over in-band bytes of a checked numeric dtype."""
    if not isinstance(buf, bytes | bytearray) or not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("_frombuffer needs bytes and a dtype")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise pickle.UnpicklingError("_frombuffer needs a shape of non-negative ints")
    if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize != len(buf) or order not in "CF":
        raise pickle.UnpicklingError("_frombuffer: buffer size does not match the shape")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 writes bytes into protocol-2 pickles: latin-1 only
    (other codecs, e.g. zlib_codec, would let a file inflate itself)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed for latin-1 text only")
    return text.encode("latin1")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # numpy 1.x pickles
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2.x pickles
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDArrayMarker,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, bytes, str, numbers and numeric numpy arrays; nothing else.

    ``encoding="latin1"`` reads the Python 2 pickles of the official batches (as
    torchvision does); numpy decodes their array data from latin-1 itself.
    """

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.source}: refused to unpickle global {module}.{name} (a CIFAR batch "
                f"holds only arrays, lists and bytes; this file may be malicious)"
            ) from None


def safe_unpickle(data: bytes, source: str) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; any failure is a DataError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:  # UnpicklingError, EOFError, ValueError, MemoryError, ... on junk
        text = " ".join(str(e).split())[:150] or type(e).__name__
        raise DataError(f"{source}: not a valid CIFAR pickle ({text})") from None


def load_pickle(path: Path) -> Any:
    """Read a pickle file of bounded size with :func:`safe_unpickle`."""
    try:
        size = path.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise DataError(f"{path}: {size} bytes; a CIFAR batch is 31 MB (CIFAR-100's "
                            f"train file 155 MB) "
                            f"(limit {MAX_PICKLE_BYTES})")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    return safe_unpickle(data, str(path))


# -------------------------------------------------------------------- batches


def read_cifar_batch(path: Path, label_key: str = "labels",
                     num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file -> ((N, 3, 32, 32) uint8 images, (N,) int64 labels)."""
    batch = load_pickle(path)
    return parse_cifar_batch(batch, str(path), label_key, num_classes)


def parse_cifar_batch(batch: Any, source: str, label_key: str = "labels",
                      num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Check an unpickled batch: ``{"data": (N, 3072) uint8, label_key: N ints}``.

    CIFAR-10 batches label with ``labels`` (0..9); CIFAR-100 files with ``fine_labels``
    (0..99) and ``coarse_labels`` (0..19).
    """
    if not isinstance(batch, dict):
        raise DataError(f"{source}: expected a dict with 'data' and '{label_key}', "
                        f"got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        got = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{source}: expected 'data' as an (N, 3072) uint8 array, got {got}")
    labels_arr = _labels_array(labels, source, label_key)
    if labels_arr.shape != (data.shape[0],):
        raise DataError(f"{source}: {labels_arr.size} labels for {data.shape[0]} images")
    if labels_arr.size and (labels_arr.min() < 0 or labels_arr.max() >= num_classes):
        raise DataError(f"{source}: labels outside 0..{num_classes - 1}")
    # rows are 1024 red, 1024 green, 1024 blue values: (N, 3072) -> (N, 3, 32, 32)
    images = np.array(data.reshape(-1, 3, 32, 32), dtype=np.uint8, copy=True)
    return torch.from_numpy(images), torch.from_numpy(labels_arr.astype(np.int64))


def _labels_array(labels: Any, source: str, key: str = "labels") -> np.ndarray:
    if isinstance(labels, list) and all(type(x) is int for x in labels):
        return np.array(labels, dtype=np.int64) if labels else np.zeros(0, np.int64)
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" and labels.ndim == 1:
        return labels
    raise DataError(f"{source}: expected '{key}' as a list of ints")


def read_batches_folder(folder: Path) -> RawDataset:
    """``data_batch_1..5`` and ``test_batch`` of a ``cifar-10-batches-py`` folder."""
    parts = [read_cifar_batch(folder / name) for name in TRAIN_BATCHES]
    train_images = torch.cat([images for images, _ in parts])  # (50000, 3, 32, 32)
    train_labels = torch.cat([labels for _, labels in parts])  # (50000,)
    test_images, test_labels = read_cifar_batch(folder / TEST_BATCH)
    return RawDataset("cifar10", ImageSet(train_images, train_labels),
                      ImageSet(test_images, test_labels), list(CIFAR10_CLASSES), str(folder))


# ---------------------------------------------------------------------- sources


def load_cifar10(root: Path, path: Path | None = None, download: bool = True,
                 skip_bad_images: bool = False) -> RawDataset:
    """CIFAR-10 from ``path``, else ``<root>/cifar-10-batches-py``, else
    ``<root>/cifar10-jpeg.zip``, else ``<root>/cifar10/``, else a download."""
    if path is not None:
        return _load_from(path, skip_bad_images)
    candidates = cifar10_candidates(root)
    for candidate in candidates:
        if candidate.exists():
            return _load_from(candidate, skip_bad_images)
    if not download:
        raise DataError(_missing_message(candidates, root, "data.download is false"))
    try:
        folder = download_cifar10(root)
    except DownloadError as e:
        raise DataError(_missing_message(candidates, root, f"download failed: {e}")) from None
    return read_batches_folder(folder)


def download_cifar10(root: Path) -> Path:
    """Fetch ``cifar-10-python.tar.gz`` with torchvision's downloader (its URL and MD5), then
    extract only ``cifar-10-batches-py/`` with name checks (never ``CIFAR10(download=True)``:
    it extracts with an unfiltered ``extractall`` and unpickles with plain ``pickle``)."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import check_integrity

    tarball = root / tvd.CIFAR10.filename
    if not check_integrity(str(tarball), tvd.CIFAR10.tgz_md5):  # else reuse a past download
        fetch([tvd.CIFAR10.url], tarball, tvd.CIFAR10.tgz_md5)
    try:
        return extract_folder(tarball, BATCHES_FOLDER, root)
    except OSError as e:
        raise DataError(f"{tarball}: cannot extract into {root} ({e.strerror or e})") from None


def cifar10_candidates(root: Path) -> list[Path]:
    """Where CIFAR-10 is looked for under a root, in order."""
    return [root / BATCHES_FOLDER, root / ZIP_NAME, root / FOLDER_NAME]


def load_cifar100(root: Path, path: Path | None = None, download: bool = True,
                  label: str = "fine") -> RawDataset:
    """CIFAR-100 from ``path`` (the ``cifar-100-python`` folder or one holding it), else
    ``<root>/cifar-100-python``, else a download; ``label`` picks fine or coarse labels."""
    folder = find_or_download(path, root, CIFAR100_FOLDER, CIFAR100_FILES[0], download,
                              download_cifar100, lambda f, why: _missing_100(f, root, why),
                              holds="train file")
    classes = CIFAR100_FINE if label == "fine" else CIFAR100_COARSE
    splits = [read_cifar_batch(folder / name, f"{label}_labels", len(classes))
              for name in CIFAR100_FILES]
    (train_x, train_y), (test_x, test_y) = splits
    return RawDataset("cifar100", ImageSet(train_x, train_y), ImageSet(test_x, test_y),
                      list(classes), str(folder))


def download_cifar100(root: Path) -> Path:
    """Fetch ``cifar-100-python.tar.gz`` with torchvision's downloader (its URL and MD5) and
    take out its train and test pickles (the train file, 155 MB, streamed to disk)."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import check_integrity

    tarball = root / tvd.CIFAR100.filename
    if not check_integrity(str(tarball), tvd.CIFAR100.tgz_md5):
        fetch([tvd.CIFAR100.url], tarball, tvd.CIFAR100.tgz_md5)
    folder = root / CIFAR100_FOLDER
    extract_members(tarball, {f"{CIFAR100_FOLDER}/{n}": folder / n for n in CIFAR100_FILES},
                    MAX_PICKLE_BYTES)
    return folder


def _missing_100(folder: Path, root: Path, why: str) -> str:
    import torchvision.datasets as tvd

    return (f"CIFAR-100 not found: looked for {folder / 'train'} and {folder / 'test'}; "
            f"{why}. Get {tvd.CIFAR100.url} and unpack it in {root}, or set CONVLAB_DATA "
            f"(or data.root) to a folder holding {CIFAR100_FOLDER}/")


def _load_from(path: Path, skip_bad_images: bool) -> RawDataset:
    """A batches folder (or a folder holding one), else an image folder/zip/tar."""
    if not path.exists():
        raise DataError(f"{path}: not found (expected {BATCHES_FOLDER}/, a folder or a .zip "
                        f"of train/<class>/ and test/<class>/ images)")
    if path.is_dir():
        for folder in (path, path / BATCHES_FOLDER):
            if (folder / TRAIN_BATCHES[0]).is_file():
                return read_batches_folder(folder)
    from convlab.data.imagefolder import load_imagefolder

    raw = load_imagefolder(path, name="cifar10", classes=CIFAR10_CLASSES,
                           skip_bad_images=skip_bad_images)
    if raw.shape != (3, 32, 32):
        raise DataError(f"{path}: CIFAR-10 images are 3x32x32, these are "
                        f"{'x'.join(map(str, raw.shape))}")
    return raw


def _missing_message(candidates: list[Path], root: Path, why: str) -> str:
    import torchvision.datasets as tvd

    return (
        f"CIFAR-10 not found: looked for {', '.join(str(c) for c in candidates)}; {why}. "
        f"Get {tvd.CIFAR10.url} and unpack it in {root} (or put {ZIP_NAME} there), "
        f"or set CONVLAB_DATA (or data.root) to a folder holding one of them"
    )
