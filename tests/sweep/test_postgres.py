"""The multi-machine path for real: two worker processes share a study in PostgreSQL,
one is killed (``kill -9``) in the middle of a trial, and every grid point still
completes exactly once (the heartbeat hands the dead worker's point to the other).

The PostgreSQL server is started from the Debian package's binaries on a free localhost
port (see ``conftest.postgres_url``); without them these tests skip with the reason.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import tiny_config
from convlab.runs import list_runs
from convlab.sweep import plan_sweep

CLI = [sys.executable, "-m", "convlab.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_storage_is_one_line_exit_2_and_creates_nothing(
    tmp_path: Path, write_sweep: Callable[..., Path]
) -> None:
    path = write_sweep(grid={"optim.lr": [0.01]})
    url = f"postgresql://someone:secret@127.0.0.1:{free_port()}/nowhere"
    out = subprocess.run([*CLI, "sweep", str(path), "--storage", url,
                          "--runs-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "--storage postgresql://someone:***@127.0.0.1" in out.stderr
    assert "cannot connect" in out.stderr and "secret" not in out.stderr
    assert not (tmp_path / "runs").exists()


def _study(url: str, name: str) -> optuna.Study:
    storage = optuna.storages.RDBStorage(url)
    return optuna.load_study(study_name=name, storage=storage)


def _wait_for_running_trial(url: str, name: str, pid: int, deadline: float) -> None:
    """Until worker ``pid`` has claimed a trial (its owner record names it)."""
    while time.monotonic() < deadline:
        try:
            trials = _study(url, name).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except KeyError:  # the study does not exist yet
            trials = []
        if any((t.user_attrs.get("convlab.owner") or {}).get("pid") == pid for t in trials):
            return
        time.sleep(0.1)
    pytest.fail(f"worker {pid} never started a trial")


def test_two_workers_one_killed_every_grid_point_completes_once(
    tmp_path: Path, write_sweep: Callable[..., Path], postgres_url: str
) -> None:
    base = tiny_config(train={"epochs": 2, "threads": 1})
    path = write_sweep(name="pgsweep", base=base,
                       grid={"optim.lr": [0.01, 0.005, 0.003, 0.002]})
    keys = set(plan_sweep(path).by_key)
    # every file write sleeps 0.1 s: a trial (14 writes) lasts over a second without
    # using the CPU, long enough to be killed in the middle of
    env = {**os.environ, "CONVLAB_TEST_SLOW_WRITE": "0.1"}

    def worker(machine: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, "sweep", str(path), "--storage", postgres_url, "--heartbeat", "1",
             "--runs-dir", str(tmp_path / machine)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    victim, survivor = worker("machine-a"), worker("machine-b")
    try:
        _wait_for_running_trial(postgres_url, "pgsweep", victim.pid, time.monotonic() + 120)
        victim.kill()  # SIGKILL: no handler runs, the trial stays RUNNING until stale
        victim.wait(timeout=30)
        out, _ = survivor.communicate(timeout=240)
    finally:
        for p in (victim, survivor):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert survivor.returncode == 0, out
    assert "sweep pgsweep: 4 completed" in out

    trials = _study(postgres_url, "pgsweep").get_trials(deepcopy=False)
    completed = collections.Counter(t.user_attrs["convlab.key"] for t in trials
                                    if t.state == TrialState.COMPLETE)
    assert completed == dict.fromkeys(keys, 1)  # each grid point exactly once
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert killed and all(t.user_attrs["convlab.owner"]["pid"] == victim.pid for t in killed)
    assert all("convlab.status" not in t.user_attrs for t in killed)  # died, not failed
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    # the run folders of both "machines": one completed run per point, none twice
    runs = [r for machine in ("machine-a", "machine-b")
            for r in list_runs(tmp_path / machine / "pgsweep" / "runs", status="completed")]
    assert collections.Counter(r.summary["config_hash"] for r in runs) == dict.fromkeys(keys, 1)
    retried = {t.user_attrs["convlab.key"] for t in killed}
    assert all(r.path.is_relative_to(tmp_path / "machine-b") for r in runs
               if r.summary["config_hash"] in retried)
    index = json.loads((tmp_path / "machine-b" / "pgsweep" / "sweep.json").read_text())
    assert index["done"] and index["counts"] == {"completed": 4}
    assert index["storage"].startswith("postgresql://convlab@127.0.0.1")
