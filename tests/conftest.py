"""Shared fixtures: tiny synthetic experiments and the real-data location."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest


def real_data_root() -> Path | None:
    """``$CONVLAB_TEST_DATA`` (CI sets it to ../shared/data), when it holds MNIST."""
    root = os.environ.get("CONVLAB_TEST_DATA")
    if root and (Path(root) / "MNIST" / "raw").is_dir():
        return Path(root)
    return None


def train_child() -> Any:
    """tests/runs/_train_child.py (what the fault and parallel tests run in child
    processes), loaded once per session under one module name so children can pickle
    its functions."""
    name = "_convlab_train_child"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parent / "runs" / "_train_child.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def real_data() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip("real datasets absent: set CONVLAB_TEST_DATA to the shared data folder")
    return root


def tiny_config(**sections: Any) -> dict[str, Any]:
    """A seconds-fast synthetic experiment; keyword sections are merged over it (a model
    section replaces the default one: its keys depend on the builder)."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "data": {
            "dataset": "synthetic",
            "synthetic": {"shape": [1, 12, 12], "classes": 4, "train_size": 256,
                          "test_size": 64},
        },
        "model": {"name": "cnn", "stages": [{"channels": 4}, {"channels": 8}]},
        "optim": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 2, "batch_size": 32, "threads": 1},
    }
    for key, value in sections.items():
        if key != "model" and isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def run_cli(args: Any, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """The real entry point, in-process: (exit code, stdout, stderr)."""
    from convlab.cli import main

    monkeypatch.setattr(sys, "argv", ["convlab", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli("summary", "pw1")`` -> (exit code, stdout, stderr), in-process."""
    return lambda *args: run_cli(args, capsys, monkeypatch)
