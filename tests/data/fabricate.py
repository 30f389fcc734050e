"""Tiny files in each dataset's real on-disk format, made in ``tmp_path`` (no network).

One writer per registered dataset (:data:`FABRICATORS`, keyed by registry name) returns
what it wrote: the config that reads it, the arrays to expect and a file whose truncation
must be refused. The registry-generated tests (``test_registry.py``) check that every
registered dataset has one.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import io
import pickle
import struct
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class Fabricated:
    """What a writer made: ``cfg`` (DataConfig keys) reads it back."""

    cfg: dict[str, Any]
    shape: tuple[int, int, int]  # (C, H, W) as read
    num_classes: int
    train_labels: np.ndarray  # (N,) in label order (0..K-1), in the order read
    test_labels: np.ndarray
    truncate: Path | None  # a file whose truncation the reader must refuse
    train_images: np.ndarray | None = None  # (N, C, H, W) when exact (lossless formats)
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- formats


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dataset(folder: Path, gz: bool = True, n_train: int = 12, n_test: int = 6,
                      seed: int = 0, names: dict[str, tuple[str, str]] | None = None,
                      classes: int = 10, first_label: int = 0, transpose: bool = False,
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Four IDX files of random 28x28 images (MNIST's names unless ``names``); returns the
    arrays as they should read back (``transpose``: stored transposed, as EMNIST)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(first_label, first_label + classes, n, dtype=np.uint8)
        stored = np.ascontiguousarray(images.transpose(0, 2, 1)) if transpose else images
        for name, array in zip((names or IDX_NAMES)[split], (stored, labels), strict=True):
            data = idx_bytes(array)
            (folder / (name + ".gz" if gz else name)).write_bytes(
                gzip.compress(data) if gz else data)
        out[split] = (images, labels)
    return out


def cifar_batch(n: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {"batch_label": "test", "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": [int(x) for x in rng.integers(0, 10, n)],
            "filenames": [f"img_{i}.png" for i in range(n)]}


def write_batches(folder: Path, n: int = 3, protocol: int = 2) -> list[dict[str, object]]:
    folder.mkdir(parents=True, exist_ok=True)
    batches = []
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        batch = cifar_batch(n, i)
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        batches.append(batch)
    return batches


def write_cifar100(folder: Path, n_train: int = 8, n_test: int = 4) -> dict[str, dict]:
    """``train`` and ``test`` pickles as the official ones: data, fine and coarse labels."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (name, n) in enumerate((("train", n_train), ("test", n_test))):
        rng = np.random.default_rng(i)
        batch = {"filenames": [f"{i}.png" for i in range(n)], "batch_label": name,
                 "fine_labels": [int(x) for x in rng.integers(0, 100, n)],
                 "coarse_labels": [int(x) for x in rng.integers(0, 20, n)],
                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        out[name] = batch
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [], "coarse_label_names":
                                                []}, protocol=2))
    return out


def svhn_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X as stored (32, 32, 3, N), y as stored (N, 1) in 1..10)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1), dtype=np.uint8)
    y[0, 0] = 10  # the digit 0, as SVHN stores it
    return x, y


def write_svhn(folder: Path, sizes: dict[str, int] | None = None) -> dict[str, tuple]:
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (split, n) in enumerate((sizes or {"train": 6, "test": 4}).items()):
        x, y = svhn_arrays(n, i)
        savemat(str(folder / f"{split}_32x32.mat"), {"X": x, "y": y})
        out[split] = (x, y)
    return out


def write_stl10(folder: Path, n_train: int = 4, n_test: int = 3) -> dict[str, tuple]:
    """``{train,test}_{X,y}.bin``: images column-major per channel, labels 1..10."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        rng = np.random.default_rng(i)
        images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W)
        labels = rng.integers(1, 11, n, dtype=np.uint8)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes(labels.tobytes())
        out[split] = (images, labels)
    return out


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def rgb(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def tree_files(classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 2,
               splits: tuple[str, ...] = ("train", "test"), size: int = 8) -> dict[str, bytes]:
    """``{split}/{class}/{i}.png`` with pixel value 10*class + i, so labels can be checked."""
    files = {}
    for split in splits:
        for c, name in enumerate(classes):
            for i in range(per_class):
                prefix = f"{split}/" if split else ""
                files[f"{prefix}{name}/{i}.png"] = png(rgb(10 * c + i, size))
    return files


def write_tree(dest: Path, files: dict[str, bytes], kind: str) -> Path:
    """The same files as a folder, a .zip, a .tar or a .tar.gz."""
    if kind == "folder":
        for name, data in files.items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(data)
        return dest
    suffix = {"zip": ".zip", "tar": ".tar", "tar.gz": ".tar.gz", "tgz": ".tgz"}[kind]
    path = dest.with_name(dest.name + suffix)
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(path, "w" if kind == "tar" else "w:gz") as tf:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def imagenette_files(folder: str = "imagenette2-160", per_class: int = 1,
                     size: tuple[int, int] = (20, 16)) -> dict[str, bytes]:
    """The published layout: ``<folder>/{train,val}/<wnid>/*.JPEG``, landscape images
    whose left and right quarters are black (cropped away by the centre square)."""
    from convlab.data.classes import IMAGENETTE_WNIDS

    w, h = size
    files = {}
    for split in ("train", "val"):
        for c, wnid in enumerate(IMAGENETTE_WNIDS):
            for i in range(per_class):
                array = np.zeros((h, w, 3), np.uint8)
                array[:, (w - h) // 2:(w + h) // 2] = 20 * c + 10
                files[f"{folder}/{split}/{wnid}/{wnid}_{i}.JPEG"] = jpeg(array)
    return files


# ------------------------------------------------------------- one per dataset


def _idx(name: str, folder: str) -> Callable[[Path], Fabricated]:
    def make(root: Path) -> Fabricated:
        arrays = write_idx_dataset(root / folder / "raw")
        return Fabricated({"dataset": name, "root": root, "download": False}, (1, 28, 28), 10,
                          arrays["train"][1], arrays["test"][1],
                          root / folder / "raw" / "train-images-idx3-ubyte.gz",
                          arrays["train"][0][:, None])
    return make


def emnist_names(split: str) -> dict[str, tuple[str, str]]:
    return {s: (f"emnist-{split}-{s}-images-idx3-ubyte", f"emnist-{split}-{s}-labels-idx1-ubyte")
            for s in ("train", "test")}


def fabricate_emnist(root: Path, split: str = "balanced") -> Fabricated:
    classes = {"balanced": 47, "letters": 26, "byclass": 62, "bymerge": 47, "digits": 10,
               "mnist": 10}[split]
    first = 1 if split == "letters" else 0
    arrays = write_idx_dataset(root / "EMNIST" / "raw", names=emnist_names(split),
                               classes=classes, first_label=first, transpose=True)
    return Fabricated({"dataset": "emnist", "split": split, "root": root, "download": False},
                      (1, 28, 28), classes, arrays["train"][1] - first,
                      arrays["test"][1] - first,
                      root / "EMNIST" / "raw" / f"emnist-{split}-test-labels-idx1-ubyte.gz",
                      arrays["train"][0][:, None])


def fabricate_cifar10(root: Path) -> Fabricated:
    batches = write_batches(root / "cifar-10-batches-py")
    train = np.concatenate([np.asarray(b["labels"]) for b in batches[:5]])
    images = np.concatenate([np.asarray(b["data"]) for b in batches[:5]]).reshape(-1, 3, 32, 32)
    return Fabricated({"dataset": "cifar10", "root": root, "download": False}, (3, 32, 32), 10,
                      train, np.asarray(batches[5]["labels"]),
                      root / "cifar-10-batches-py" / "data_batch_3", images)


def fabricate_cifar100(root: Path, label: str = "fine") -> Fabricated:
    b = write_cifar100(root / "cifar-100-python")
    key = f"{label}_labels"
    return Fabricated({"dataset": "cifar100", "label": label, "root": root, "download": False},
                      (3, 32, 32), 100 if label == "fine" else 20, np.asarray(b["train"][key]),
                      np.asarray(b["test"][key]), root / "cifar-100-python" / "test",
                      np.asarray(b["train"]["data"]).reshape(-1, 3, 32, 32))


def fabricate_svhn(root: Path) -> Fabricated:
    arrays = write_svhn(root / "svhn")
    (x, y), (_, y_test) = arrays["train"], arrays["test"]
    return Fabricated({"dataset": "svhn", "root": root, "download": False}, (3, 32, 32), 10,
                      y.reshape(-1) % 10, y_test.reshape(-1) % 10,
                      root / "svhn" / "train_32x32.mat", x.transpose(3, 2, 0, 1))


def fabricate_stl10(root: Path) -> Fabricated:
    arrays = write_stl10(root / "stl10_binary")
    return Fabricated({"dataset": "stl10", "root": root, "download": False}, (3, 96, 96), 10,
                      arrays["train"][1] - 1, arrays["test"][1] - 1,
                      root / "stl10_binary" / "test_X.bin", arrays["train"][0])


def fabricate_imagefolder(root: Path) -> Fabricated:
    root.mkdir(parents=True, exist_ok=True)
    path = write_tree(root / "pets", tree_files(("dog", "cat", "bird")), "zip")
    labels = np.repeat(np.arange(3), 2)
    return Fabricated({"dataset": "imagefolder", "path": path}, (3, 8, 8), 3, labels, labels,
                      path)


def fabricate_imagenette(root: Path) -> Fabricated:
    write_tree(root, imagenette_files(), "folder")
    labels = np.arange(10)
    some = root / "imagenette2-160" / "train" / "n03000684" / "n03000684_0.JPEG"
    return Fabricated({"dataset": "imagenette", "image_size": 8, "root": root,
                       "download": False}, (3, 8, 8), 10, labels, labels, some)


def fabricate_synthetic(root: Path) -> Fabricated:
    from convlab.data.synthetic import SyntheticConfig, make_synthetic

    spec = SyntheticConfig(shape=(3, 8, 8), classes=4, train_size=16, test_size=8, seed=1)
    raw = make_synthetic(spec)
    return Fabricated({"dataset": "synthetic", "synthetic": spec.model_dump()}, (3, 8, 8), 4,
                      raw.train.labels.numpy(), raw.test.labels.numpy(), None,
                      raw.train.images.numpy())


FABRICATORS: dict[str, Callable[[Path], Fabricated]] = {
    "mnist": _idx("mnist", "MNIST"),
    "fashion_mnist": _idx("fashion_mnist", "FashionMNIST"),
    "kmnist": _idx("kmnist", "KMNIST"),
    "emnist": fabricate_emnist,
    "cifar10": fabricate_cifar10,
    "cifar100": fabricate_cifar100,
    "svhn": fabricate_svhn,
    "stl10": fabricate_stl10,
    "imagefolder": fabricate_imagefolder,
    "imagenette": fabricate_imagenette,
    "synthetic": fabricate_synthetic,
}


# --------------------------------------------------------------- a local mirror


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@contextlib.contextmanager
def http_mirror(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (no network): torchvision's downloader speaks HTTP
    (its ``_urlretrieve`` needs ``response.length``, which ``file://`` lacks)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
