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


def compare(
    paths: Paths,
    format_: Annotated[CompareFormat, typer.Option(
        "--format", "-f", help="table (terminal), md (Markdown) or csv (raw numbers).",
    )] = CompareFormat.table,
) -> None:
    """Final and best metrics of runs side by side, with only the settings that differ."""
    from convlab.report.compare import compare_runs, render_csv, render_markdown, render_table
    from convlab.report.data import load_runs

    cmp = compare_runs(load_runs(paths))
    if format_ is CompareFormat.csv:
        sys.stdout.write(render_csv(cmp))
    elif format_ is CompareFormat.md:
        sys.stdout.write(render_markdown(cmp))
    else:
        from rich.console import Console

        console = Console(highlight=False, soft_wrap=True,
                          width=None if sys.stdout.isatty() else 250)
        console.print(render_table(cmp))
        if not cmp.settings and len(cmp.rows) > 1:
            console.print("(the runs have identical settings)")


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
