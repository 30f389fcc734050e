"""Dataset sources: every source and layout on tiny files made here, downloads without a
network (torchvision's real downloader pointed at ``file://`` mirrors), and the real
datasets when ``CONVLAB_TEST_DATA`` points at them."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image

from convlab.config import DataConfig, SyntheticConfig
from convlab.data import imagefolder
from convlab.data.cifar import CIFAR10_CLASSES, read_cifar_batch
from convlab.data.idx import FASHION_MNIST, MNIST, IdxDataset, read_idx
from convlab.data.imagefolder import load_imagefolder, stratified_split
from convlab.data.sources import default_root, load_raw
from convlab.data.synthetic import make_synthetic
from convlab.errors import DataError
from data.fabricate import (
    http_mirror,
    idx_bytes,
    png,
    rgb,
    tree_files,
    write_batches,
    write_idx_dataset,
    write_tree,
)

_USER_CACHE_ENV = {k: os.environ.get(k) for k in ("CONVLAB_CACHE", "XDG_CACHE_HOME", "HOME")}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's data or cache folders, or writes into them."""
    monkeypatch.setenv("CONVLAB_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.delenv("CONVLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


# ---------------------------------------------------------------------- helpers


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ registry, root


def test_default_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root(DataConfig()) == tmp_path / "home" / ".cache" / "convlab" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root(DataConfig()) == tmp_path / "xdg" / "convlab" / "data"
    monkeypatch.setenv("CONVLAB_DATA", str(tmp_path / "env"))
    assert default_root(DataConfig()) == tmp_path / "env"
    assert default_root(DataConfig(root=tmp_path / "cfg")) == tmp_path / "cfg"


# --------------------------------------------------------------------- mnist family


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "unpacked"])
@pytest.mark.parametrize("layout", ["MNIST/raw", "MNIST", "."])
def test_mnist_layouts(tmp_path: Path, layout: str, gz: bool) -> None:
    folder = (tmp_path / "data" / layout).resolve()
    arrays = write_idx_dataset(folder, gz=gz)
    raw = load_raw(DataConfig(dataset="mnist", root=tmp_path / "data", download=False))
    assert raw.name == "mnist" and raw.classes == [str(i) for i in range(10)]
    assert Path(raw.location) == folder
    for split, images_labels in (("train", raw.train), ("test", raw.test)):
        images, labels = arrays[split]
        assert images_labels.images.dtype == torch.uint8
        assert images_labels.labels.dtype == torch.int64
        assert images_labels.images.shape == (len(images), 1, 28, 28)
        assert torch.equal(images_labels.images[:, 0], torch.from_numpy(images))
        assert torch.equal(images_labels.labels, torch.from_numpy(labels).long())
    assert raw.shape == (1, 28, 28)


def test_fashion_mnist_folder_and_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_dataset(tmp_path / "FashionMNIST" / "raw")
    monkeypatch.setenv("CONVLAB_DATA", str(tmp_path))
    raw = load_raw(DataConfig(dataset="fashion_mnist", download=False))
    assert raw.classes[0] == "T-shirt/top" and raw.classes[-1] == "Ankle boot"
    assert len(raw.classes) == 10 and raw.train.images.shape == (12, 1, 28, 28)
    with pytest.raises(DataError, match="MNIST not found"):  # Fashion files are not MNIST's
        load_raw(DataConfig(dataset="mnist", download=False))


def test_mnist_prefers_torchvision_layout_and_unpacked(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "MNIST", seed=1)
    arrays = write_idx_dataset(tmp_path / "MNIST" / "raw", gz=False, seed=2)
    write_idx_dataset(tmp_path / "MNIST" / "raw", gz=True, seed=3)
    raw = load_raw(DataConfig(dataset="mnist", root=tmp_path, download=False))
    assert torch.equal(raw.train.labels, torch.from_numpy(arrays["train"][1]).long())


def test_mnist_path_setting(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "elsewhere")
    raw = load_raw(DataConfig(dataset="mnist", path=tmp_path / "elsewhere", download=False))
    assert Path(raw.location) == tmp_path / "elsewhere"


def test_mnist_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_raw(DataConfig(dataset="mnist", root=tmp_path, download=False))
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message and "train-images-idx3-ubyte" in message
    assert "data.download is false" in message and "CONVLAB_DATA" in message


@pytest.mark.parametrize("spec", [MNIST, FASHION_MNIST], ids=lambda s: s.name)
def test_download_offline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                spec: IdxDataset) -> None:
    tv = getattr(tvd, spec.torchvision_class)
    monkeypatch.setattr(tv, "mirrors", [(tmp_path / "no-such-mirror").as_uri() + "/",
                                        "http://127.0.0.1:9/"])
    with pytest.raises(DataError) as err:
        load_raw(DataConfig(dataset=spec.name, root=tmp_path / "root"))
    message = str(err.value)
    assert "\n" not in message and "download failed" in message
    assert str(tmp_path / "root" / spec.folder / "raw") in message  # where it looked
    assert "no-such-mirror" in message and "CONVLAB_DATA" in message  # how to get files
    raw_dir = tmp_path / "root" / spec.folder / "raw"
    assert not any(raw_dir.iterdir())  # no partial file, no leftover temp folder


@pytest.mark.parametrize("spec", [MNIST, FASHION_MNIST], ids=lambda s: s.name)
def test_download_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      spec: IdxDataset) -> None:
    """The real download path: torchvision's download_url fetching from a local HTTP
    mirror (first mirror dead, second good), its MD5 check, then our reader."""
    mirror = tmp_path / "mirror"
    arrays = write_idx_dataset(mirror)
    tv = getattr(tvd, spec.torchvision_class)
    monkeypatch.setattr(tv, "resources", [(f.name, md5(f)) for f in sorted(mirror.iterdir())])
    with http_mirror(mirror) as url:
        monkeypatch.setattr(tv, "mirrors", [(tmp_path / "dead").as_uri() + "/", url])
        raw = load_raw(DataConfig(dataset=spec.name, root=tmp_path / "root"))
    raw_dir = tmp_path / "root" / spec.folder / "raw"
    assert Path(raw.location) == raw_dir
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(p.name for p in mirror.iterdir())
    assert torch.equal(raw.test.labels, torch.from_numpy(arrays["test"][1]).long())
    assert raw.classes == list(spec.classes)


def test_download_md5_mismatch_is_refused(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    write_idx_dataset(mirror)
    monkeypatch.setattr(tvd.MNIST, "resources",
                        [(f.name, "0" * 32) for f in sorted(mirror.iterdir())])
    with http_mirror(mirror) as url, pytest.raises(DataError, match="download failed.*corrupt"):
        monkeypatch.setattr(tvd.MNIST, "mirrors", [url])
        load_raw(DataConfig(dataset="mnist", root=tmp_path / "root"))
    assert not any((tmp_path / "root" / "MNIST" / "raw").iterdir())


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, ">i2", ">i4", ">f4", ">f8"])
def test_read_idx_dtypes(tmp_path: Path, dtype: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if np.dtype(dtype) == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x.idx").write_bytes(idx_bytes(array))
    t = read_idx(tmp_path / "x.idx")
    assert t.shape == (2, 3, 4)
    assert np.array_equal(t.numpy(), array.astype(array.dtype.newbyteorder("=")))


# -------------------------------------------------------------------------- cifar10


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches(tmp_path: Path, protocol: int) -> None:
    batches = write_batches(tmp_path / "cifar-10-batches-py", protocol=protocol)
    raw = load_raw(DataConfig(dataset="cifar10", root=tmp_path, download=False))
    assert raw.classes == list(CIFAR10_CLASSES) and raw.classes == sorted(raw.classes)
    assert raw.train.images.shape == (15, 3, 32, 32) and raw.test.images.shape == (3, 3, 32, 32)
    assert raw.train.images.dtype == torch.uint8 and raw.train.labels.dtype == torch.int64
    assert Path(raw.location) == tmp_path / "cifar-10-batches-py"
    first = np.asarray(batches[0]["data"])[0].reshape(3, 32, 32)  # 1024 R, 1024 G, 1024 B
    assert np.array_equal(raw.train.images[0].numpy(), first)
    assert raw.test.labels.tolist() == batches[-1]["labels"]


def test_cifar_batch_with_bytes_keys(tmp_path: Path) -> None:
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 9]}
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=2))
    images, labels = read_cifar_batch(tmp_path / "b")
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [3, 9]


def cifar_jpeg_tree(per_class: int = 1) -> dict[str, bytes]:
    files = {}
    for split in ("train", "test"):
        for c, name in enumerate(CIFAR10_CLASSES):
            for i in range(per_class):
                buf = io.BytesIO()
                Image.fromarray(rgb(20 * c, 32)).save(buf, "JPEG", quality=95)
                files[f"{split}/{name}/{i:04d}.jpg"] = buf.getvalue()
    return files


@pytest.mark.parametrize("where", ["zip", "folder", "path_zip", "path_tar"])
def test_cifar_image_forms(tmp_path: Path, where: str) -> None:
    files = cifar_jpeg_tree()
    if where == "zip":
        write_tree(tmp_path / "cifar10-jpeg", files, "zip")
        cfg = DataConfig(dataset="cifar10", root=tmp_path, download=False)
        expected = tmp_path / "cifar10-jpeg.zip"
    elif where == "folder":
        expected = write_tree(tmp_path / "cifar10", files, "folder")
        cfg = DataConfig(dataset="cifar10", root=tmp_path, download=False)
    else:
        expected = write_tree(tmp_path / "mine", files, "zip" if where == "path_zip" else "tar")
        cfg = DataConfig(dataset="cifar10", path=expected, download=False)
    raw = load_raw(cfg)
    assert Path(raw.location) == expected and raw.shape == (3, 32, 32)
    assert raw.classes == list(CIFAR10_CLASSES)
    assert raw.train.labels.tolist() == list(range(10)) == raw.test.labels.tolist()
    means = raw.train.images.float().mean(dim=(1, 2, 3))  # value 20 * label, up to JPEG error
    assert torch.allclose(means, 20 * raw.train.labels.float(), atol=2)


def test_cifar_lookup_order(tmp_path: Path) -> None:
    write_tree(tmp_path / "cifar10-jpeg", cifar_jpeg_tree(), "zip")
    write_batches(tmp_path / "cifar-10-batches-py")
    raw = load_raw(DataConfig(dataset="cifar10", root=tmp_path, download=False))
    assert raw.location.endswith("cifar-10-batches-py")


def test_cifar_image_folder_must_have_cifar_classes(tmp_path: Path) -> None:
    files = {k: v for k, v in cifar_jpeg_tree().items() if "/truck/" not in k}
    files["train/lorry/0.jpg"] = files["train/cat/0000.jpg"]
    path = write_tree(tmp_path / "c", files, "zip")
    with pytest.raises(DataError, match=r"missing \['truck'\], unexpected \['lorry'\]"):
        load_raw(DataConfig(dataset="cifar10", path=path, download=False))


def test_cifar_image_folder_must_be_32x32(tmp_path: Path) -> None:
    files = {k: png(rgb(0, 8)) for k in cifar_jpeg_tree()}
    path = write_tree(tmp_path / "c", {k.replace(".jpg", ".png"): v for k, v in files.items()},
                      "folder")
    with pytest.raises(DataError, match="3x32x32"):
        load_raw(DataConfig(dataset="cifar10", path=path, download=False))


def test_cifar_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as err:
        load_raw(DataConfig(dataset="cifar10", root=tmp_path, download=False))
    for looked in ("cifar-10-batches-py", "cifar10-jpeg.zip", "cifar10"):
        assert str(tmp_path / looked) in str(err.value)
    monkeypatch.setattr(tvd.CIFAR10, "url", (tmp_path / "gone.tar.gz").as_uri())
    with pytest.raises(DataError, match="download failed.*gone.tar.gz.*CONVLAB_DATA"):
        load_raw(DataConfig(dataset="cifar10", root=tmp_path / "root"))
    assert not list((tmp_path / "root").iterdir())  # no partial tarball, no temp folder


def test_cifar_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's downloader fetches the tarball (local HTTP, MD5 checked); we extract
    only cifar-10-batches-py/ with name checks and read it with the restricted unpickler."""
    batches = write_batches(tmp_path / "src" / "cifar-10-batches-py")
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", md5(tarball))
    root = tmp_path / "root"
    with http_mirror(tmp_path) as url:
        monkeypatch.setattr(tvd.CIFAR10, "url", url + tarball.name)
        raw = load_raw(DataConfig(dataset="cifar10", root=root))
    assert Path(raw.location) == root / "cifar-10-batches-py"
    assert raw.train.labels[:3].tolist() == batches[0]["labels"]
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py",
                                                       "cifar-10-python.tar.gz"]
    shutil.rmtree(root / "cifar-10-batches-py")  # the server is gone: the tarball is reused
    assert len(load_raw(DataConfig(dataset="cifar10", root=root)).test) == 3


# ---------------------------------------------------------------------- imagefolder


@pytest.mark.parametrize("kind", ["folder", "zip", "tar", "tar.gz"])
def test_imagefolder_train_test(tmp_path: Path, kind: str) -> None:
    path = write_tree(tmp_path / "tree", tree_files(("dog", "cat", "bird")), kind)
    raw = load_raw(DataConfig(dataset="imagefolder", path=path))
    assert raw.classes == ["bird", "cat", "dog"]  # sorted, as torchvision's ImageFolder
    assert raw.train.images.shape == (6, 3, 8, 8) and raw.train.images.dtype == torch.uint8
    assert raw.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # file "dog/1.png" holds 10 * (index of dog when written: 0) + 1
    written = {"dog": 0, "cat": 1, "bird": 2}
    values = raw.train.images[:, 0, 0, 0].tolist()
    expected = [10 * written[c] + i for c in raw.classes for i in range(2)]
    assert values == expected and raw.location == str(path)


def test_imagefolder_flat_tree_is_split_stratified(tmp_path: Path) -> None:
    path = write_tree(tmp_path / "flat", tree_files(("a", "b"), per_class=10, splits=("",)),
                      "zip")
    cfg = DataConfig(dataset="imagefolder", path=path, test_fraction=0.3, split_seed=1)
    raw = load_raw(cfg)
    assert raw.test.labels.bincount().tolist() == [3, 3]
    assert raw.train.labels.bincount().tolist() == [7, 7]
    again = load_raw(cfg)
    assert torch.equal(raw.test.images, again.test.images)
    other = load_raw(cfg.model_copy(update={"split_seed": 2}))
    assert not torch.equal(raw.test.images, other.test.images)
    values = raw.train.images[:, 0, 0, 0].tolist() + raw.test.images[:, 0, 0, 0].tolist()
    assert sorted(values) == sorted(10 * c + i for c in range(2) for i in range(10))


def test_imagefolder_flat_tree_needs_fraction(tmp_path: Path) -> None:
    path = write_tree(tmp_path / "flat", tree_files(splits=("",)), "folder")
    with pytest.raises(DataError, match="test_fraction"):
        load_raw(DataConfig(dataset="imagefolder", path=path))


def test_imagefolder_split_needs_two_images_per_class(tmp_path: Path) -> None:
    path = write_tree(tmp_path / "f", tree_files(per_class=1, splits=("",)), "folder")
    with pytest.raises(DataError, match="too few images"):
        load_raw(DataConfig(dataset="imagefolder", path=path, test_fraction=0.5))


def test_imagefolder_other_top_folders_are_not_read(tmp_path: Path) -> None:
    files = tree_files()
    files["val/cat/0.png"] = b"junk: an error if it were decoded"
    raw = load_raw(DataConfig(dataset="imagefolder", path=write_tree(tmp_path / "v", files,
                                                                     "folder")))
    assert len(raw.train) == len(raw.test) == 4


def test_stratified_split_keeps_each_class_in_both() -> None:
    labels = np.array([0] * 2 + [1] * 5 + [2] * 1)
    train, test = stratified_split(labels, 0.01, 0)
    assert sorted(set(labels[test])) == [0, 1] and set(labels[train]) == {0, 1, 2}
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(8))


def test_imagefolder_wrapping_folder_and_ignored_files(tmp_path: Path) -> None:
    files = {f"mydata/{k}": v for k, v in tree_files().items()}
    files["mydata/README.txt"] = b"not an image, ignored"
    files["mydata/train/cat/.hidden.png"] = b"hidden, ignored"
    files["__MACOSX/mydata/train/cat/._0.png"] = b"resource fork, ignored"
    raw = load_raw(DataConfig(dataset="imagefolder", path=write_tree(tmp_path / "z", files, "zip")))
    assert raw.classes == ["cat", "dog"] and len(raw.train) == 4


def test_imagefolder_relative_path_under_root(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(tmp_path / "pets", tree_files(), "folder")
    monkeypatch.setenv("CONVLAB_DATA", str(tmp_path))
    raw = load_raw(DataConfig(dataset="imagefolder", path=Path("pets")))
    assert raw.location == str(tmp_path / "pets")


def test_imagefolder_grey_and_colour(tmp_path: Path) -> None:
    grey = {k: png(np.full((8, 8), 7 + i, np.uint8)) for i, k in enumerate(tree_files())}
    raw = load_raw(DataConfig(dataset="imagefolder", path=write_tree(tmp_path / "g", grey,
                                                                     "folder")))
    assert raw.shape == (1, 8, 8)
    mixed = dict(grey)
    mixed["train/cat/0.png"] = png(rgb(200))
    raw = load_raw(DataConfig(dataset="imagefolder", path=write_tree(tmp_path / "m", mixed,
                                                                     "folder")))
    assert raw.shape == (3, 8, 8)
    assert raw.train.images[0, :, 0, 0].tolist() == [200, 200, 200]
    assert raw.train.images[1, :, 0, 0].tolist() == [8, 8, 8]  # grey repeated to RGB


def test_imagefolder_sizes_must_agree_unless_resize(tmp_path: Path) -> None:
    files = tree_files()
    files["train/cat/0.png"] = png(rgb(1, size=12))
    path = write_tree(tmp_path / "s", files, "folder")
    with pytest.raises(DataError, match=r"12x12.*data\.resize"):
        load_raw(DataConfig(dataset="imagefolder", path=path))
    raw = load_raw(DataConfig(dataset="imagefolder", path=path, resize=6))
    assert raw.shape == (3, 6, 6)


def test_imagefolder_formats(tmp_path: Path) -> None:
    files = {}
    for i, fmt in enumerate(["PNG", "JPEG", "BMP", "GIF", "WEBP"]):
        buf = io.BytesIO()
        Image.fromarray(rgb(100, 8)).save(buf, fmt)
        suffix = {"JPEG": "jpg"}.get(fmt, fmt.lower())
        files[f"train/a/{i}.{suffix}"] = files[f"test/b/{i}.{suffix}"] = buf.getvalue()
        files[f"train/b/{i}.{suffix}"] = buf.getvalue()
    raw = load_raw(DataConfig(dataset="imagefolder", path=write_tree(tmp_path / "f", files,
                                                                     "folder")))
    assert len(raw.train) == 10 and raw.shape == (3, 8, 8)
    assert (raw.train.images.float() - 100).abs().max() <= 8  # lossy formats close enough


def test_imagefolder_bad_image_named_or_skipped(tmp_path: Path) -> None:
    files = tree_files()
    files["train/dog/broken.png"] = files["train/dog/0.png"][:40]
    path = write_tree(tmp_path / "b", files, "zip")
    with pytest.raises(DataError, match=r"train/dog/broken\.png.*skip_bad_images"):
        load_raw(DataConfig(dataset="imagefolder", path=path))
    with pytest.warns(UserWarning, match=r"skipped train/dog/broken\.png"):
        raw = load_raw(DataConfig(dataset="imagefolder", path=path, skip_bad_images=True))
    assert len(raw.train) == 4
    with pytest.warns(UserWarning, match="broken"):  # again from the cache: still reported
        load_raw(DataConfig(dataset="imagefolder", path=path, skip_bad_images=True))


@pytest.mark.parametrize(("files", "match"), [
    ({"train/a/0.png": b"", "train/b/0.png": b""}, "no test/ folder"),
    ({"train/a/0.png": b"", "train/b/0.png": b"", "test/c/0.png": b""},
     "test/c/ has no matching train/c/"),
    ({"train/a/0.png": b"", "test/a/0.png": b""}, "expected at least 2"),
    ({"train/0.png": b"", "train/b/0.png": b"", "test/b/1.png": b""}, "not inside a class"),
    ({"notes.txt": b""}, "no images"),
])
def test_imagefolder_layout_errors(tmp_path: Path, files: dict[str, bytes], match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_raw(DataConfig(dataset="imagefolder", path=write_tree(tmp_path / "t", files,
                                                                   "folder")))


def test_imagefolder_needs_a_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.path"):
        load_raw(DataConfig(dataset="imagefolder"))
    with pytest.raises(DataError, match="not found"):
        load_raw(DataConfig(dataset="imagefolder", path=tmp_path / "nothing"))


# -------------------------------------------------------------------- decode cache


def test_cache_is_used_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tree(tmp_path / "c", tree_files(), "zip")
    first = load_imagefolder(path)
    assert len(list((tmp_path / "decoded-cache").glob("*.npz"))) == 1
    assert not list((tmp_path / "decoded-cache").glob("*.tmp"))

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(imagefolder, "decode_many", no_decoding)
    cached = load_imagefolder(path)
    assert torch.equal(first.train.images, cached.train.images) and cached.classes == first.classes
    files = tree_files()
    files["train/cat/2.png"] = png(rgb(3))
    write_tree(tmp_path / "c", files, "zip")  # changed archive: new size and mtime
    with pytest.raises(AssertionError, match="decoded again"):
        load_imagefolder(path)


def test_cache_key_depends_on_resize(tmp_path: Path) -> None:
    path = write_tree(tmp_path / "c", tree_files(), "folder")
    assert load_imagefolder(path, resize=4).shape == (3, 4, 4)
    assert load_imagefolder(path).shape == (3, 8, 8)
    assert len(list((tmp_path / "decoded-cache").glob("*.npz"))) == 2


def test_cache_folder_not_writable_is_skipped(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("CONVLAB_CACHE", str(tmp_path / "a-file" / "cache"))
    path = write_tree(tmp_path / "c", tree_files(), "zip")
    assert len(load_imagefolder(path).train) == 4


def test_damaged_or_pickled_cache_is_a_miss(tmp_path: Path) -> None:
    path = write_tree(tmp_path / "c", tree_files(), "zip")
    load_imagefolder(path)
    (cache_file,) = (tmp_path / "decoded-cache").glob("*.npz")
    np.savez(cache_file, meta=np.array([{"evil": 1}], dtype=object))  # needs pickle to load
    assert len(load_imagefolder(path).train) == 4
    cache_file.write_bytes(b"garbage")
    assert len(load_imagefolder(path).train) == 4


def test_pool_decoding_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = tree_files(per_class=6)
    files["train/cat/bad.png"] = b"junk"
    datas = list(files.values())
    serial = imagefolder.decode_many(datas, workers=1)
    monkeypatch.setattr(imagefolder, "POOL_MIN_IMAGES", 1)
    monkeypatch.setattr(imagefolder, "CHUNK", 5)
    pooled = imagefolder.decode_many(datas, workers=2)
    assert len(pooled) == len(serial) == len(datas)
    for a, b in zip(serial, pooled, strict=True):
        assert (a == b) if isinstance(a, str) else np.array_equal(a, b)
    assert not imagefolder._POOL_INPUTS


# ------------------------------------------------------------------------ synthetic


def test_synthetic_shapes_and_determinism() -> None:
    spec = SyntheticConfig(shape=(3, 16, 12), classes=5, train_size=100, test_size=40, seed=3)
    raw = load_raw(DataConfig(dataset="synthetic", synthetic=spec))
    assert raw.train.images.shape == (100, 3, 16, 12) and raw.test.images.shape == (40, 3, 16, 12)
    assert raw.train.images.dtype == torch.uint8 and raw.train.labels.dtype == torch.int64
    assert raw.classes == [f"class_{i}" for i in range(5)]
    assert raw.train.labels.bincount().tolist() == [20] * 5
    again = make_synthetic(spec)
    assert torch.equal(raw.train.images, again.train.images)
    assert torch.equal(raw.test.labels, again.test.labels)
    other = make_synthetic(spec.model_copy(update={"seed": 4}))
    assert not torch.equal(raw.train.images, other.train.images)


def test_synthetic_is_fast_and_tiny_shapes_work() -> None:
    start = time.perf_counter()
    make_synthetic(SyntheticConfig())
    assert time.perf_counter() - start < 0.5
    raw = make_synthetic(SyntheticConfig(shape=(1, 1, 1), classes=2, train_size=4, test_size=2))
    assert raw.train.images.shape == (4, 1, 1, 1)


def test_synthetic_is_learnable_in_one_epoch() -> None:
    raw = make_synthetic(SyntheticConfig())  # 1024 train, 256 test, 1x28x28, 10 classes
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(8 * 7 * 7, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return (x.float() - 128) / 64

    for i in range(0, len(raw.train), 32):
        loss = torch.nn.functional.cross_entropy(
            model(norm(raw.train.images[i:i + 32])), raw.train.labels[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = (model(norm(raw.test.images)).argmax(1) == raw.test.labels).float().mean()
    assert accuracy > 0.5  # chance is 0.1


# ---------------------------------------------------------------------- real data


def _real(name: str, real_data: Path) -> Path:
    path = real_data / name
    if not path.exists():
        pytest.skip(f"{path} absent: real dataset not in CONVLAB_TEST_DATA")
    return path


def test_real_mnist(real_data: Path) -> None:
    start = time.perf_counter()
    raw = load_raw(DataConfig(dataset="mnist", root=real_data, download=False))
    elapsed = time.perf_counter() - start
    assert len(raw.train) == 60000 and len(raw.test) == 10000
    assert raw.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert raw.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert raw.train.images.shape == (60000, 1, 28, 28)
    assert elapsed < 5  # ~0.2 s on the 2-core machine; generous for a busy CI
    counts = raw.train.labels.bincount().tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_fashion_mnist(real_data: Path) -> None:
    _real("FashionMNIST", real_data)
    raw = load_raw(DataConfig(dataset="fashion_mnist", root=real_data, download=False))
    assert len(raw.train) == 60000 and len(raw.test) == 10000
    assert raw.train.labels.bincount().tolist() == [6000] * 10
    assert raw.test.labels.bincount().tolist() == [1000] * 10


def test_real_cifar10_zip_subset(real_data: Path) -> None:
    """Decode 10 images per class and split (of 60,000) straight from the shared zip."""
    from convlab.data.archive import read_tree

    path = _real("cifar10-jpeg.zip", real_data)
    files = read_tree(path, lambda n: imagefolder.is_image_name(n)
                      and n.rsplit("/", 1)[-1] < "0010")
    decoded = imagefolder.decode_tree(path, files, classes=CIFAR10_CLASSES)
    assert decoded.classes == list(CIFAR10_CLASSES)
    for split in ("train", "test"):
        images, labels = decoded.splits[split]
        assert images.shape == (100, 3, 32, 32) and images.dtype == np.uint8
        assert images.flags.c_contiguous
        assert np.bincount(labels).tolist() == [10] * 10


def test_real_cifar10_full_when_cached(real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full 60,000 only when a decoded cache exists already (decoding takes seconds)."""
    path = _real("cifar10-jpeg.zip", real_data)
    for env, value in _USER_CACHE_ENV.items():  # look in the developer's real cache
        if value is None:
            monkeypatch.delenv(env, raising=False)
        else:
            monkeypatch.setenv(env, value)
    cache = imagefolder.cache_file(path, classes=CIFAR10_CLASSES)
    if cache is None or not cache.is_file():
        pytest.skip("no decoded cache of cifar10-jpeg.zip yet: the full decode is a benchmark")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw = load_raw(DataConfig(dataset="cifar10", root=real_data, download=False))
    assert len(raw.train) == 50000 and len(raw.test) == 10000
    assert raw.train.labels.bincount().tolist() == [5000] * 10
