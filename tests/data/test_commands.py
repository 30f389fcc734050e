"""``convlab data ls|show`` and ``convlab cache ls|clear``, through the real entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from convlab.data.spec import DATASETS
from data.fabricate import fabricate_cifar100, tree_files, write_tree


def cli(*args: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setenv("COLUMNS", "200")
    return run_cli(args, capsys, monkeypatch)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVLAB_DATA", str(tmp_path / "data"))


def test_data_ls_lists_every_dataset_and_what_is_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fabricate_cifar100(tmp_path / "data")
    code, out, _ = cli("data", "ls", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert sorted(rows) == DATASETS.list()
    assert str(tmp_path / "data" / "cifar-100-python") in rows["cifar100"]
    assert rows["cifar100"].rstrip("│ ").endswith("yes")
    assert rows["svhn"].rstrip("│ ").endswith("no") and "3x96x96" in rows["stl10"]


def test_data_show_sizes_classes_where_and_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fabricate_cifar100(tmp_path / "data")
    code, out, _ = cli("data", "show", "cifar100", "--set", "label=coarse", "--read",
                       monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, out
    assert "classes (20): aquatic_mammals" in out and "sizes: train 50,000" in out
    assert f"found: {tmp_path / 'data' / 'cifar-100-python'}" in out
    assert "read: train 8, test 4, 3x32x32" in out
    code, _, err = cli("data", "show", "cifar100", "--set", "lable=coarse",
                       monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "did you mean 'label'" in err and err.count("\n") == 1


def test_cache_ls_and_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    path = write_tree(tmp_path / "data" / "pets", tree_files(), "zip")
    code, out, _ = cli("data", "show", "imagefolder", "--set", f"path={path}", "--read",
                       monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "pets_zip-" in out  # its decoded cache file, named after the zip
    code, out, _ = cli("cache", "ls", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "1 file(s)" in out and "pets_zip-" in out
    code, out, _ = cli("cache", "clear", "--yes", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "deleted 1 file(s)" in out
    assert not list((tmp_path / "cache").glob("*.npz"))


def test_data_show_unknown_name_and_user_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli("data", "show", "cifar1000", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "did you mean 'cifar100' or 'cifar10'" in err
    (tmp_path / "mine.py").write_text(
        "import numpy as np\n"
        "def load(n=4):\n"
        "    x, y = np.zeros((n, 5, 5), np.uint8), np.arange(n) % 2\n"
        "    return {'train': (x, y), 'test': (x, y), 'classes': ['no', 'yes']}\n")
    code, out, err = cli("data", "show", f"{tmp_path / 'mine.py'}:load", "--set", "args.n=6",
                         "--read", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert "read: train 6, test 6, 1x5x5, classes (2): no, yes" in out
