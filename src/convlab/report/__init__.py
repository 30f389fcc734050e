"""Comparisons, plots and written reports made from run folders.

Layers, from the disk up: :mod:`~convlab.report.data` reads run folders into plain
:class:`RunData` records (the only part that touches ``convlab.runs``);
:mod:`~convlab.report.compare`, :mod:`~convlab.report.findings` and
:mod:`~convlab.report.plots` are pure functions of those records or of plain lists;
:mod:`~convlab.report.report` assembles them into ``report.md`` and ``report.html``.

``plots`` and ``report`` import matplotlib, so they are loaded on first use: a
``convlab compare`` in a terminal does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

from convlab.report.compare import (
    Comparison,
    compare_runs,
    differing_settings,
    flatten,
    render_csv,
    render_markdown,
    render_table,
)
from convlab.report.data import ReportError, RunData, find_runs, load_runs, run_data
from convlab.report.findings import (
    Finding,
    Overfit,
    detect_overfitting,
    learning_curve_finding,
    sweep_finding,
)

_LAZY = {
    "write_report": "convlab.report.report",
    "report_paths": "convlab.report.report",
    "build_report": "convlab.report.report",
    "plots": "convlab.report.plots",
}

__all__ = [
    "Comparison", "Finding", "Overfit", "ReportError", "RunData", "build_report",
    "compare_runs", "detect_overfitting", "differing_settings", "find_runs", "flatten",
    "learning_curve_finding", "load_runs", "plots", "render_csv", "render_markdown",
    "render_table", "report_paths", "run_data", "sweep_finding", "write_report",
]


def __getattr__(name: str) -> Any:
    """Load the matplotlib-backed parts on first use (PEP 562)."""
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return module if name == "plots" else getattr(module, name)
    raise AttributeError(f"module 'convlab.report' has no attribute {name!r}")
