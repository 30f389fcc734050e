"""Untrusted data files: every malformed or hostile input is a one-line DataError naming
the file, found before anything large is allocated, and no pickle runs code."""

from __future__ import annotations

import builtins
import gzip
import importlib.util
import io
import os
import pickle
import struct
import subprocess
import tarfile
import time
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from convlab.config import DataConfig
from convlab.data import archive, cifar, idx
from convlab.data.archive import extract_folder, read_tree, safe_member_name
from convlab.data.cifar import read_cifar_batch, safe_unpickle
from convlab.data.idx import read_idx
from convlab.data.imagefolder import decode_image, decode_many, load_imagefolder
from convlab.data.sources import load_raw
from convlab.errors import DataError


def _corpus_module() -> ModuleType:
    path = Path(__file__).parents[1] / "corpus" / "make_corpus.py"
    spec = importlib.util.spec_from_file_location("make_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mc = _corpus_module()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONVLAB_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.delenv("CONVLAB_DATA", raising=False)
    canary = tmp_path / "canary"
    monkeypatch.setenv("CONVLAB_CANARY", str(canary))
    return canary


def one_line(err: pytest.ExceptionInfo[DataError], *parts: str) -> str:
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


# ------------------------------------------------------------------------- IDX


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("data", "match"), [
    (b"", "truncated IDX header"),
    (b"\x00\x00\x08", "truncated IDX header"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (b"PK\x03\x04" + bytes(20), "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01x", "not an IDX file"),  # unknown dtype code
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x09" + bytes(36), "9 dimensions"),
    (mc.idx_bytes((3, 4), bytes(11)), "the file holds 11"),
    (mc.idx_bytes((3, 4), bytes(13)), "the file holds 13"),
    (mc.idx_bytes((2,), bytes(8), code=0x0E), "the file holds 8"),  # float64 needs 16
])
def test_idx_malformed(tmp_path: Path, data: bytes, match: str) -> None:
    path = write(tmp_path / "f-idx1-ubyte", data)
    with pytest.raises(DataError, match=match) as err:
        read_idx(path)
    one_line(err, str(path))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_huge_claim_refused_before_allocating(tmp_path: Path, gz: bool) -> None:
    data = mc.idx_bytes((60000, 60000, 60000), b"")  # 2e14 bytes
    path = write(tmp_path / "x.gz", gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match="more than the 1073741824 bytes"):
        read_idx(path)


def test_idx_gz_payload_size_checked(tmp_path: Path) -> None:
    path = write(tmp_path / "x.gz", gzip.compress(mc.idx_bytes((60000, 28, 28), bytes(100))))
    with pytest.raises(DataError, match="only 100 of the 47040000 bytes"):
        read_idx(path)


def test_idx_gzip_bomb_reads_at_most_one_byte_more(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = gzip.compress(mc.idx_bytes((4, 4), bytes(20 * 2**20)), compresslevel=9)
    path = write(tmp_path / "bomb.gz", bomb)
    requested: list[int] = []
    real_read = gzip.GzipFile.read

    def spy(self: gzip.GzipFile, size: int = -1) -> bytes:
        requested.append(size)
        return real_read(self, size)

    monkeypatch.setattr(gzip.GzipFile, "read", spy)
    start = time.perf_counter()
    with pytest.raises(DataError, match="more than the 16 bytes"):
        read_idx(path)
    assert time.perf_counter() - start < 1
    assert all(0 <= n <= 17 for n in requested[2:])  # after the 4 + 8 header bytes


def test_idx_corrupt_gzip(tmp_path: Path) -> None:
    good = gzip.compress(mc.idx_bytes((4,), bytes(4)))
    crc_broken = bytearray(good)
    crc_broken[-8] ^= 0xFF  # CRC32 of the member
    for data in (good[:-5], bytes(crc_broken), good[:3]):
        with pytest.raises(DataError, match="not a readable IDX/gzip file"):
            read_idx(write(tmp_path / "x.gz", data))


def test_mnist_content_checks(tmp_path: Path) -> None:
    raw_dir = tmp_path / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)

    def files(train_images: bytes, train_labels: bytes, test_images: bytes | None = None) -> None:
        ok_images, ok_labels = mc.idx_bytes((2, 4, 4), bytes(32)), mc.idx_bytes((2,), bytes(2))
        for name, data in (("train-images-idx3-ubyte", train_images),
                           ("train-labels-idx1-ubyte", train_labels),
                           ("t10k-images-idx3-ubyte", test_images or ok_images),
                           ("t10k-labels-idx1-ubyte", ok_labels)):
            (raw_dir / name).write_bytes(data)

    cfg = DataConfig(dataset="mnist", root=tmp_path, download=False)
    cases = [
        (mc.idx_bytes((2, 4, 4), bytes(32)), mc.idx_bytes((3,), bytes(3)), None,
         "3 labels for 2 images"),
        (mc.idx_bytes((2, 4, 4), bytes(32)), mc.idx_bytes((2,), b"\x00\x0a"), None,
         "label 10 out of range"),
        (mc.idx_bytes((2, 16), bytes(32)), mc.idx_bytes((2,), bytes(2)), None,
         "expected (N, H, W) uint8 images"),
        (mc.idx_bytes((2, 4, 4), bytes(64), code=0x0B), mc.idx_bytes((2,), bytes(2)), None,
         "got (2, 4, 4) int16"),
        (mc.idx_bytes((2, 4, 4), bytes(32)), mc.idx_bytes((2,), bytes(2)),
         mc.idx_bytes((2, 5, 5), bytes(50)), "test images are (5, 5)"),
        (mc.idx_bytes((0, 4, 4), b""), mc.idx_bytes((0,), b""), None, "no examples"),
    ]
    for train_images, train_labels, test_images, match in cases:
        files(train_images, train_labels, test_images)
        with pytest.raises(DataError, match=match.replace("(", r"\(").replace(")", r"\)")):
            load_raw(cfg)


# ---------------------------------------------------------------------- pickles


class _Reduce:
    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.mark.parametrize("payload", [
    _Reduce(os.system, mc.CANARY_SHELL),
    _Reduce(builtins.exec, mc.CANARY_PY),
    _Reduce(builtins.eval, f"exec({mc.CANARY_PY!r})"),
    _Reduce(subprocess.call, ["sh", "-c", mc.CANARY_SHELL]),
    _Reduce(getattr, _Reduce(__import__, "os"), "system"),
    _Reduce(np.load, "/etc/passwd"),
    _Reduce(Path.write_text, Path(os.devnull), "x"),
], ids=["os.system", "exec", "eval", "subprocess", "getattr", "numpy.load", "Path.write_text"])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_globals_refused(tmp_path: Path, _isolated: Path, payload: object,
                                protocol: int) -> None:
    path = write(tmp_path / "data_batch_1", pickle.dumps(
        {"data": np.zeros((1, 3072), np.uint8), "labels": payload}, protocol=protocol))
    with pytest.raises(DataError, match="refused to unpickle global") as err:
        read_cifar_batch(path)
    one_line(err, str(path))
    assert not _isolated.exists()


def test_pickle_allowed_names_are_wrapped_not_numpy_itself() -> None:
    """The allowed globals cannot be turned against us: ndarray is not callable, dtype
    refuses objects, _reconstruct refuses other types, _codecs.encode refuses codecs."""
    ndarray_call = (b"\x80\x02cnumpy\nndarray\nK\x05\x85R.")  # numpy.ndarray(5)
    object_dtype = b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00O8\x85R."
    reconstruct_dtype = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\n"
                         b"K\x00\x85C\x01b\x87R.")
    zlib_codec = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R."
    for data in (ndarray_call, object_dtype, reconstruct_dtype, zlib_codec):
        with pytest.raises(DataError, match="not a valid CIFAR pickle"):
            safe_unpickle(data, "p")


def test_pickle_numpy2_and_protocol5_arrays_load() -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in (2, 3, 4, 5):
        assert np.array_equal(safe_unpickle(pickle.dumps(array, protocol=protocol), "p"), array)
    assert np.array_equal(safe_unpickle(pickle.dumps(array.T, protocol=5), "p"), array.T)


def test_python2_style_batch(tmp_path: Path) -> None:
    """The official batches are Python 2 pickles: str keys and array data as latin-1 str."""
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251
    # A Python 2 cPickle protocol-2 stream, written out opcode by opcode: str objects are
    # BINSTRINGs ('U', 'T'), so the array's raw data arrives as a latin-1 decoded str.
    stream = (
        b"\x80\x02}q\x00(U\x04dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02"
        b"cnumpy\nndarray\nq\x03K\x00\x85U\x01b\x87Rq\x04(K\x01K\x02M\x00\x0c\x86"
        b"cnumpy\ndtype\nq\x05U\x02u1K\x00K\x01\x87Rq\x06(K\x03U\x01|NNNJ\xff\xff\xff\xff"
        b"J\xff\xff\xff\xffK\x00tb\x89"
        + b"T" + struct.pack("<I", len(data.tobytes())) + data.tobytes()
        + b"tbU\x06labelsq\x07]q\x08(K\x03K\teu."
    )
    path = write(tmp_path / "data_batch_1", stream)
    images, labels = read_cifar_batch(path)
    assert np.array_equal(images.numpy().reshape(2, 3072), data)
    assert labels.tolist() == [3, 9]


@pytest.mark.parametrize(("batch", "match"), [
    ([1, 2], "expected a dict"),
    ({"labels": [0]}, "'data' as an"),
    ({"data": np.zeros((1, 3072), np.float32), "labels": [0]}, "float32"),
    ({"data": np.zeros((1, 100), np.uint8), "labels": [0]}, r"\(1, 100\)"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "1 labels for 2 images"),
    ({"data": np.zeros((1, 3072), np.uint8), "labels": [10]}, "labels outside"),
    ({"data": np.zeros((1, 3072), np.uint8), "labels": ["cat"]}, "list of ints"),
])
def test_cifar_batch_content_checks(tmp_path: Path, batch: object, match: str) -> None:
    path = write(tmp_path / "b", pickle.dumps(batch, protocol=4))
    with pytest.raises(DataError, match=match) as err:
        read_cifar_batch(path)
    one_line(err, str(path))


def test_cifar_pickle_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cifar, "MAX_PICKLE_BYTES", 100)
    path = write(tmp_path / "b", pickle.dumps({"data": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(DataError, match="limit 100"):
        read_cifar_batch(path)


def test_cifar_folder_with_malicious_batch(tmp_path: Path, _isolated: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*cifar.TRAIN_BATCHES, cifar.TEST_BATCH]:
        (folder / name).write_bytes(pickle.dumps(_Reduce(os.system, mc.CANARY_SHELL)))
    with pytest.raises(DataError, match="data_batch_1: refused"):
        load_raw(DataConfig(dataset="cifar10", root=tmp_path, download=False))
    assert not _isolated.exists()


# --------------------------------------------------------------------- archives


@pytest.mark.parametrize(("name", "match"), [
    ("../evil.png", "leaves the archive"),
    ("train/../../evil.png", "leaves the archive"),
    ("..\\evil.png", "leaves the archive"),
    ("/etc/evil.png", "absolute path"),
    ("\\\\server\\share\\evil.png", "absolute path"),
    ("C:\\evil.png", "absolute path"),
    ("C:evil.png", "absolute path"),
    ("train/a/\x00.png", "NUL byte"),
])
def test_unsafe_member_names(name: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        safe_member_name(Path("a.zip"), name)


def test_safe_member_names_are_normalized() -> None:
    assert safe_member_name(Path("a.zip"), "./train//cat/./0.png") == "train/cat/0.png"
    assert safe_member_name(Path("a.zip"), "train\\cat\\0.png") == "train/cat/0.png"


OK_TREE = {"train/a/0.png": mc.png_bytes(), "train/b/0.png": mc.png_bytes(),
           "test/a/0.png": mc.png_bytes(), "test/b/0.png": mc.png_bytes()}


@pytest.mark.parametrize(("members", "links", "match"), [
    ({"../evil.png": b"x"}, {}, r"member '\.\./evil\.png' leaves"),
    ({"/abs/evil.png": b"x"}, {}, "absolute path"),
    ({"notes/../../x.txt": b"x"}, {}, "leaves the archive"),  # even unwanted members
    ({}, {"train/a/l.png": "/etc/passwd"}, "symbolic link"),
])
def test_zip_unsafe_members(tmp_path: Path, members: dict[str, bytes], links: dict[str, str],
                            match: str) -> None:
    path = write(tmp_path / "t.zip", mc.zip_with({**OK_TREE, **members}, links))
    with pytest.raises(DataError, match=match) as err:
        load_imagefolder(path)
    one_line(err, str(path))


@pytest.mark.parametrize(("kind", "target", "match"), [
    (tarfile.SYMTYPE, "../../../../etc/passwd", "is a link"),
    (tarfile.SYMTYPE, "0.png", "is a link"),  # even a link inside the tree
    (tarfile.LNKTYPE, "train/a/0.png", "is a link"),
    (tarfile.CHRTYPE, "", "device or fifo"),
    (tarfile.FIFOTYPE, "", "device or fifo"),
])
@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_unsafe_members(tmp_path: Path, kind: bytes, target: str, match: str,
                            mode: str) -> None:
    path = write(tmp_path / "t.tar", mc.tar_with(OK_TREE, {"train/a/x.png": (kind, target)},
                                                 mode=mode))
    with pytest.raises(DataError, match=match) as err:
        load_imagefolder(path)
    one_line(err, str(path), "train/a/x.png")


def test_member_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1000)
    big = {"train/a/big.png": bytes(5000)}
    for path in (write(tmp_path / "t.zip", mc.zip_with({**OK_TREE, **big})),
                 write(tmp_path / "t.tar", mc.tar_with({**OK_TREE, **big}, {}))):
        with pytest.raises(DataError, match="more than the 1000 allowed"):
            load_imagefolder(path)
    folder = tmp_path / "f" / "train" / "a"
    folder.mkdir(parents=True)
    (folder / "big.png").write_bytes(bytes(5000))
    with pytest.raises(DataError, match="more than the 1000 allowed"):
        load_imagefolder(tmp_path / "f")


def test_corrupt_archives(tmp_path: Path) -> None:
    good_zip = mc.zip_with(OK_TREE)
    bad_crc = bytearray(good_zip)
    offset = good_zip.index(b"train/a/0.png") + len("train/a/0.png") + 10
    bad_crc[offset] ^= 0xFF  # inside the first member's compressed data
    good_tgz = mc.tar_with(OK_TREE, {}, mode="w:gz")
    cases = [
        ("bad.zip", b"PK\x03\x04 not really", "not a readable zip"),
        ("crc.zip", bytes(bad_crc), "cannot read member|not a readable"),
        ("cut.tar.gz", good_tgz[: len(good_tgz) // 2], "tar"),
        ("junk.tar", b"\x00" * 10 + b"junk" * 200, "tar|no images"),
        ("data.bin", b"neither zip nor tar", "expected a folder, a .zip or a .tar"),
    ]
    for name, data, match in cases:
        with pytest.raises(DataError, match=match) as err:
            load_imagefolder(write(tmp_path / name, data))
        one_line(err, name)


def test_encrypted_zip_member(tmp_path: Path) -> None:
    data = bytearray(mc.zip_with(OK_TREE))
    # set the "encrypted" flag bit in every local and central header
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + flag_offset] |= 0x01
            start += 4
    with pytest.raises(DataError, match="cannot read member"):
        load_imagefolder(write(tmp_path / "enc.zip", bytes(data)))


def test_archive_reading_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "slip.zip", mc.zip_with({**OK_TREE, "../../evil.png": b"x"}))
    before = set(tmp_path.rglob("*"))
    with pytest.raises(DataError):
        read_tree(path, lambda n: True)
    assert set(tmp_path.rglob("*")) == before


def test_extract_folder_is_all_or_nothing(tmp_path: Path) -> None:
    members = {"top/a.bin": b"1", "top/sub/b.bin": b"2"}
    tar = write(tmp_path / "ok.tar", mc.tar_with(members, {}))
    (tmp_path / "out").mkdir()
    assert extract_folder(tar, "top", tmp_path / "out") == tmp_path / "out" / "top"
    assert (tmp_path / "out" / "top" / "sub" / "b.bin").read_bytes() == b"2"
    bad = write(tmp_path / "bad.tar", mc.tar_with(members, {"top/z": (tarfile.SYMTYPE, "/")}))
    (tmp_path / "out2").mkdir()
    with pytest.raises(DataError, match="is a link"):
        extract_folder(bad, "top", tmp_path / "out2")
    assert not list((tmp_path / "out2").iterdir())
    with pytest.raises(DataError, match="no files under other/"):
        extract_folder(tar, "other", tmp_path / "out2")
    assert not list((tmp_path / "out2").iterdir())


# ----------------------------------------------------------------------- images


def image_bytes(fmt: str, mode: str = "RGB", size: tuple[int, int] = (8, 8),
                **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 100).save(buf, fmt, **save)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "mode", "shape"), [
    ("PNG", "RGB", (3, 8, 8)), ("PNG", "L", (1, 8, 8)), ("PNG", "RGBA", (3, 8, 8)),
    ("PNG", "P", (3, 8, 8)), ("PNG", "1", (1, 8, 8)), ("PNG", "LA", (1, 8, 8)),
    ("PNG", "I;16", (1, 8, 8)), ("JPEG", "RGB", (3, 8, 8)), ("JPEG", "L", (1, 8, 8)),
    ("JPEG", "CMYK", (3, 8, 8)), ("BMP", "RGB", (3, 8, 8)), ("GIF", "P", (3, 8, 8)),
    ("WEBP", "RGB", (3, 8, 8)),
])
def test_decode_accepted_formats(fmt: str, mode: str, shape: tuple[int, ...]) -> None:
    array = decode_image(image_bytes(fmt, mode), "x")
    assert array.shape == shape and array.dtype == np.uint8


def test_decode_sixteen_bit_keeps_high_byte() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((2, 2), 0x1234, dtype=np.uint16)).save(buf, "PNG")
    assert decode_image(buf.getvalue(), "x").tolist() == [[[0x12, 0x12], [0x12, 0x12]]]


def test_decode_palette_with_transparency_without_warning() -> None:
    data = image_bytes("PNG", "P", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image(data, "x").shape == (3, 8, 8)


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PPM", "TGA", "PCX", "EPS"])
def test_decode_refuses_other_formats(fmt: str) -> None:
    try:
        data = image_bytes(fmt, "RGB")
    except (OSError, KeyError):  # pragma: no cover - writer missing in this Pillow build
        pytest.skip(f"Pillow cannot write {fmt} here")
    with pytest.raises(DataError, match="x.png: not a PNG, JPEG, BMP, GIF or WebP image"):
        decode_image(data, "x.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_decode_truncated(fmt: str) -> None:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    data = buf.getvalue()
    for cut in (len(data) // 2, 30, 0):
        with pytest.raises(DataError, match="bad.img: ") as err:
            decode_image(data[:cut], "bad.img")
        one_line(err)


def test_decompression_bomb_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.perf_counter()
    for size in (30000, 10000):  # past 2x Pillow's limit (error), past the limit (warning)
        with pytest.raises(DataError, match="decompression bomb"):
            decode_image(mc.png_header_only(size, size), "bomb.png")
    assert time.perf_counter() - start < 1
    assert decode_many([mc.png_header_only(10000, 10000)])[0].startswith("refused as a")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # a user turned Pillow's check off
    with pytest.raises(DataError, match="exceeds the 89478485-pixel limit"):
        decode_image(mc.png_header_only(10000, 10000), "bomb.png")


def test_resize_at_decode() -> None:
    assert decode_image(image_bytes("PNG", size=(20, 10)), "x", resize=6).shape == (3, 6, 6)
    assert decode_image(image_bytes("PNG", size=(20, 10)), "x").shape == (3, 10, 20)


def test_bad_image_in_archive_names_archive_and_member(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tar.gz", mc.tar_with(
        {**OK_TREE, "test/b/1.png": b"GIF89a but not really"}, {}, mode="w:gz"))
    with pytest.raises(DataError) as err:
        load_imagefolder(path)
    one_line(err, str(path), "test/b/1.png", "skip_bad_images")


def test_idx_sizes_from_torch_are_native(tmp_path: Path) -> None:
    path = write(tmp_path / "x", mc.idx_bytes((2,), struct.pack(">ii", 1, -2), code=0x0C))
    t = read_idx(path)
    assert t.dtype == torch.int32 and t.tolist() == [1, -2]
    assert idx.IDX_DTYPES[0x0C].byteorder == ">"
