"""Sweeps on this machine (journal storage): parallel workers, resume, random, search."""

from __future__ import annotations

import collections
import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

import convlab.train.runner as runner
from convlab.runs import Run, list_runs
from convlab.sweep import SweepError, plan_sweep, run_sweep
from convlab.sweep.execute import pruning_hook
from convlab.sweep.storage import StorageSpec

CLI = [sys.executable, "-m", "convlab.cli"]


def completed_runs(sweep_dir: Path) -> list[Run]:
    return list_runs(sweep_dir / "runs", status="completed")


def trials_of(sweep_dir: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = StorageSpec().open(sweep_dir)
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


@pytest.fixture
def count_trainings(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Counts the trainings a sweep starts in this process; ``fail`` makes the next
    training of a config with that learning rate raise ``fail[lr]`` instead; ``wrap``,
    when set, trains in place of the real ``run_experiment`` (kept in ``real``)."""
    real = runner.run_experiment
    state: dict[str, Any] = {"calls": [], "fail": {}, "real": real, "wrap": None}

    def counting(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        state["calls"].append(cfg.optim.lr)
        exc = state["fail"].pop(cfg.optim.lr, None)
        if exc is not None:
            raise exc
        return (state["wrap"] or real)(cfg, *args, **kwargs)

    monkeypatch.setattr(runner, "run_experiment", counting)
    yield state


def test_two_workers_complete_each_grid_point_once(
    tmp_path: Path, write_sweep: Callable[..., Path]
) -> None:
    path = write_sweep(grid={"optim.lr": [0.01, 0.003]}, seeds=[0, 1])
    lines: list[str] = []
    result = run_sweep(path, workers=2, runs_dir=tmp_path / "runs", echo=lines.append)
    assert result.done and result.counts == {"completed": 4}
    sweep_dir = tmp_path / "runs" / "tinysweep"
    assert result.folder == sweep_dir
    runs = completed_runs(sweep_dir)
    plan = plan_sweep(path)
    # threads were already 1, so each run's config is exactly its planned config
    assert sorted(r.summary["config_hash"] for r in runs) == sorted(plan.by_key)
    assert all(r.env["threads"] == 1 for r in runs)
    assert all(r.path.parent == sweep_dir / "runs" / "tiny" for r in runs)
    trials = trials_of(sweep_dir, "tinysweep")
    assert sorted(t.user_attrs["convlab.key"] for t in trials
                  if t.state == optuna.trial.TrialState.COMPLETE) == sorted(plan.by_key)
    assert "2 workers, at most 1 thread each" in lines[0]
    index = json.loads((sweep_dir / "sweep.json").read_text())
    assert index["done"] and index["counts"] == {"completed": 4} and index["planned"] == 4
    assert {r["run"] for r in index["trials"]} == {str(r.path) for r in runs}
    with open(sweep_dir / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["index"], r["optim.lr"], r["seed"]) for r in rows] == [
        ("1", "0.01", "0"), ("2", "0.01", "1"), ("3", "0.003", "0"), ("4", "0.003", "1")]
    assert (sweep_dir / "sweep.yaml").exists() and (sweep_dir / "optuna.journal").exists()


def test_a_killed_worker_process_gives_its_point_to_another(
    tmp_path: Path, write_sweep: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Journal storage: a dead worker is seen in the process table (same machine)."""
    path = write_sweep(name="killed", grid={"optim.lr": [0.01, 0.003]}, seeds=[0, 1])
    sweep_dir = tmp_path / "runs" / "killed"
    monkeypatch.setenv("CONVLAB_TEST_SLOW_WRITE", "0.1")  # trials last seconds, idle
    victims: list[int] = []

    def kill_first_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not victims:
            with contextlib.suppress(Exception):  # the journal may not exist yet
                for t in trials_of(sweep_dir, "killed"):
                    owner = t.user_attrs.get("convlab.owner")
                    if t.state == optuna.trial.TrialState.RUNNING and owner:
                        os.kill(owner["pid"], signal.SIGKILL)
                        victims.append(owner["pid"])
                        return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_first_trial)
    killer.start()
    lines: list[str] = []
    result = run_sweep(path, workers=2, runs_dir=tmp_path / "runs", echo=lines.append)
    killer.join()
    assert victims and any("exited with code -9" in line for line in lines)
    assert result.done and result.counts == {"completed": 4}
    trials = trials_of(sweep_dir, "killed")
    done = collections.Counter(t.user_attrs["convlab.key"] for t in trials
                               if t.state == optuna.trial.TrialState.COMPLETE)
    assert done == dict.fromkeys(plan_sweep(path).by_key, 1)
    dead = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.user_attrs["convlab.owner"]["pid"] for t in dead] == victims
    assert len(completed_runs(sweep_dir)) == 4


def test_resume_skips_completed_and_reruns_failed_and_interrupted(
    tmp_path: Path, write_sweep: Callable[..., Path], count_trainings: dict[str, Any]
) -> None:
    path = write_sweep(grid={"optim.lr": [0.01, 0.005, 0.003]})
    runs_dir = tmp_path / "runs"
    count_trainings["fail"] = {0.005: RuntimeError("boom")}
    first = run_sweep(path, runs_dir=runs_dir, echo=None)
    assert count_trainings["calls"] == [0.01, 0.005, 0.003]
    assert not first.done and first.counts == {"completed": 2, "failed": 1}
    failed = next(r for r in first.rows if r["status"] == "failed")
    assert failed["error"] == "RuntimeError: boom"

    count_trainings["calls"].clear()
    second = run_sweep(path, runs_dir=runs_dir, echo=None)
    assert count_trainings["calls"] == [0.005]  # only the failed point
    assert second.done and second.counts == {"completed": 3}
    assert next(r for r in second.rows if r["params"]["optim.lr"] == 0.005)["attempts"] == 2

    count_trainings["calls"].clear()
    third = run_sweep(path, runs_dir=runs_dir, echo=None)
    assert count_trainings["calls"] == [] and third.done
    assert len(completed_runs(runs_dir / "tinysweep")) == 3

    # an edited sweep (one more value) under the same name runs only the new point, and
    # a Ctrl-C (KeyboardInterrupt) leaves it "interrupted" for the next run to redo
    path = write_sweep(grid={"optim.lr": [0.01, 0.005, 0.003, 0.002]})
    count_trainings["calls"].clear()
    count_trainings["fail"] = {0.002: KeyboardInterrupt()}
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, runs_dir=runs_dir, echo=None)
    index = json.loads((runs_dir / "tinysweep" / "sweep.json").read_text())
    assert index["counts"] == {"completed": 3, "interrupted": 1}
    count_trainings["calls"].clear()
    fourth = run_sweep(path, runs_dir=runs_dir, echo=None)
    assert count_trainings["calls"] == [0.002] and fourth.done


def test_resume_after_the_whole_sweep_was_killed(
    tmp_path: Path, write_sweep: Callable[..., Path], count_trainings: dict[str, Any]
) -> None:
    """A trial left RUNNING by a process that no longer exists is failed and rerun."""
    from convlab.sweep.execute import _prepare
    from convlab.sweep.storage import machine_id

    path = write_sweep(grid={"optim.lr": [0.01, 0.003]})
    plan, spec = plan_sweep(path), StorageSpec()
    sweep_dir = tmp_path / "runs" / "tinysweep"
    sweep_dir.mkdir(parents=True)
    _prepare(plan, spec, sweep_dir)  # as the killed run did: both points queued...
    storage = spec.open(sweep_dir)
    study_id = storage.get_study_id_from_name("tinysweep")
    waiting = storage.get_all_trials(study_id, states=(optuna.trial.TrialState.WAITING,))
    dead = 4_194_304 + 1  # above Linux's largest PID: no such process
    assert storage.set_trial_state_values(waiting[0]._trial_id, optuna.trial.TrialState.RUNNING)
    storage.set_trial_user_attr(waiting[0]._trial_id, "convlab.owner", {
        "host": "here", "machine": machine_id(), "pid": dead, "start": "1", "worker": ""})
    # ...and one was being trained when the machine went down
    result = run_sweep(path, runs_dir=tmp_path / "runs", echo=None)
    assert result.done and result.counts == {"completed": 2}
    assert sorted(count_trainings["calls"]) == [0.003, 0.01]
    states = sorted(t.state.name for t in trials_of(sweep_dir, "tinysweep"))
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]


def test_random_search_runs_exactly_the_drawn_trials(
    tmp_path: Path, write_sweep: Callable[..., Path]
) -> None:
    path = write_sweep(name="rnd", random={"optim.lr": {"loguniform": ["1e-3", 3e-2]},
                                           "trials": 3, "seed": 1})
    result = run_sweep(path, runs_dir=tmp_path / "runs", echo=None)
    assert result.done and result.counts == {"completed": 3}
    runs = completed_runs(tmp_path / "runs" / "rnd")
    lrs = sorted(r.config.optim.lr for r in runs)
    assert lrs == sorted(t.params["optim.lr"] for t in plan_sweep(path).trials)
    assert all(1e-3 <= lr <= 3e-2 for lr in lrs)


def test_tpe_search_with_median_pruning(tmp_path: Path, write_sweep: Callable[..., Path]) -> None:
    from conftest import tiny_config

    base = tiny_config(data={"val_fraction": 0.25}, train={"epochs": 3, "threads": 1})
    search = {"optim.name": {"choice": ["adam"]}, "startup_trials": 1, "metric": "val.top1"}
    # one good trial first, then (the same study, an edited space) hopeless ones: the
    # median pruner must stop those after their first epoch, whatever TPE would pick
    good = write_sweep(name="tpe", base=base, search={
        **search, "optim.lr": {"loguniform": [0.01, 0.03]}, "trials": 1})
    first = run_sweep(good, runs_dir=tmp_path / "runs", echo=None)
    assert first.done and first.counts == {"completed": 1}
    bad = write_sweep(name="tpe", base=base, search={
        **search, "optim.lr": {"loguniform": [1e-9, 2e-9]}, "trials": 3})
    lines: list[str] = []
    result = run_sweep(bad, runs_dir=tmp_path / "runs", echo=lines.append)
    assert "TPE search on val.top1, maximize), 1 done already" in lines[0]
    assert result.done and result.counts == {"completed": 1, "pruned": 2}
    sweep_dir = tmp_path / "runs" / "tpe"
    trials = trials_of(sweep_dir, "tpe")
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "PRUNED"]
    assert len(trials[0].intermediate_values) == 3  # val.top1 reported every epoch
    assert all(list(t.intermediate_values) == [1] for t in trials[1:])  # stopped after one
    for r in result.rows[1:]:
        run = Run.open(r["run"])
        assert run.status == "pruned" and "pruned by the sweep after epoch 1: val.top1" \
            in run.summary["message"]
        assert run.summary["epochs_done"] == 1 and run.weights_path.exists()
    best = json.loads((sweep_dir / "sweep.json").read_text())["best"]
    assert best["index"] == 1 and 0.01 <= best["params"]["optim.lr"] <= 0.03


def test_pruning_hook_reports_each_epoch_and_stops_when_optuna_says_so() -> None:
    class FakeTrial:
        def __init__(self) -> None:
            self.reported: list[tuple[float, int]] = []

        def report(self, value: float, step: int) -> None:
            self.reported.append((value, step))

        def should_prune(self) -> bool:
            return len(self.reported) >= 2

    trial = FakeTrial()
    hook = pruning_hook(trial, "val.loss", "minimize")  # type: ignore[arg-type]
    splits = {"train": {"loss": 1.0}, "val": {"loss": 0.5, "top1": 0.9}}
    assert hook(1, splits) is None
    assert hook(2, {"train": {"loss": 1.0}, "val": {"loss": float("nan")}}) is None  # skipped
    assert hook(3, splits) == ("pruned by the sweep after epoch 3: val.loss 0.5 above the "
                               "median of earlier trials at that epoch")
    assert trial.reported == [(0.5, 1), (0.5, 3)]


def test_an_interrupted_trial_goes_on_from_its_checkpoint(
    tmp_path: Path, write_sweep: Callable[..., Path], count_trainings: dict[str, Any]
) -> None:
    """Ctrl-C in epoch 2 of a grid trial; the next invocation resumes that run folder
    (not a new one) and ends with the metrics of a training that was never stopped."""
    from conftest import tiny_config

    base = tiny_config(train={"epochs": 3, "threads": 1, "deterministic": True})
    path = write_sweep(name="cut", base=base, grid={"optim.lr": [0.01]})
    real = count_trainings["real"]

    def interrupted(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        def hook(epoch: int, splits: Any) -> None:  # the loop then stops inside epoch 2
            os.kill(os.getpid(), signal.SIGINT)

        return real(cfg, *args, **{**kwargs, "epoch_hook": hook})

    count_trainings["wrap"] = interrupted
    lines: list[str] = []
    first = run_sweep(path, runs_dir=tmp_path / "runs", echo=lines.append)
    assert first.interrupted and first.counts == {"interrupted": 1}
    cut = Run.open(first.rows[0]["run"])
    assert cut.status == "interrupted" and cut.summary["epochs_done"] == 1

    count_trainings["wrap"] = None
    lines.clear()
    second = run_sweep(path, runs_dir=tmp_path / "runs", echo=lines.append)
    assert second.done and second.counts == {"completed": 1}
    assert count_trainings["calls"] == [0.01]  # trained from scratch once, then resumed
    assert any(f"trial 1: resuming {cut.path} from its checkpoint" in line for line in lines)
    assert [r.path for r in list_runs(tmp_path / "runs" / "cut" / "runs")] == [cut.path]
    done = Run.open(cut.path)
    assert done.status == "completed" and second.rows[0]["run"] == str(cut.path)
    whole = runner.run_experiment(done.config, runs_dir=tmp_path / "plain", quiet=True)
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in whole.metrics]
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in done.metrics] == strip


def test_cli_sweep_and_its_one_line_errors(tmp_path: Path,
                                           write_sweep: Callable[..., Path]) -> None:
    good = write_sweep(name="cli", grid={"optim.lr": [0.01]}, seeds=[0])
    out = subprocess.run([*CLI, "sweep", str(good), "--runs-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "[1/1] completed" in out.stdout and "sweep cli: 1 completed" in out.stdout

    bad = write_sweep(name="bad", grid={"optim.lrr": [0.1]})
    out = subprocess.run([*CLI, "sweep", str(bad), "--runs-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "grid.optim.lrr: not a key of experiment 'tiny'" in out.stderr
    assert not (tmp_path / "runs" / "bad").exists()


def test_a_different_sweep_cannot_take_over_a_busy_study(
    tmp_path: Path, write_sweep: Callable[..., Path]
) -> None:
    path = write_sweep(grid={"optim.lr": [0.01]})
    run_sweep(path, runs_dir=tmp_path / "runs", echo=None)
    search = write_sweep(search={"optim.lr": {"uniform": [0.01, 0.02]}, "trials": 1,
                                 "metric": "test.loss"})
    with pytest.raises(SweepError, match="direction maximize; this sweep wants minimize"):
        run_sweep(search, runs_dir=tmp_path / "runs", echo=None)
    search = write_sweep(search={"optim.lr": {"uniform": [0.01, 0.02]}, "trials": 1,
                                 "metric": "test.top1"})
    with pytest.raises(SweepError, match="holds a grid sweep, this file is a search"):
        run_sweep(search, runs_dir=tmp_path / "runs", echo=None)
