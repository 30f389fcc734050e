"""Eight training processes at once under one runs folder, watched while they run.

Four of them train the very same config (same experiment, same config hash: the same
folder name stem within the same second, so ``Run.create`` has to pick distinct names
under contention), four train other seeds. While they run, ``list_runs`` is polled as
fast as it goes: a run must never be shown ``completed`` before its weights and metrics
are complete and loadable. Afterwards every folder is complete, each process wrote
exactly one folder, its own, and the four identical configs gave identical results.

The processes are forked from a fork server that has imported torch once
(``_train_child.py``): eight fresh interpreters would cost 20-60 s of import here.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import tiny_config, train_child
from convlab.config import load_config
from convlab.runs import list_runs
from convlab.train.runner import config_hash

tc = train_child()

PROCESSES = 8
SEEDS = [0, 0, 0, 0, 1, 2, 3, 4]
EPOCHS = 2


def config(seed: int) -> dict[str, Any]:
    return tiny_config(
        seed=seed,
        train={"epochs": EPOCHS, "batch_size": 32, "threads": 1, "deterministic": True,
               "checkpoint_every": 3},
        data={"dataset": "synthetic", "synthetic": {"shape": [1, 12, 12], "classes": 4,
                                                    "train_size": 128, "test_size": 32}},
    )


def test_eight_processes_share_a_runs_dir(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert len(SEEDS) == PROCESSES
    server = tc.fork_server()
    runs = tmp_path / "runs"
    paths = {seed: tc.write_config(tmp_path / f"seed{seed}.yaml", config(seed))
             for seed in set(SEEDS)}
    server.request({"cmd": "poll"})  # the server is up before the clock starts
    t0 = time.monotonic()
    pids = [server.start(["run", str(paths[seed]), "--runs-dir", str(runs), "-q"],
                         tmp_path / f"proc{i}.log", env={"CONVLAB_TEST_SLOW_WRITE": "0.01"})
            for i, seed in enumerate(SEEDS)]

    # Watch while they run.
    violations: dict[Path, list[str]] = {}
    seen: Counter[str] = Counter()
    polls = 0
    exited: dict[int, int] = {}
    deadline = time.monotonic() + 180
    while len(exited) < PROCESSES:
        assert time.monotonic() < deadline, "the processes did not finish in 180 s"
        exited = {p: c for p, c in server.poll().items() if p in pids}
        for run in list_runs(runs):
            polls += 1
            seen[run.status] += 1
            if run.status == "completed" and run.path not in violations:
                problems = tc.complete_run_problems(run.path, EPOCHS)
                if problems:
                    violations[run.path] = problems
            elif run.status not in ("running", "incomplete", "completed"):
                violations.setdefault(run.path, []).append(f"status {run.status!r}")
        time.sleep(0.002)  # leave the cores to the runs
    wall = time.monotonic() - t0
    renamed = sum(len(p.name.split("-")) > 3 for p in (runs / "tiny").iterdir())
    with capsys.disabled():
        print(f"\n[parallel] {PROCESSES} processes in {wall:.1f} s, {renamed} folder names "
              f"de-duplicated; {polls} run readings while they ran: {dict(seen)}")

    assert not violations, violations
    assert [exited[p] for p in pids] == [0] * PROCESSES, [
        (tmp_path / f"proc{i}.log").read_text() for i, p in enumerate(pids) if exited[p]]

    # Each process reports one folder; the folders are distinct and all there is.
    folders = []
    for i in range(PROCESSES):
        lines = (tmp_path / f"proc{i}.log").read_text().splitlines()
        assert len(lines) == 1 and lines[0].startswith("run folder: "), lines
        folders.append(Path(lines[0].removeprefix("run folder: ")))
    assert len(set(folders)) == PROCESSES, folders
    assert [p.name for p in runs.iterdir()] == ["tiny"]
    assert set((runs / "tiny").iterdir()) == set(folders)

    # Each folder is complete, holds its own process's config, and nothing half-written.
    by_seed: dict[int, list[Path]] = {}
    for seed, folder in zip(SEEDS, folders, strict=True):
        assert tc.complete_run_problems(folder, EPOCHS) == [], folder
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert yaml.safe_load((folder / "config.yaml").read_text())["seed"] == seed
        assert summary["config_hash"] == config_hash(load_config(paths[seed]))
        assert folder.name.split("-")[2] == summary["config_hash"][:8]
        assert json.loads((folder / "env.json").read_text())["seed"] == seed
        assert (folder / "normalizer.safetensors").is_file()
        tc.load_checkpoint_files(folder)
        assert len(list((folder / "checkpoint").glob("model-*.safetensors"))) == 1
        assert tc.temp_files(folder) == []
        by_seed.setdefault(seed, []).append(folder)
    assert tc.temp_files(runs) == []

    # Running side by side changes no number: same config, same metrics and weights.
    first, *rest = by_seed[0]
    for other in rest:
        assert tc.metric_rows(other) == tc.metric_rows(first)
        assert tc.same_weights(other / "model.safetensors", first / "model.safetensors")
    assert len({tuple(tc.metric_rows(by_seed[s][0])) for s in by_seed}) == len(by_seed)
