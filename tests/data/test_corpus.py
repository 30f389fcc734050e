"""The hostile-file corpus (tests/corpus/, see its README) and fuzzing of every loader.

Each corpus file goes through its low-level reader and through the dataset source a user
would reach it by; both must raise DataError (never another exception, never hang, never
create the canary file). The Hypothesis tests feed random and mutated valid inputs to
each reader: the only allowed outcomes are a result or a DataError. Longer fuzzing:
``CONVLAB_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/data/test_corpus.py -k fuzz``.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import os
import pickle
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from convlab.config import DataConfig
from convlab.data.cifar import parse_cifar_batch, read_cifar_batch, safe_unpickle
from convlab.data.idx import read_idx
from convlab.data.imagefolder import decode_image, load_imagefolder
from convlab.data.sources import load_raw
from convlab.errors import DataError

CORPUS = Path(__file__).parents[1] / "corpus"
CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.suffix not in (".py", ".md")
                      and p.is_file())
TIME_LIMIT_S = 10
FUZZ = settings(
    max_examples=int(os.environ.get("CONVLAB_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mc = _corpus_module()


@pytest.fixture(autouse=True)
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the malicious pickles would write; it must never exist."""
    path = tmp_path / "canary"
    monkeypatch.setenv("CONVLAB_CANARY", str(path))
    monkeypatch.setenv("CONVLAB_CACHE", str(tmp_path / "decoded-cache"))
    yield path
    assert not path.exists(), "a corpus pickle executed code"


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail instead of hanging (SIGALRM: POSIX, main thread)."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"loader ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def expect_data_error(load: Callable[[], object], *names: str) -> str:
    """``load()`` must raise DataError (one line, naming ``names``) within the time limit."""
    with time_limit(TIME_LIMIT_S):
        try:
            load()
        except DataError as e:
            message = str(e)
        else:
            pytest.fail("loaded without error")
    assert "\n" not in message
    for name in names:
        assert name in message, message
    return message


# ------------------------------------------------------------------------ corpus


def test_corpus_is_complete() -> None:
    """Every generated file is present and listed in the README, and nothing else is."""
    generated = sorted(mc.corpus())
    assert [p.name for p in CORPUS_FILES] == sorted(generated)
    readme = (CORPUS / "README.md").read_text()
    for name in generated:
        assert f"`{name}`" in readme, name


def _reader(path: Path) -> Callable[[], object]:
    name = path.name
    if ".idx" in name:
        return lambda: read_idx(path)
    if name.endswith(".pkl"):
        return lambda: read_cifar_batch(path)
    if name.endswith((".zip", ".tar", ".tar.gz")):
        return lambda: load_imagefolder(path, use_cache=False)
    return lambda: decode_image(path.read_bytes(), name)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_file_reader(path: Path) -> None:
    expect_data_error(_reader(path), path.name)


def _valid_idx_dataset(folder: Path) -> None:
    folder.mkdir(parents=True)
    for prefix, n in (("train", 3), ("t10k", 2)):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            mc.idx_bytes((n, 28, 28), bytes(n * 784)))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(mc.idx_bytes((n,), bytes(n)))


def _through_source(path: Path, tmp_path: Path) -> tuple[DataConfig, str]:
    """Place the corpus file where a dataset source finds it; the config that loads it."""
    name, root = path.name, tmp_path / "root"
    if ".idx" in name:
        raw = root / "MNIST" / "raw"
        _valid_idx_dataset(raw)
        target = "train-images-idx3-ubyte" + (".gz" if name.endswith(".gz") else "")
        (raw / "train-images-idx3-ubyte").unlink()
        shutil.copy(path, raw / target)
        return DataConfig(dataset="mnist", root=root, download=False), target
    if name.endswith(".pkl"):
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        valid = pickle.dumps(mc.legit_batch(), protocol=2)
        for batch in ("data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                      "test_batch"):
            (folder / batch).write_bytes(valid)
        shutil.copy(path, folder / "data_batch_1")
        return DataConfig(dataset="cifar10", root=root, download=False), "data_batch_1"
    if name.endswith((".zip", ".tar", ".tar.gz")):
        return DataConfig(dataset="imagefolder", path=path), name
    tree = root / "tree"
    for member, data in {"train/a/0.png": mc.png_bytes(), "train/b/0.png": mc.png_bytes(),
                         "test/a/0.png": mc.png_bytes(), "test/b/0.png": mc.png_bytes(),
                         f"train/a/{name}": path.read_bytes()}.items():
        (tree / member).parent.mkdir(parents=True, exist_ok=True)
        (tree / member).write_bytes(data)
    return DataConfig(dataset="imagefolder", path=tree), f"train/a/{name}"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_file_through_its_source(path: Path, tmp_path: Path) -> None:
    cfg, shown = _through_source(path, tmp_path)
    expect_data_error(lambda: load_raw(cfg), shown)
    if cfg.dataset == "imagefolder" and path.suffix not in (".zip", ".tar", ".gz"):
        with pytest.warns(UserWarning, match=f"skipped train/a/{path.name}"):
            raw = load_raw(cfg.model_copy(update={"skip_bad_images": True}))
        assert len(raw.train) == 2  # the bad image skipped, the rest loaded


def test_no_file_escaped_the_archives(tmp_path: Path) -> None:
    for path in CORPUS_FILES:
        if path.name.startswith(("zip_", "tar_")):
            with contextlib.suppress(DataError):
                load_imagefolder(path, use_cache=False)
    assert not Path("/tmp/convlab_evil.png").exists()
    assert not (CORPUS.parent / "evil.png").exists() and not (CORPUS / "evil.png").exists()


# -------------------------------------------------------------------------- fuzz


@st.composite
def mutated(draw: st.DrawFn, bases: list[bytes]) -> bytes:
    """A valid input with a few bytes flipped, set, inserted or deleted, maybe truncated."""
    data = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[pos:pos + draw(st.integers(1, 8))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def fuzz_input(bases: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), mutated(bases))


@contextlib.contextmanager
def as_file(data: bytes, suffix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        yield path


def only_data_error(load: Callable[[], object]) -> None:
    with time_limit(TIME_LIMIT_S), contextlib.suppress(DataError):
        load()


_IDX_BASES = [
    mc.idx_bytes((3, 4, 4), bytes(range(48))),
    mc.idx_bytes((5,), bytes(5)),
    mc.idx_bytes((2, 3), bytes(24), code=0x0C),
    mc.idx_bytes((2,), bytes(16), code=0x0E),
]
_IDX_BASES += [gzip.compress(b, mtime=0) for b in _IDX_BASES]


@FUZZ
@given(data=fuzz_input(_IDX_BASES))
def test_fuzz_idx(data: bytes) -> None:
    for suffix in ("", ".gz"):
        with as_file(data, suffix) as path:
            only_data_error(lambda path=path: read_idx(path))


def _pickle_bases() -> list[bytes]:
    small = {"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)[:, :3072],
             "labels": [1, 2], "filenames": [b"a.png", "b.png"]}
    bases = [pickle.dumps(small, protocol=p) for p in (0, 2, 4, 5)]
    bases += [pickle.dumps(np.arange(6, dtype=np.float32), protocol=p) for p in (2, 5)]
    bases += [p.read_bytes() for p in CORPUS_FILES if p.suffix == ".pkl"]
    return bases


@FUZZ
@given(data=fuzz_input(_pickle_bases()))
def test_fuzz_pickle(data: bytes) -> None:
    only_data_error(lambda: parse_cifar_batch(safe_unpickle(data, "fuzz"), "fuzz"))


def _tree_archive(kind: str) -> bytes:
    rgb = mc.png_bytes(mode="RGB")
    members = {"train/a/0.png": rgb, "train/b/0.png": mc.png_bytes(mode="L"),
               "test/a/0.png": rgb, "test/b/0.png": rgb}
    if kind == "zip":
        return mc.zip_with(members)
    return mc.tar_with(members, {}, mode="w:gz" if kind == "tar.gz" else "w")


@FUZZ
@given(data=fuzz_input([_tree_archive("zip")]))
def test_fuzz_zip(data: bytes) -> None:
    with as_file(data, ".zip") as path:
        only_data_error(lambda: load_imagefolder(path, use_cache=False))


@FUZZ
@given(data=fuzz_input([_tree_archive("tar"), _tree_archive("tar.gz")]))
def test_fuzz_tar(data: bytes) -> None:
    with as_file(data, ".tar") as path:
        only_data_error(lambda: load_imagefolder(path, use_cache=False))


def _image_bases() -> list[bytes]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
    bases = []
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, fmt)
        bases.append(buf.getvalue())
    return bases


@FUZZ
@given(data=fuzz_input(_image_bases()), resize=st.sampled_from([None, 5]))
def test_fuzz_image(data: bytes, resize: int | None) -> None:
    def load() -> None:
        array = decode_image(data, "fuzz", resize)
        assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[0] in (1, 3)

    only_data_error(load)
