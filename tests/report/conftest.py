"""Tiny synthetic runs shared by the report tests: trained once per session (seconds).

Layout, to exercise folder expansion at any depth::

    <tmp>/sweep/trial-0/cap/<run-id>/   width 2, gradient norms tracked, hostile description
    <tmp>/sweep/trial-1/cap/<run-id>/   width 6
    <tmp>/sweep/trial-10/cap/<run-id>/  width 16 (natural order: after trial-1, not before)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_config

WIDTHS = (2, 6, 16)
HOSTILE = "<script>alert(1)</script> | a&b"


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import convlab

    root = tmp_path_factory.mktemp("report") / "sweep"
    for trial, width in zip((0, 1, 10), WIDTHS, strict=True):
        train = {"epochs": 2, "threads": 1}
        if width == WIDTHS[0]:
            train["track_grad_norms"] = 2
        cfg = tiny_config(
            name="cap",
            description=HOSTILE if width == WIDTHS[0] else "",
            data={"val_fraction": 0.25},
            model={"name": "cnn", "stages": [{"channels": width}, {"channels": 2 * width}]},
            train=train,
        )
        convlab.run(cfg, runs_dir=root / f"trial-{trial}", quiet=True)
    return root


@pytest.fixture(scope="session")
def run_dirs(sweep_dir: Path) -> list[Path]:
    """The three run folders, in width order."""
    return [next((sweep_dir / f"trial-{t}" / "cap").iterdir()) for t in (0, 1, 10)]


@pytest.fixture(scope="session")
def multi_report(sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    from convlab.report.data import load_runs
    from convlab.report.report import write_report

    return write_report(load_runs([sweep_dir]), tmp_path_factory.mktemp("multi") / "out")


@pytest.fixture(scope="session")
def single_report(run_dirs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> object:
    from convlab.report.data import load_runs
    from convlab.report.report import write_report

    return write_report(load_runs([run_dirs[0]]), tmp_path_factory.mktemp("single") / "out")


@pytest.fixture(scope="session")
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 1-epoch runs (course-work length): an epoch-0 evaluation, train metrics after
    every step, one gradient-norm row each (a single point to draw)."""
    import convlab

    root = tmp_path_factory.mktemp("short") / "lr"
    for lr in (0.01, 0.001):
        cfg = tiny_config(
            name="short", description=f"Adam at lr {lr}", data={"val_fraction": 0.25},
            optim={"name": "adam", "lr": lr},
            train={"epochs": 1, "threads": 1, "eval_at_start": True, "log_every": 1,
                   "track_grad_norms": 8},
        )
        convlab.run(cfg, runs_dir=root / f"lr-{lr}", quiet=True)
    return root


@pytest.fixture(scope="session")
def short_multi_report(short_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    from convlab.report.data import load_runs
    from convlab.report.report import write_report

    return write_report(load_runs([short_dir]), tmp_path_factory.mktemp("smulti") / "out")


@pytest.fixture(scope="session")
def short_single_report(short_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    from convlab.report.data import load_runs
    from convlab.report.report import write_report

    one = next((short_dir / "lr-0.01" / "short").iterdir())
    return write_report(load_runs([one]), tmp_path_factory.mktemp("ssingle") / "out")
