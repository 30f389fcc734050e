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
