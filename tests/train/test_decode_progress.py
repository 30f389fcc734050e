"""A visible line while a dataset decodes: the data layer tells a callback how far it is,
the reporter shows it (a transient bar on a terminal, plain lines elsewhere)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from convlab.data.imagefolder import POOL_MIN_IMAGES, decode_many, decode_progress
from convlab.train.progress import PlainReporter


def _png(v: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), v % 256, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("n, workers", [(1500, 1), (POOL_MIN_IMAGES + 100, 2)])
def test_decoding_reports_every_chunk_in_order(n: int, workers: int) -> None:
    datas = [_png(i) for i in range(n)]
    seen: list[tuple[str, int, int]] = []
    with decode_progress(lambda what, done, total: seen.append((what, done, total))):
        out = decode_many(datas, workers=workers, what="digits.zip")
    assert len(out) == n and int(out[-1][0, 0, 0]) == (n - 1) % 256
    assert seen[-1] == ("digits.zip", n, n) and len(seen) == -(-n // 512)
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)
    decode_many(datas[:10], workers=1)  # outside the block: nobody is told
    assert len(seen) == -(-n // 512)


def test_plain_reporter_says_decoding_at_once_then_every_15_seconds() -> None:
    buf, t = io.StringIO(), [0.0]
    rep = PlainReporter(Console(file=buf, width=80), clock=lambda: t[0])
    for done in range(0, 60_001, 512):
        t[0] += 0.5  # 58 s in all
        rep.data_progress("cifar10-jpeg.zip", min(done, 60_000), 60_000)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "decoding cifar10-jpeg.zip 0/60,000 images"
    assert 4 <= len(lines) <= 5 and lines[1].startswith("decoding cifar10-jpeg.zip 15,")
