"""Report commands: ``compare`` (runs side by side) and ``report`` (Markdown + HTML).

Thin by design: find the runs, call ``convlab.report``, print. A bad path raises a
``RunError`` / ``ReportError`` (both ``ConvlabError``), which ``convlab.cli.main`` turns
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

Paths = Annotated[list[Path], typer.Argument(
    metavar="RUN_OR_FOLDER...",
    help="Run folders, or folders holding run folders at any depth (runs/<experiment>, a "
    "sweep folder).",
)]


class CompareFormat(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    json = "json"


def compare(
    paths: Paths,
    format_: Annotated[CompareFormat, typer.Option(
        "--format", "-f", help="table (terminal), md (Markdown), csv or json (raw numbers).",
    )] = CompareFormat.table,
    columns: Annotated[str | None, typer.Option(
        "--columns", "-c", metavar="A,B,...",
        help="These columns after the run's name: e.g. 'lr,test %,final.val.loss'.")] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Every column: path, status, each differing setting, every metric.")]
    = False,
) -> None:
    """Final and best metrics of runs side by side, with only the settings that differ.

    The table fits the terminal: each run's name (its description, else its differing
    settings), held-out top-1 (final and best), held-out loss, epochs and parameters,
    then other settings while there is room; --columns or --all for the rest.
    """
    from convlab.report.compare import (
        compare_runs,
        render_csv,
        render_json,
        render_markdown,
        render_table,
        terminal_view,
    )
    from convlab.report.data import load_runs

    cmp = compare_runs(load_runs(paths))
    picked = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    if format_ is not CompareFormat.table:
        view = terminal_view(cmp, None, picked, all_ or not picked)[0]
        render = {CompareFormat.csv: render_csv, CompareFormat.md: render_markdown,
                  CompareFormat.json: render_json}[format_]
        sys.stdout.write(render(view))
        return
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True,
                      width=None if sys.stdout.isatty() else 250)
    view, left_out = terminal_view(cmp, console.width, picked, all_)
    console.print(render_table(view))
    if not cmp.settings and len(cmp.rows) > 1:
        console.print("(the runs have identical settings)")
    if left_out:
        console.print(f"({len(left_out)} more column{'s' if len(left_out) > 1 else ''}: "
                      f"--all, or --columns NAME,...)")


def report(
    paths: Paths,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: <folder>/report for one folder, "
        "./report for several).",
    )] = None,
    title: Annotated[str, typer.Option("--title", help="Report title.")] = "",
) -> None:
    """Write report.md and a self-contained report.html (with figures) for runs."""
    from convlab.report.report import report_paths

    files = report_paths(paths, out, title)
    sys.stdout.write(f"{files.markdown}\n{files.html}\n")


def register(app: typer.Typer) -> None:
    """Add ``compare`` and ``report`` to the main app (once, however often it is called)."""
    if getattr(app, "_convlab_report", False):
        return
    app._convlab_report = True  # type: ignore[attr-defined]
    app.command("compare")(compare)
    app.command("report")(report)
