"""runs ls: plain runs, a sweep's trials and a study's groups, each listed once, grouped;
report/ and runs/ folders are never runs; the table fits 80 columns without cutting ids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from convlab.runs import list_grouped_runs, list_runs


def _run(folder: Path, description: str = "", top1: float = 0.9876) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({
        "status": "completed", "epochs": 2, "epochs_done": 2, "params": 61_706,
        "wall_s": 6.9, "final": {"test.top1": top1, "val.top1": 0.97}}))
    (folder / "config.yaml").write_text(f"name: exp\ndescription: {description!r}\n")
    return folder


def _layout(root: Path) -> None:
    _run(root / "mnist-quick" / "20261201-210755-73403564")
    sweep = root / "lr-width"
    (sweep / "report").mkdir(parents=True)
    (sweep / "report" / "report.md").write_text("# report\n")
    (sweep / "sweep.yaml").write_text("name: lr-width\n")
    for i, d in enumerate(("fc, lr=0.01", "gap, lr=0.1")):
        _run(sweep / "runs" / "lr-width" / f"20261201-2108{i}0-aaaaaaa{i}", d)
    study = root / "studies" / "capacity-smoke"
    (study / "report" / "figures").mkdir(parents=True)
    (study / "report" / "report.md").write_text("# study\n")
    (study / "width" / "sweep.yaml").parent.mkdir(parents=True)
    (study / "width" / "sweep.yaml").write_text("name: width\n")
    _run(study / "width" / "runs" / "capacity" / "20261201-211000-bbbbbbbb", "width=8")
    (root / "mnist-quick" / "20261201-220000-killed00").mkdir()  # killed before a write
    (root / "mnist-quick" / "report").mkdir()  # `convlab report runs/mnist-quick`
    (root / "mnist-quick" / "report" / "report.html").write_text("<html></html>")


def test_sweeps_and_studies_are_walked_and_grouped(tmp_path: Path) -> None:
    _layout(tmp_path)
    got = [(g, r.name, r.status) for g, r in list_grouped_runs(tmp_path)]
    assert got == [
        ("lr-width", "lr-width/20261201-210800-aaaaaaa0", "completed"),
        ("lr-width", "lr-width/20261201-210810-aaaaaaa1", "completed"),
        ("", "mnist-quick/20261201-210755-73403564", "completed"),
        ("", "mnist-quick/20261201-220000-killed00", "incomplete"),
        ("studies/capacity-smoke/width", "capacity/20261201-211000-bbbbbbbb", "completed"),
    ]
    assert len(list_runs(tmp_path, status="completed")) == 4
    assert [r.name for r in list_runs(tmp_path, experiment="capa*")] == [
        "capacity/20261201-211000-bbbbbbbb"]


def test_runs_ls_at_80_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from convlab import cli

    _layout(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(cli, "console", cli.Console(width=80, soft_wrap=True))
    monkeypatch.setattr(sys, "argv", ["convlab", "runs", "ls", "--runs-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr().out
    assert e.value.code in (0, None), out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "sweep lr-width (2 runs)" in out and "study capacity-smoke, group width (1 run)" in out
    assert "mnist-quick/20261201-210755-73403564" in out  # whole
    assert "gap, lr=0.1" in out and "98.76" in out  # a description; accuracy in %
    assert "report" not in out
    assert out.index("mnist-quick/") < out.index("sweep lr-width")  # plain runs first


def test_metrics_table_reads_as_a_person_would() -> None:
    from rich.console import Console

    from convlab.cli import _metrics_table

    console = Console(record=True, width=80)
    console.print(_metrics_table([{"epoch": 1, "split": "test", "loss": 7.816e-07,
                                   "top1": 0.99091, "top5": 1.0, "lr": 0.01,
                                   "time_s": 3.654}]))
    text = console.export_text()
    assert "7.816e-07" in text and "99.09" in text and "100.00" in text and "3.7" in text
    assert "…" not in text
