"""Run folders: atomic writes, listing, opening broken folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from convlab.errors import RunError
from convlab.runs import Run, atomic_write, list_runs


def test_atomic_write_keeps_old_content_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write(target, "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_create_unique_and_list(tmp_path: Path) -> None:
    a = Run.create(tmp_path, "exp", "abc")
    b = Run.create(tmp_path, "exp", "abc")
    assert a.path != b.path
    a.write_summary(status="completed", epochs=1)
    runs = list_runs(tmp_path)
    assert [r.status for r in runs] == ["completed", "incomplete"]  # b has no summary yet
    assert [r.path for r in list_runs(tmp_path, status="completed")] == [a.path]
    assert list_runs(tmp_path, experiment="other") == []


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such directory"):
        Run.open(tmp_path / "nope")
    with pytest.raises(RunError, match="no summary.json"):
        Run.open(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(RunError, match="not a readable JSON file"):
        Run.open(tmp_path)


def test_read_only_parent_gives_run_error(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop root from writing")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(RunError, match="cannot create the run folder"):
        Run.create(ro, "exp", "x")


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    run = Run.create(tmp_path, "exp", "x")
    run.checkpoint_dir.mkdir()
    (run.path / ".summary.json.tmp-123").write_text("half")
    (run.checkpoint_dir / ".state.pt.tmp-9").write_text("half")
    (run.path / "metrics.csv").write_text("kept")
    assert run.remove_stale_temp_files() == 2
    assert [p.name for p in run.path.rglob("*") if p.is_file()] == ["metrics.csv"]
