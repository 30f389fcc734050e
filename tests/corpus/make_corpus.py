"""Write the hostile-file corpus next to this script (run once; the files are committed).

    .venv/bin/python tests/corpus/make_corpus.py

Every file here must make its loader raise ``DataError`` (see README.md). Files are tiny
(the largest, the bombs, are ~70 KB): the point of a bomb is a small file that claims or
inflates to a huge one. The malicious pickles would create the file named by the
environment variable ``CONVLAB_CANARY`` if they were ever unpickled unsafely.
"""

from __future__ import annotations

import builtins
import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def idx_bytes(dims: tuple[int, ...], payload: bytes, code: int = 0x08) -> bytes:
    """An IDX file: magic 00 00 <code> <ndim>, big-endian uint32 dims, payload."""
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) \
        + payload


def png_bytes(size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, "PNG")
    return buf.getvalue()


def noise_image(fmt: str, size: tuple[int, int] = (64, 64)) -> bytes:
    """Random pixels: the compressed data dwarfs the headers, so a cut lands in the data."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (1-bit grey) with a tiny IDAT: a pixel bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grey
    idat = zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) \
        + chunk(b"IEND", b"")


class _Reduce:
    """Pickles as ``func(*args)``: what an attacker's ``__reduce__`` produces."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


CANARY_SHELL = 'touch "$CONVLAB_CANARY"'
CANARY_PY = "import os; open(os.environ['CONVLAB_CANARY'], 'w').write('pwned')"


def legit_batch(n: int = 4) -> dict[str, object]:
    return {"data": np.zeros((n, 3072), np.uint8), "labels": list(range(n))}


def zip_with(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)  # S_IFLNK | 0777: a symbolic link
            zf.writestr(info, target)
    return buf.getvalue()


def tar_with(members: dict[str, bytes], links: dict[str, tuple[bytes, str]],
             mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    return buf.getvalue()


def corpus() -> dict[str, bytes]:
    """File name -> content."""
    png = png_bytes()
    noisy_jpg, noisy_png = noise_image("JPEG"), noise_image("PNG")
    ok_tree = {"train/a/0.png": png, "train/b/0.png": png, "test/a/0.png": png,
               "test/b/0.png": png}
    valid_idx = idx_bytes((10, 28, 28), bytes(10 * 28 * 28))
    bitflipped = bytearray(valid_idx)
    bitflipped[1] ^= 0x80  # magic 00 00 -> 00 80
    tiff = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiff, "TIFF")
    batch = legit_batch()
    return {
        # IDX
        "idx_truncated.idx": valid_idx[: len(valid_idx) // 2],
        "idx_bitflip_header.idx": bytes(bitflipped),
        "idx_dims_exceed_payload.idx": idx_bytes((60000, 28, 28), bytes(100)),
        "idx_payload_exceeds_dims.idx": idx_bytes((2, 2), bytes(5)),
        "idx_huge_claim.idx.gz": gzip.compress(idx_bytes((0xFFFFFFFF,) * 3, b""), mtime=0),
        "idx_gzip_bomb.idx.gz": gzip.compress(
            idx_bytes((10, 28, 28), bytes(50 * 2**20)), compresslevel=9, mtime=0),
        "idx_corrupt_gzip.idx.gz": gzip.compress(valid_idx, mtime=0)[:-12] + b"\xff" * 12,
        # CIFAR pickles: each would create $CONVLAB_CANARY if unpickled with pickle.load
        "cifar_os_system.pkl": pickle.dumps(_Reduce(os.system, CANARY_SHELL), protocol=2),
        "cifar_builtins_exec.pkl": pickle.dumps(_Reduce(builtins.exec, CANARY_PY), protocol=4),
        "cifar_eval_in_batch.pkl": pickle.dumps(
            {**batch, "labels": _Reduce(builtins.eval, f"exec({CANARY_PY!r})")}, protocol=2),
        "cifar_object_dtype.pkl": pickle.dumps(
            {"data": np.array([None, 1], dtype=object), "labels": [0, 1]}, protocol=2),
        "cifar_not_a_pickle.pkl": b"this is not a pickle\n",
        # archives: reading them must refuse the unsafe member
        "zip_slip.zip": zip_with({**ok_tree, "../evil.png": png}),
        "zip_absolute.zip": zip_with({**ok_tree, "/tmp/convlab_evil.png": png}),
        "zip_symlink.zip": zip_with(ok_tree, links={"train/a/link.png": "/etc/passwd"}),
        "zip_bomb.zip": zip_with({**ok_tree, "train/a/big.png": bytes(65 * 2**20)}),
        "tar_symlink_escape.tar": tar_with(
            ok_tree, {"train/a/link.png": (tarfile.SYMTYPE, "../../../../etc/passwd")}),
        "tar_hardlink.tar.gz": tar_with(
            ok_tree, {"train/a/hard.png": (tarfile.LNKTYPE, "/etc/passwd")}, mode="w:gz"),
        "tar_dotdot.tar.gz": tar_with({**ok_tree, "train/../../evil.png": png}, {},
                                      mode="w:gz"),
        # images
        "truncated.jpg": noisy_jpg[: len(noisy_jpg) // 2],
        "truncated.png": noisy_png[: len(noisy_png) // 2],
        "not_an_image.jpg": b"#!/bin/sh\necho this is a shell script, not a JPEG\n",
        "tiff_disguised.png": tiff.getvalue(),
        "bomb_error.png": png_header_only(30000, 30000),  # 900 M pixels: past 2x the limit
        "bomb_warning.png": png_header_only(10000, 10000),  # 100 M: past the limit (warning)
    }


def main() -> None:
    for name, data in corpus().items():
        (HERE / name).write_bytes(data)
        print(f"{len(data):>8}  {name}")


if __name__ == "__main__":
    main()
