"""``convlab export``: run folders that already exist, sent to each tracker and read back
with its own library; a second export sends nothing twice; a partial copy is replaced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import tiny_config
from convlab.config import MlflowTracking, TensorBoardTracking, WandbTracking
from convlab.report.data import find_runs
from convlab.runs import Run
from convlab.track import mark
from convlab.track.export import export_runs, replay_events
from convlab.train.runner import run_experiment

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
pytest.importorskip("wandb", reason="the wandb extra is not installed")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Run]:
    """Two finished runs without trackers (different learning rates)."""
    runs = []
    for lr in (0.01, 0.02):
        cfg = tiny_config(optim={"name": "adam", "lr": lr},
                          train={"epochs": 2, "batch_size": 32, "threads": 1, "log_every": 3})
        runs.append(run_experiment(cfg, runs_dir=tmp_path / "runs", quiet=True))
    return runs


def epoch_values(run: Run) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for r in run.metrics:
        for m in ("loss", "top1"):
            out.setdefault(f"epoch/{r['split']}/{m}", []).append((r["epoch"], r[m]))
    return out


def export(paths: list[Path], spec: Any) -> list[str]:
    return [e.outcome for e in export_runs(find_runs(paths), spec)]


def test_replay_orders_steps_and_epochs_as_a_live_run(two_runs: list[Run]) -> None:
    events = list(replay_events(two_runs[0]))
    assert [(k, s) for k, s, _, _ in events] == [
        ("step", 3), ("step", 6), ("step", 8), ("epoch", 8),
        ("step", 11), ("step", 14), ("step", 16), ("epoch", 16)]
    steps = two_runs[0].steps
    assert [sc["step/train/loss"] for k, _, _, sc in events if k == "step"] == \
        pytest.approx(steps["train_loss"])


def test_tensorboard_export_reads_back_and_is_idempotent(
        two_runs: list[Run], tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = TensorBoardTracking()
    assert export([tmp_path / "runs"], spec) == ["sent", "sent"]
    assert export([tmp_path / "runs"], spec) == ["skipped", "skipped"]
    for run in two_runs:
        files = list(run.tensorboard_dir.glob("events.out.tfevents.*"))
        assert len(files) == 1, "exporting twice writes no second event file"
        ea = EventAccumulator(str(run.tensorboard_dir), size_guidance={"scalars": 0})
        ea.Reload()
        for tag, rows in epoch_values(run).items():
            assert [(e.step, e.value) for e in ea.Scalars(tag)] == \
                [(ep, pytest.approx(v, rel=1e-6)) for ep, v in rows]
        assert [e.value for e in ea.Scalars("step/train/loss")] == \
            pytest.approx(run.steps["train_loss"], rel=1e-6)


def test_tensorboard_log_dir_holds_a_folder_per_run(two_runs: list[Run], tmp_path: Path) -> None:
    export([tmp_path / "runs"], TensorBoardTracking(log_dir=tmp_path / "tb"))
    assert sorted(p.relative_to(tmp_path / "tb").parent.as_posix()
                  for p in (tmp_path / "tb").rglob("events.out.tfevents.*")) == \
        sorted(f"tiny/{r.path.name}" for r in two_runs)


def test_partial_copy_is_replaced(two_runs: list[Run], tmp_path: Path) -> None:
    """A live tracker that failed mid-run left a partial event file: export replaces it."""
    run = two_runs[0]
    run.tensorboard_dir.mkdir()
    (run.tensorboard_dir / "events.out.tfevents.1.host.1").write_bytes(b"partial")
    mark(run, "tensorboard", log_dir=str(run.tensorboard_dir), done=False)
    assert export([run.path], TensorBoardTracking()) == ["sent"]
    files = list(run.tensorboard_dir.glob("events.out.tfevents.*"))
    assert len(files) == 1 and files[0].read_bytes() != b"partial"


def test_mlflow_export_finds_runs_once(two_runs: list[Run], tmp_path: Path) -> None:
    from mlflow import MlflowClient

    spec = MlflowTracking()
    assert export([tmp_path / "runs"], spec) == ["sent", "sent"]
    assert export([tmp_path / "runs"], spec) == ["skipped", "skipped"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    found = client.search_runs([exp.experiment_id])
    assert len(found) == 2, "no duplicates after a second export"
    by_key = {r.data.tags["convlab.run"]: r for r in found}
    for run in two_runs:
        mr = by_key[f"tiny/{run.path.name}"]
        assert mr.info.status == "FINISHED"
        assert float(mr.data.params["optim.lr"]) == run.config.optim.lr
        for tag, rows in epoch_values(run).items():
            hist = sorted((m.step, m.value) for m in client.get_metric_history(
                mr.info.run_id, tag))
            assert hist == [(ep, pytest.approx(v)) for ep, v in rows]


def test_a_live_tracked_run_is_not_sent_again(tmp_path: Path) -> None:
    cfg = tiny_config(tracking=["mlflow"])
    run = run_experiment(cfg, runs_dir=tmp_path / "runs", quiet=True)
    assert export([run.path], MlflowTracking()) == ["skipped"]


def test_wandb_export_offline_once(two_runs: list[Run], tmp_path: Path) -> None:
    from track.wandb_log import read_run

    spec = WandbTracking()
    assert export([tmp_path / "runs"], spec) == ["sent", "sent"]
    assert export([tmp_path / "runs"], spec) == ["skipped", "skipped"]
    for run in two_runs:
        files = list((run.path / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(files) == 1
        history = read_run(files[0])["history"]
        got = [(h["epoch"], h["epoch/test/top1"]) for h in history if "epoch/test/top1" in h]
        assert got == [(ep, pytest.approx(v)) for ep, v in epoch_values(run)["epoch/test/top1"]]


def test_cli_export_lines_and_missing_package(two_runs: list[Run], tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    p = subprocess.run([sys.executable, "-m", "convlab.cli", "export", runs, "--to",
                        "tensorboard"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "tensorboard: 2 sent, 0 already there"
    code = ("import sys; sys.modules['mlflow'] = None; from convlab.cli import main; "
            "sys.argv = ['convlab', 'export', sys.argv[1], '--to', 'mlflow']; main()")
    p = subprocess.run([sys.executable, "-c", code, runs], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: tracking: mlflow needs the mlflow package: "
                                "pip install 'convlab[mlflow]'")
    assert not (tmp_path / "runs" / "mlflow.db").exists()
