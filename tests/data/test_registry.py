"""Tests generated from the registry of datasets: every registered dataset is read from
files fabricated in its real format, with the shape, labels and classes its entry
declares, a stable fingerprint, and a truncated file refused in one line. Then what each
new dataset does beyond that (labels, splits, transposition, settings, downloads)."""

from __future__ import annotations

import builtins
import hashlib
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from pydantic import ValidationError

from convlab.config import DataConfig, load_config
from convlab.data.classes import CIFAR100_COARSE, EMNIST_CLASSES, IMAGENETTE_WNIDS
from convlab.data.pipeline import data_fingerprint, prepare_data
from convlab.data.sources import dataset_info, load_raw, locate
from convlab.data.spec import DATASETS
from convlab.errors import ConfigError, DataError
from data.fabricate import (
    FABRICATORS,
    emnist_names,
    fabricate_cifar100,
    fabricate_emnist,
    http_mirror,
    imagenette_files,
    png,
    rgb,
    svhn_arrays,
    write_cifar100,
    write_idx_dataset,
    write_stl10,
    write_svhn,
    write_tree,
)

NAMES = DATASETS.list()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's data or cache folders, or writes into them."""
    monkeypatch.setenv("CONVLAB_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.delenv("CONVLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ----------------------------------------------------------- generated, per entry


def test_every_dataset_has_a_fabricator() -> None:
    assert sorted(FABRICATORS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_reads_fabricated_files(tmp_path: Path, name: str) -> None:
    fab = FABRICATORS[name](tmp_path / "root")
    cfg = DataConfig(**fab.cfg)
    info = dataset_info(cfg)
    raw = load_raw(cfg)
    assert raw.shape == fab.shape
    if info.shape is not None:
        assert info.shape == raw.shape  # the entry's declared shape is what is read
    if info.classes is not None:
        assert tuple(raw.classes) == info.classes
    assert len(raw.classes) == fab.num_classes
    for split, labels in ((raw.train, fab.train_labels), (raw.test, fab.test_labels)):
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert split.images.shape[1:] == fab.shape
        assert int(split.labels.min()) >= 0 and int(split.labels.max()) < fab.num_classes
        assert sorted(split.labels.tolist()) == sorted(labels.tolist())
    if fab.train_images is not None:  # lossless formats: the exact pixels, upright
        assert np.array_equal(raw.train.images.numpy(), fab.train_images)
        assert raw.train.labels.tolist() == fab.train_labels.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint_is_stable(tmp_path: Path, name: str) -> None:
    fab = FABRICATORS[name](tmp_path / "root")
    first = load_raw(DataConfig(**fab.cfg))
    again = load_raw(DataConfig(**fab.cfg))  # from the decoded cache where there is one
    assert data_fingerprint(first.train, None, first.test) == data_fingerprint(
        again.train, None, again.test)
    flipped = first.train.images.clone()
    flipped.view(-1)[0] ^= 1
    assert data_fingerprint(first.train, None, first.test) != data_fingerprint(
        type(first.train)(flipped, first.train.labels), None, first.test)


@pytest.mark.parametrize("name", NAMES)
def test_truncated_file_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    fab = FABRICATORS[name](tmp_path / "root")
    if fab.truncate is None:
        pytest.skip(f"{name} reads no file")
    data = fab.truncate.read_bytes()
    fab.truncate.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        load_raw(DataConfig(**fab.cfg))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_locate_says_where_it_looked(tmp_path: Path, name: str) -> None:
    fab = FABRICATORS[name](tmp_path / "root")
    spec = DATASETS.get(name)
    found = locate(DataConfig(**fab.cfg))
    if spec.locate is None:
        assert found.looked == [] and found.found is None
        return
    assert found.found is not None and found.found in found.looked
    if "root" in fab.cfg:
        empty = locate(DataConfig(**{**fab.cfg, "root": tmp_path / "empty"}))
        assert empty.found is None and empty.looked


@pytest.mark.parametrize("name", NAMES)
def test_settings_refuse_unknown_keys_with_a_suggestion(name: str) -> None:
    with pytest.raises(ValidationError, match=r"val_fracton: unknown key for dataset .*did "
                                              r"you mean 'val_fraction'"):
        DataConfig(dataset=name, val_fracton=0.1)


# --------------------------------------------------------------- the config side


def test_config_file_with_dataset_keys(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text("data: {dataset: cifar100, label: coarse}\n")
    cfg = load_config(tmp_path / "e.yaml")
    assert cfg.data.settings == {"label": "coarse"}
    assert cfg.to_dict()["data"]["label"] == "coarse"
    with pytest.raises(ConfigError, match=r"data: label: unknown key for dataset 'svhn'"):
        load_config(tmp_path / "e.yaml", ["data.dataset=svhn"])
    with pytest.raises(ConfigError, match=r"data: label: Input should be 'fine' or 'coarse'"):
        load_config(tmp_path / "e.yaml", ["data.label=medium"])
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar1000'; did you mean "
                                          r"'cifar100' or 'cifar10'"):
        load_config(tmp_path / "e.yaml", ["data.dataset=cifar1000"])


def test_resolved_config_holds_the_defaults_of_the_dataset() -> None:
    assert DataConfig(dataset="emnist").settings == {"split": "balanced"}
    assert DataConfig(dataset="mnist").settings == {}
    assert DataConfig(dataset="imagenette").settings == {"size": "160", "image_size": None}


def test_args_belong_to_user_loaders_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.args: only a user's loader"):
        load_raw(DataConfig(dataset="synthetic", args={"n": 3}))


# ------------------------------------------------------------- cifar100, emnist


def test_cifar100_coarse_labels(tmp_path: Path) -> None:
    fab = fabricate_cifar100(tmp_path, label="coarse")
    raw = load_raw(DataConfig(**fab.cfg))
    assert raw.classes == list(CIFAR100_COARSE) and len(raw.classes) == 20
    assert raw.train.labels.tolist() == fab.train_labels.tolist()


def test_cifar100_missing_says_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_raw(DataConfig(dataset="cifar100", root=tmp_path, download=False))
    message = str(err.value)
    assert str(tmp_path / "cifar-100-python" / "train") in message
    assert "data.download is false" in message and "CONVLAB_DATA" in message


def test_cifar100_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's downloader from a local HTTP mirror (MD5 checked), then only the two
    pickles taken out of the tarball and read with the restricted unpickler."""
    batches = write_cifar100(tmp_path / "src" / "cifar-100-python")
    tarball = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(tmp_path / "src" / "cifar-100-python", arcname="cifar-100-python")
    monkeypatch.setattr(tvd.CIFAR100, "tgz_md5", md5(tarball))
    with http_mirror(tmp_path) as url:
        monkeypatch.setattr(tvd.CIFAR100, "url", url + tarball.name)
        raw = load_raw(DataConfig(dataset="cifar100", root=tmp_path / "root"))
    assert raw.test.labels.tolist() == batches["test"]["fine_labels"]
    assert sorted(p.name for p in (tmp_path / "root" / "cifar-100-python").iterdir()) == [
        "test", "train"]


@pytest.mark.parametrize("split", ["letters", "byclass", "digits"])
def test_emnist_splits(tmp_path: Path, split: str) -> None:
    fab = fabricate_emnist(tmp_path, split)
    raw = load_raw(DataConfig(**fab.cfg))
    assert raw.classes == list(EMNIST_CLASSES[split])
    assert raw.train.labels.tolist() == fab.train_labels.tolist()  # letters: 1..26 -> 0..25
    assert np.array_equal(raw.train.images.numpy(), fab.train_images)  # upright again


def test_emnist_label_out_of_range(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "EMNIST" / "raw", names=emnist_names("letters"), classes=26,
                      first_label=0)  # a 0 label in letters
    with pytest.raises(DataError, match=r"label 0 out of range 1\.\.26"):
        load_raw(DataConfig(dataset="emnist", split="letters", root=tmp_path, download=False))


def test_emnist_download_takes_one_split_from_the_zip(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    arrays = write_idx_dataset(src, names=emnist_names("digits"), transpose=True)
    write_idx_dataset(src, names=emnist_names("mnist"))
    archive = tmp_path / "gzip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"gzip/{f.name}")
    monkeypatch.setattr(tvd.EMNIST, "md5", md5(archive))
    with http_mirror(tmp_path) as url:
        monkeypatch.setattr(tvd.EMNIST, "url", url + archive.name)
        raw = load_raw(DataConfig(dataset="emnist", split="digits", root=tmp_path / "root"))
    raw_dir = tmp_path / "root" / "EMNIST" / "raw"
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(
        ["gzip.zip", *(f"{n}.gz" for pair in emnist_names("digits").values() for n in pair)])
    assert raw.test.labels.tolist() == arrays["test"][1].tolist()


def test_kmnist_download_through_torchvision(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    arrays = write_idx_dataset(mirror)
    monkeypatch.setattr(tvd.KMNIST, "resources",
                        [(f.name, md5(f)) for f in sorted(mirror.iterdir())])
    with http_mirror(mirror) as url:
        monkeypatch.setattr(tvd.KMNIST, "mirrors", [url])
        raw = load_raw(DataConfig(dataset="kmnist", root=tmp_path / "root"))
    assert raw.classes[:3] == ["o", "ki", "su"]
    assert raw.train.labels.tolist() == arrays["train"][1].tolist()


# ------------------------------------------------------------------- svhn, stl10


def test_svhn_label_10_is_zero_and_extra_is_on_request(tmp_path: Path) -> None:
    arrays = write_svhn(tmp_path / "svhn", {"train": 5, "test": 3, "extra": 4})
    raw = load_raw(DataConfig(dataset="svhn", root=tmp_path, download=False))
    assert raw.train.labels[0] == 0 and len(raw.train) == 5  # stored as 10
    assert raw.classes == [str(d) for d in range(10)]
    with_extra = load_raw(DataConfig(dataset="svhn", extra=True, root=tmp_path, download=False))
    assert len(with_extra.train) == 9
    assert with_extra.train.labels[5:].tolist() == (arrays["extra"][1].reshape(-1) % 10).tolist()


def test_svhn_in_the_root_as_torchvision_keeps_it(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    raw = load_raw(DataConfig(dataset="svhn", root=tmp_path, download=False))
    assert Path(raw.location) == tmp_path


def test_svhn_without_scipy_names_the_extra(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write_svhn(tmp_path / "svhn")
    real_import = builtins.__import__

    def no_scipy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("scipy"):
            raise ImportError("No module named 'scipy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(DataError) as err:
        load_raw(DataConfig(dataset="svhn", root=tmp_path, download=False))
    assert "pip install 'convlab[scipy]'" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("x", "y", "match"), [
    (np.zeros((32, 32, 3, 2), np.float32), np.ones((2, 1), np.uint8), "uint8"),
    (np.zeros((28, 28, 3, 2), np.uint8), np.ones((2, 1), np.uint8), r"\(32, 32, 3, N\)"),
    (np.zeros((32, 32, 3, 2), np.uint8), np.ones((3, 1), np.uint8),
     "declares 2 images and 3 labels"),  # refused from the headers, before reading
    (np.zeros((32, 32, 3, 2), np.uint8), np.zeros((2, 1), np.uint8), r"outside 1\.\.10"),
])
def test_svhn_content_checks(tmp_path: Path, x: np.ndarray, y: np.ndarray, match: str) -> None:
    from scipy.io import savemat

    (tmp_path / "svhn").mkdir()
    savemat(str(tmp_path / "svhn" / "train_32x32.mat"), {"X": x, "y": y})
    savemat(str(tmp_path / "svhn" / "test_32x32.mat"), dict(zip("Xy", svhn_arrays(2, 0),
                                                                 strict=True)))
    with pytest.raises(DataError, match=match):
        load_raw(DataConfig(dataset="svhn", root=tmp_path, download=False))


def test_svhn_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    write_svhn(mirror)
    with http_mirror(mirror) as url:
        monkeypatch.setattr(tvd.SVHN, "split_list", {
            s: [url + f"{s}_32x32.mat", f"{s}_32x32.mat", md5(mirror / f"{s}_32x32.mat")]
            for s in ("train", "test")})
        raw = load_raw(DataConfig(dataset="svhn", root=tmp_path / "root"))
    assert Path(raw.location) == tmp_path / "root" / "svhn" and len(raw.test) == 4


def test_stl10_label_count_must_match(tmp_path: Path) -> None:
    write_stl10(tmp_path / "stl10_binary")
    (tmp_path / "stl10_binary" / "train_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(DataError, match=r"train_y\.bin: 2 labels for 4 images"):
        load_raw(DataConfig(dataset="stl10", root=tmp_path, download=False))


def test_stl10_download_takes_only_the_labelled_files(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = write_stl10(tmp_path / "src" / "stl10_binary")
    (tmp_path / "src" / "stl10_binary" / "unlabeled_X.bin").write_bytes(b"\0" * 27648)
    tarball = tmp_path / "stl10_binary.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(tmp_path / "src" / "stl10_binary", arcname="stl10_binary")
    monkeypatch.setattr(tvd.STL10, "tgz_md5", md5(tarball))
    with http_mirror(tmp_path) as url:
        monkeypatch.setattr(tvd.STL10, "url", url + tarball.name)
        raw = load_raw(DataConfig(dataset="stl10", root=tmp_path / "root"))
    assert sorted(p.name for p in (tmp_path / "root" / "stl10_binary").iterdir()) == [
        "test_X.bin", "test_y.bin", "train_X.bin", "train_y.bin"]
    assert np.array_equal(raw.test.images.numpy(), arrays["test"][0])


# -------------------------------------------------------------------- imagenette


def test_imagenette_centre_crop_val_as_test_and_names(tmp_path: Path) -> None:
    write_tree(tmp_path / "imagenette2-160", imagenette_files(), "tgz")  # read in place
    raw = load_raw(DataConfig(dataset="imagenette", image_size=8, root=tmp_path,
                              download=False))
    assert raw.classes == list(IMAGENETTE_WNIDS.values()) and raw.classes[0] == "tench"
    assert raw.shape == (3, 8, 8) and raw.test.labels.tolist() == list(range(10))
    # the black side bands are cropped away: each image is 20 * label + 10 up to JPEG
    # ringing at the crop's edge; a squashed (uncropped) image would keep dark edges
    expected = (20 * raw.train.labels + 10).float()
    assert torch.allclose(raw.train.images.float().mean(dim=(1, 2, 3)), expected, atol=8)
    assert (raw.train.images[:, :, :, 0].float().mean(dim=(1, 2)) > 0.6 * expected).all()


def test_imagenette_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"imagenette2-320.*data.download is false"):
        load_raw(DataConfig(dataset="imagenette", size="320", root=tmp_path, download=False))


# ---------------------------------------------------------- labels.csv, subsets


def test_imagefolder_labels_csv(tmp_path: Path) -> None:
    files = {f"img/{i:02d}.png": png(rgb(10 * i)) for i in range(8)}
    path = write_tree(tmp_path / "kaggle", files, "folder")
    rows = ["id,label,split"] + [f"img/{i:02d},{'cat' if i % 2 else 'dog'},"
                                 f"{'test' if i >= 6 else 'train'}" for i in range(8)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    raw = load_raw(DataConfig(dataset="imagefolder", path=path, labels=tmp_path / "labels.csv"))
    assert raw.classes == ["cat", "dog"] and len(raw.train) == 6 and len(raw.test) == 2
    assert raw.train.labels.tolist() == [1, 0, 1, 0, 1, 0]
    assert raw.train.images[:, 0, 0, 0].tolist() == [0, 10, 20, 30, 40, 50]
    (tmp_path / "split.csv").write_text("".join(f"img/{i:02d}.png,{i % 2}\n" for i in range(8)))
    raw = load_raw(DataConfig(dataset="imagefolder", path=path, labels=tmp_path / "split.csv",
                              test_fraction=0.25))
    assert raw.classes == ["0", "1"] and len(raw.test) == 2


@pytest.mark.parametrize(("text", "match"), [
    ("img/00.png,cat\nimg/99.png,dog\n", r"labels\.csv:2: 'img/99\.png' is not an image"),
    ("img/00.png,cat\nimg/00.png,dog\n", "listed twice"),
    ("img/00.png\n", "expected file,label"),
    ("img/00.png,cat,val\n", "split 'val'"),
    ("img/00.png,cat\nimg/01.png,cat\n", "expected at least 2"),
])
def test_imagefolder_labels_csv_errors(tmp_path: Path, text: str, match: str) -> None:
    path = write_tree(tmp_path / "k", {f"img/{i:02d}.png": png(rgb(i)) for i in range(2)},
                      "folder")
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        load_raw(DataConfig(dataset="imagefolder", path=path, labels=tmp_path / "labels.csv",
                            test_fraction=0.5))


def test_subset_val_and_sizes() -> None:
    cfg = DataConfig(dataset="synthetic", val_fraction=0.25,
                     subset={"train": 100, "val": 30, "test": 50})
    data = prepare_data(cfg, torch.device("cpu"))
    assert data.sizes == {"train": 100, "val": 30, "test": 50}
    full = prepare_data(DataConfig(dataset="synthetic", val_fraction=0.25), torch.device("cpu"))
    assert full.sizes == {"train": 768, "val": 256, "test": 256}


def test_memory_estimate_refuses_before_decoding(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tree(tmp_path / "t", {k: png(rgb(1, 64)) for k in (
        "train/a/0.png", "train/b/0.png", "test/a/0.png", "test/b/0.png")}, "folder")
    monkeypatch.setenv("CONVLAB_MEMORY_BYTES", "10000")
    with pytest.raises(DataError, match=r"4 images of 3x64x64 need 49\.2 KB in memory as "
                                        r"uint8, more than the 10\.0 KB available; set "
                                        r"data\.resize"):
        load_raw(DataConfig(dataset="imagefolder", path=path))
    monkeypatch.setenv("CONVLAB_MEMORY_BYTES", str(10**9))
    with pytest.raises(DataError, match=r"svhn: 630,420 images of 3x32x32 need 1\.9 GB"):
        load_raw(DataConfig(dataset="svhn", extra=True, root=tmp_path, download=False))


def test_schema_lists_each_datasets_own_keys() -> None:
    from convlab.config import json_schema

    defs = json_schema()["$defs"]
    assert {f"data:{n}" for n in NAMES} <= set(defs)
    split = defs["data:emnist"]["properties"]["split"]
    assert "letters" in split["enum"] and split["description"]


def test_imagenette_download_is_read_in_place(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = write_tree(mirror / "imagenette2-160", imagenette_files(), "tgz")
    with http_mirror(mirror) as url:
        monkeypatch.setitem(tvd.Imagenette._ARCHIVES, "160px",
                            (url + archive.name, md5(archive)))
        raw = load_raw(DataConfig(dataset="imagenette", image_size=8, root=tmp_path / "root"))
    assert Path(raw.location) == tmp_path / "root" / "imagenette2-160.tgz"
    assert len(raw.train) == len(raw.test) == 10


@pytest.mark.parametrize("name", ["svhn", "stl10", "cifar100", "emnist", "kmnist"])
@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_in_each_new_format_are_refused(tmp_path: Path, name: str,
                                                     seed: int) -> None:
    """The file each new reader reads first, replaced by junk of a random length (some
    with the format's own leading bytes): one DataError line, never a crash."""
    fab = FABRICATORS[name](tmp_path / "root")
    assert fab.truncate is not None
    rng = np.random.default_rng(seed)
    good = fab.truncate.read_bytes()
    junk = rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()
    fab.truncate.write_bytes(good[: int(rng.integers(0, 200))] + junk if seed % 2 else junk)
    with pytest.raises(DataError) as err:
        load_raw(DataConfig(**fab.cfg))
    assert "\n" not in str(err.value) and str(fab.truncate.parent) in str(err.value)


@pytest.mark.parametrize("name", [n for n in NAMES if DATASETS.get(n).download])
def test_missing_files_say_where_they_were_looked_for(tmp_path: Path, name: str) -> None:
    cfg = DataConfig(dataset=name, root=tmp_path / "empty", download=False)
    looked = locate(cfg).looked
    with pytest.raises(DataError) as err:
        load_raw(cfg)
    message = str(err.value)
    assert "\n" not in message and "data.download is false" in message
    assert str(looked[0]) in message and "CONVLAB_DATA" in message


def test_relative_labels_csv_resolves_against_the_experiment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = tmp_path / "exp"
    write_tree(exp / "imgs", {f"{i}.png": png(rgb(i)) for i in range(4)}, "folder")
    (exp / "labels.csv").write_text("0.png,a,train\n1.png,b,train\n2.png,a,test\n3.png,b,test\n")
    (exp / "e.yaml").write_text("data: {dataset: imagefolder, path: imgs, labels: labels.csv}\n")
    monkeypatch.chdir(tmp_path)  # elsewhere: the paths are the experiment's
    cfg = load_config(exp / "e.yaml")
    raw = load_raw(cfg.data)
    assert raw.classes == ["a", "b"] and raw.test.labels.tolist() == [0, 1]


def test_run_folders_of_earlier_versions_reopen() -> None:
    """convlab 0.1 wrote synthetic: and test_fraction: into every data section."""
    from convlab.config import upgrade_legacy, validate_config

    old = {"data": {"dataset": "mnist", "test_fraction": None, "synthetic": {
        "shape": [1, 28, 28], "classes": 10, "train_size": 1024, "test_size": 256, "seed": 0}}}
    cfg = validate_config(upgrade_legacy(old))
    assert cfg.data.dataset == "mnist" and cfg.data.settings == {}
    kept = validate_config(upgrade_legacy({"data": {"dataset": "synthetic", "test_fraction":
                                                    None, "synthetic": {"classes": 3}}}))
    assert kept.data.settings["synthetic"]["classes"] == 3
