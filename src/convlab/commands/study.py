"""``convlab study list`` and ``convlab study run NAME --scale smoke|quick|full``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    study_app = typer.Typer(help="The bundled studies: classic CNN experiments, one command "
                                 "each.", no_args_is_help=True)
    app.add_typer(study_app, name="study")

    @study_app.command("list")
    def study_list() -> None:
        """The bundled studies with their groups and trial counts."""
        from rich.console import Console

        from convlab.studies import bundled_studies, load_study

        console = Console(soft_wrap=True, highlight=False)
        for name in bundled_studies():
            study = load_study(name)
            groups = ", ".join(f"{g.name}" for g in study.groups)
            console.print(f"[bold]{name}[/bold]  scales: {', '.join(study.scales)}; "
                          f"groups: {groups}")
            console.print(f"  {study.description}")

    @study_app.command("run")
    def study_run(
        name: Annotated[str, typer.Argument(help="A bundled study name or a study file.")],
        scale: Annotated[str, typer.Option("--scale", help="smoke | quick | full")] = "smoke",
        workers: Annotated[int, typer.Option("--workers", help="Parallel trials.")] = 1,
        runs_dir: Annotated[
            Path | None, typer.Option("--runs-dir", help="Root of the run folders.")
        ] = None,
    ) -> None:
        """Run a study (resumable: finished trials are skipped) and write its report."""
        from convlab.studies import run_study

        result = run_study(name, scale, runs_dir=runs_dir, workers=workers)
        print(f"{result.completed}/{result.trials} trials completed; "
              f"report: {result.report_html}")
