"""The command line: exit codes, one-line errors, and the commands' output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import tiny_config

CLI = [sys.executable, "-m", "convlab.cli"]


def convlab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_writes_folder_and_prints_epoch_lines(tmp_path: Path) -> None:
    path = write(tmp_path, tiny_config())
    out = convlab("run", str(path), "--runs-dir", str(tmp_path / "runs"),
                  "--set", "train.epochs=1")
    assert out.returncode == 0, out.stderr
    assert "epoch 1/1" in out.stdout and "test: loss" in out.stdout  # plain lines: not a TTY
    assert "completed: test top1" in out.stdout
    folder = Path(out.stdout.strip().splitlines()[-1].split("run folder: ")[1])
    assert json.loads((folder / "summary.json").read_text())["status"] == "completed"
    listing = convlab("runs", "ls", "--runs-dir", str(tmp_path / "runs"))
    assert "completed" in listing.stdout and "tiny" in listing.stdout
    show = convlab("runs", "show", str(folder))
    assert show.returncode == 0 and "test" in show.stdout


def test_quiet_prints_only_the_folder(tmp_path: Path) -> None:
    path = write(tmp_path, tiny_config(train={"epochs": 1, "threads": 1}))
    out = convlab("run", str(path), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert out.returncode == 0 and out.stdout.startswith("run folder: ")
    assert len(out.stdout.strip().splitlines()) == 1


def test_bad_config_is_one_line_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, tiny_config(optim={"name": "adam", "lr": -1}))
    out = convlab("run", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "optim.lr" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_override_and_unknown_example(tmp_path: Path) -> None:
    out = convlab("config", "show", "mnist-quick", "--set", "model.name=nope")
    assert out.returncode == 2 and "unknown model 'nope'" in out.stderr
    out = convlab("run", "no-such-thing")
    assert out.returncode == 2 and "bundled: " in out.stderr


def test_missing_data_is_one_line(tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg["data"] = {"dataset": "mnist", "root": str(tmp_path / "none"), "download": False}
    path = write(tmp_path, cfg)
    out = convlab("run", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert str(tmp_path / "none") in out.stderr


def test_config_show_and_schema() -> None:
    out = convlab("config", "show", "mnist-quick", "--set", "optim.lr=0.3")
    cfg = yaml.safe_load(out.stdout)
    assert cfg["optim"]["lr"] == 0.3 and cfg["model"]["name"] == "mnist-fast"
    schema = json.loads(convlab("config", "schema").stdout)
    assert "train" in schema["properties"]


def test_models_ls_filters() -> None:
    out = convlab("models", "ls", "mlp*")
    assert "mlp-256x2" in out.stdout and "pw1" not in out.stdout
