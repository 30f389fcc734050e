"""``convlab export RUN_OR_FOLDER... --to tensorboard|mlflow|wandb``: send run folders that
already exist (single runs, whole sweeps and studies) to a tracker.

Thin by design: find the runs, call ``convlab.track.export.export_runs``, print a line
per run. Running it again skips what the tracker already holds. A missing package is a
``TrackerError`` (a ``ConvlabError``): one line naming the pip command, exit code 2.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(soft_wrap=True, highlight=False)


class Destination(str, Enum):
    tensorboard = "tensorboard"
    mlflow = "mlflow"
    wandb = "wandb"


def export(
    paths: Annotated[list[Path], typer.Argument(
        metavar="RUN_OR_FOLDER...",
        help="Run folders, or folders holding run folders at any depth (runs/<experiment>, "
             "a sweep or study folder).")],
    to: Annotated[Destination, typer.Option("--to", help="The tracker to send them to.")],
    log_dir: Annotated[Path | None, typer.Option(
        "--log-dir", help="tensorboard: event files below this folder, one per run "
                          "(default: <run folder>/tensorboard).")] = None,
    uri: Annotated[str | None, typer.Option(
        "--uri", help="mlflow: the tracking URI (default: $MLFLOW_TRACKING_URI, else "
                      "sqlite:///<runs root>/mlflow.db).")] = None,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", help="mlflow: the experiment (default: each run's name).")] = None,
    project: Annotated[str | None, typer.Option(
        "--project", help="wandb: the project (default: each run's name).")] = None,
    entity: Annotated[str | None, typer.Option("--entity", help="wandb: user or team.")]
    = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="wandb: offline (default unless $WANDB_MODE says otherwise) or "
                       "online.")] = None,
) -> None:
    """Send existing run folders to TensorBoard, MLflow or W&B; again, it skips what is there."""
    from convlab.config import MlflowTracking, TensorBoardTracking, WandbTracking
    from convlab.errors import ConfigError
    from convlab.report.data import find_runs
    from convlab.track.export import export_runs

    if to is Destination.tensorboard:
        spec: object = TensorBoardTracking(log_dir=log_dir)
    elif to is Destination.mlflow:
        spec = MlflowTracking(tracking_uri=uri, experiment=experiment)
    else:
        if mode not in (None, "offline", "online"):
            raise ConfigError(f"--mode: expected offline or online, got {mode!r}")
        spec = WandbTracking(project=project, entity=entity, mode=mode)  # type: ignore[arg-type]
    runs = find_runs(paths)
    counts = {"sent": 0, "skipped": 0}
    for item in export_runs(runs, spec):
        counts[item.outcome] += 1
        note = f" ({item.why})" if item.why else ""
        console.print(f"{item.outcome} {item.run.path}{note}", markup=False)
    console.print(f"{to.value}: {counts['sent']} sent, {counts['skipped']} already there")


def register(app: typer.Typer) -> None:
    """Add ``export`` to the main app (once, however often it is called)."""
    if getattr(app, "_convlab_export", False):
        return
    app._convlab_export = True  # type: ignore[attr-defined]
    app.command("export")(export)
