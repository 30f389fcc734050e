"""Trackers read back with their own libraries, and a tracker's failure never costs a run.

Each test trains the tiny synthetic experiment (about a second) with one tracker and
reads what arrived with TensorBoard's event reader, MLflow's client or W&B's record
type, against the run's own metrics.csv. No network: W&B runs offline, MLflow on SQLite.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import tiny_config
from convlab.runs import Run
from convlab.track import TrackerError
from convlab.train.runner import run_experiment

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
pytest.importorskip("wandb", reason="the wandb extra is not installed")

SPLIT_METRICS = ("loss", "top1", "top5")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No tracker may reach a network or the user's own settings."""
    for var in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))


def train(tmp_path: Path, tracking: Any, epochs: int = 2, **kw: Any) -> Run:
    cfg = tiny_config(tracking=tracking, train={"epochs": epochs, "batch_size": 32,
                                                "threads": 1, "log_every": 3})
    return run_experiment(cfg, runs_dir=tmp_path / "runs", quiet=True, **kw)


def csv_values(run: Run) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as ``{"epoch/test/top1": [(epoch, value), ...]}``: the tag names."""
    out: dict[str, list[tuple[int, float]]] = {}
    for r in run.metrics:
        for m in SPLIT_METRICS:
            if r.get(m) not in (None, ""):
                out.setdefault(f"epoch/{r['split']}/{m}", []).append((r["epoch"], r[m]))
    return out


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def assert_intact(run: Run, epochs: int = 2) -> None:
    """The run completed and its folder holds everything a run without trackers has."""
    again = Run.open(run.path)
    assert again.status == "completed"
    assert sorted({r["epoch"] for r in again.metrics}) == list(range(1, epochs + 1))
    assert again.weights_path.exists() and again.config_path.exists()


# ------------------------------------------------------------------ read back


def test_tensorboard_events_equal_metrics_csv(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seen_live: list[list[int]] = []

    def look(epoch: int, splits: Any) -> None:  # what `tensorboard --logdir` sees mid-run
        folder = next((tmp_path / "runs" / "tiny").iterdir()) / "tensorboard"
        live = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        live.Reload()
        seen_live.append([e.step for e in live.Scalars("epoch/test/top1")])

    run = train(tmp_path, ["tensorboard"], epoch_hook=look)
    assert seen_live == [[1], [1, 2]], "flushed as it goes, not at the end"
    ea = EventAccumulator(str(run.tensorboard_dir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    expected = csv_values(run)
    assert set(expected) <= tags
    for tag, rows in expected.items():
        got = [(e.step, e.value) for e in ea.Scalars(tag)]
        assert [s for s, _ in got] == [e for e, _ in rows]
        assert [v for _, v in got] == pytest.approx([v for _, v in rows], rel=1e-6)
    # every logging interval: 256 images / 32 = 8 steps an epoch, logged every 3 and last
    steps = [e.step for e in ea.Scalars("step/train/loss")]
    assert steps == [3, 6, 8, 11, 14, 16]
    assert {"step/lr", "step/images_per_s", "epoch/lr", "epoch/images_per_s"} <= tags
    final = run.summary["final"]
    assert ea.Scalars("final/test/top1")[0].value == pytest.approx(final["test.top1"])
    # the HParams plugin's three summaries, holding the resolved config
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = ea.PluginTagToContent("hparams")
    assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info",
                            "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optim.lr"].number_value == pytest.approx(0.01)
    assert start.hparams["model.name"].string_value == "cnn"


def test_mlflow_client_finds_run_params_metrics_artifacts(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    cfg = tiny_config(description="tiny test", tracking=["mlflow"],
                      train={"epochs": 2, "batch_size": 32, "threads": 1, "log_every": 3})
    run = run_experiment(cfg, runs_dir=tmp_path / "runs", quiet=True)
    db = tmp_path / "runs" / "mlflow.db"
    assert db.exists(), "the default store is SQLite beside the runs"
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("tiny")
    found = client.search_runs([exp.experiment_id])
    assert len(found) == 1
    mr = found[0]
    assert mr.info.status == "FINISHED"
    assert mr.data.tags["status"] == "completed"
    assert mr.data.tags["convlab.run"] == f"tiny/{run.path.name}"
    assert mr.info.run_name == f"tiny test ({run.path.name})"
    assert mr.data.tags["description"] == "tiny test"
    assert mr.data.params["optim.lr"] == "0.01"
    assert mr.data.params["model.name"] == "cnn"
    for tag, rows in csv_values(run).items():
        hist = sorted((m.step, m.value) for m in client.get_metric_history(mr.info.run_id, tag))
        assert hist == [(e, pytest.approx(v)) for e, v in rows]
    steps = [m.step for m in client.get_metric_history(mr.info.run_id, "step/train/loss")]
    assert sorted(steps) == [3, 6, 8, 11, 14, 16]
    artifacts = {a.path for a in client.list_artifacts(mr.info.run_id)}
    assert {"config.yaml", "summary.json", "model.safetensors"} <= artifacts
    # the artifact store is hidden beside the database: listing runs does not see it
    from convlab.runs import list_runs

    assert [r.path for r in list_runs(tmp_path / "runs")] == [run.path]


def test_wandb_offline_run_holds_history_config_summary(tmp_path: Path) -> None:
    from track.wandb_log import read_run

    run = train(tmp_path, [{"name": "wandb", "project": "proj", "entity": "me"}])
    files = list((run.path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, "offline by default: a run directory for `wandb sync`"
    wb = read_run(files[0])
    assert (wb["run"]["project"], wb["run"]["entity"]) == ("proj", "me")
    assert wb["config"]["optim"]["lr"] == pytest.approx(0.01)
    for tag, rows in csv_values(run).items():
        got = [(h["epoch"], h[tag]) for h in wb["history"] if tag in h]
        assert got == [(e, pytest.approx(v)) for e, v in rows]
    assert [h["_step"] for h in wb["history"] if "step/train/loss" in h] == \
        [3, 6, 8, 11, 14, 16]
    assert wb["summary"]["status"] == "completed"
    assert wb["summary"]["final/test/top1"] == pytest.approx(run.summary["final"]["test.top1"])


# ------------------------------------------------------------------ refusals


def test_unknown_tracker_and_bad_setting_are_config_errors(tmp_path: Path) -> None:
    from convlab.config import load_config
    from convlab.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown tracker 'tb'"):
        load_config(tiny_config(tracking=["tb"]))
    with pytest.raises(ConfigError, match=r"tracking\.0\.wandb\.projekt: unknown key"):
        load_config(tiny_config(tracking=[{"name": "wandb", "projekt": "x"}]))
    cfg = load_config("synthetic-smoke", ["tracking=[tensorboard]"])
    assert [t.name for t in cfg.tracking] == ["tensorboard"]
    assert cfg.config_hash() == load_config("synthetic-smoke").config_hash()


def test_missing_package_is_one_line_exit_2_before_training(tmp_path: Path) -> None:
    """``wandb`` hidden from the interpreter, as on a machine without the extra."""
    code = ("import sys; sys.modules['wandb'] = None; from convlab.cli import main; "
            "sys.argv = ['convlab', 'run', 'synthetic-smoke', '--set', 'tracking=[wandb]', "
            "'--runs-dir', sys.argv[1]]; main()")
    runs = tmp_path / "runs"
    p = subprocess.run([sys.executable, "-c", code, str(runs)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "tracking: wandb needs the wandb package: pip install 'convlab[wandb]'" in lines[0]
    assert not runs.exists(), "refused before any run folder or training"


def test_missing_package_in_python_raises_tracker_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(TrackerError, match=r"pip install 'convlab\[mlflow\]'"):
        train(tmp_path, ["mlflow"])
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ failures mid-run


def test_tensorboard_storage_failing_mid_run_is_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The event file's storage turns read-only after epoch 1. An open file stays
    writable after a chmod (and root ignores modes), so the storage's answer is put
    where TensorBoard's writer thread meets the disk: its record writer."""
    from tensorboard.summary.writer import record_writer

    def read_only(epoch: int, splits: Any) -> None:
        if epoch == 1:
            def refuse(self: Any, data: bytes) -> None:
                raise OSError(errno.EROFS, "Read-only file system")
            monkeypatch.setattr(record_writer.RecordWriter, "write", refuse)

    run = train(tmp_path, ["tensorboard"], epoch_hook=read_only)
    lines = stderr_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: tensorboard tracking failed (OSError")
    assert "Read-only file system" in lines[0]
    assert f"convlab export {run.path} --to tensorboard" in lines[0]
    assert_intact(run)


def test_mlflow_database_locked_mid_run_is_one_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another process holds an exclusive lock on mlflow.db from epoch 1 on."""
    holder: list[sqlite3.Connection] = []

    def lock(epoch: int, splits: Any) -> None:
        if epoch == 1:
            con = sqlite3.connect(tmp_path / "runs" / "mlflow.db", isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            holder.append(con)

    try:
        run = train(tmp_path, ["mlflow"], epoch_hook=lock)
    finally:
        for con in holder:
            con.close()
    lines = stderr_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: mlflow tracking failed")
    assert "locked" in lines[0]
    assert_intact(run)


def test_wandb_that_cannot_start_is_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Online mode asked for, no API key anywhere: W&B refuses to start."""
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc with a key
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    run = train(tmp_path, ["wandb", "tensorboard"])
    lines = stderr_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: wandb tracking failed to start")
    assert_intact(run)
    assert list(run.tensorboard_dir.glob("events.*")), "the other tracker still ran"


def test_no_tracking_costs_nothing(tmp_path: Path) -> None:
    run = train(tmp_path, [], epochs=1)
    assert not run.tensorboard_dir.exists() and not run.tracking_path.exists()
    assert not (tmp_path / "runs" / "mlflow.db").exists()
    assert "tracking" not in run.config_path.read_text()
    assert os.listdir(tmp_path / "runs") == ["tiny"]


def test_a_resumed_run_continues_its_tracked_runs(tmp_path: Path) -> None:
    """Interrupted after epoch 1 (SIGINT: checkpoint, status interrupted), resumed: the
    TensorBoard curves hold each epoch once, MLflow still one run, now FINISHED."""
    import signal

    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from convlab.train.runner import resume_run

    def interrupt(epoch: int, splits: Any) -> None:
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    first = train(tmp_path, ["tensorboard", "mlflow"], epochs=3, epoch_hook=interrupt)
    assert first.status == "interrupted"
    run = resume_run(first.path, quiet=True)
    assert run.status == "completed"
    ea = EventAccumulator(str(run.tensorboard_dir), size_guidance={"scalars": 0})
    ea.Reload()
    assert [e.step for e in ea.Scalars("epoch/test/top1")] == [1, 2, 3]
    assert [e.step for e in ea.Scalars("step/train/loss")] == [3, 6, 8, 11, 14, 16, 19, 22, 24]
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert len(found) == 1 and found[0].info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(
        found[0].info.run_id, "epoch/test/top1")) == [1, 2, 3]


def test_hparams_tab_compares_trials(tmp_path: Path) -> None:
    """TensorBoard itself, served on localhost from the runs folder, lists two runs of
    different learning rates as two session groups with their final metrics."""
    import json
    import threading
    import urllib.request

    from tensorboard import program

    for lr in (0.01, 0.02):
        cfg = tiny_config(optim={"name": "adam", "lr": lr}, tracking=["tensorboard"],
                          train={"epochs": 1, "batch_size": 64, "threads": 1})
        run_experiment(cfg, runs_dir=tmp_path / "runs", quiet=True)
    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", str(tmp_path / "runs"), "--host", "127.0.0.1",
                       "--port", "0", "--load_fast", "false"])
    server = tb._make_server()  # launch() would keep no handle to stop it with
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = server.get_url()

    def post(path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(f"{url}data/plugin/hparams/{path}",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:  # localhost only
            return json.load(r)

    try:
        groups = post("session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"],
            "colParams": [{"hparam": "optim.lr", "order": "ORDER_ASC"}],
            "startIndex": 0, "sliceSize": 10})["sessionGroups"]
    finally:
        server.shutdown()
        server.server_close()
    assert [g["hparams"]["optim.lr"] for g in groups] == [0.01, 0.02]
    for g in groups:
        metrics = {m["name"]["tag"]: m["value"] for m in g["metricValues"]}
        assert 0 <= metrics["final/test/top1"] <= 1 and "final/test/loss" in metrics
