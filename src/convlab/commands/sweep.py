"""``convlab sweep FILE``: run a sweep file's trials, here and/or on other machines.

Thin by design: parse the options, call ``convlab.sweep.run_sweep``, print the result.
Bad input raises a ``SweepError`` (a ``ConvlabError``), which ``convlab.cli.main`` turns
into one line on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(soft_wrap=True, highlight=False)


def sweep(
    file: Annotated[Path, typer.Argument(help="A sweep YAML file (base, grid/random/search, "
                                               "seeds, name).")],
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=1,
        help="Parallel worker processes on this machine; each trains with cores/N threads.",
    )] = 1,
    storage: Annotated[str | None, typer.Option(
        "--storage", metavar="URL",
        help="Share the study with other machines: postgresql://user:pass@host:5432/db; "
             "every 'convlab sweep FILE --storage URL' takes trials until the sweep is done "
             "(default: a journal file in the sweep folder, for this machine only).",
    )] = None,
    runs_dir: Annotated[Path | None, typer.Option(
        "--runs-dir", help="Root of the run folders; the sweep goes in <runs-dir>/<name>/ "
                           "(default: $CONVLAB_RUNS, else ./runs).",
    )] = None,
    heartbeat: Annotated[int, typer.Option(
        "--heartbeat", min=1, metavar="SECONDS",
        help="With --storage: a running trial's heartbeat interval; a trial silent for 4x "
             "this is given to another worker.",
    )] = 15,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Validate and list the trials; create and run nothing.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")]
    = False,
) -> None:
    """Run a sweep: every trial an ordinary run folder, resumable, optionally distributed.

    The same command again skips completed trials and reruns failed or interrupted ones.
    """
    from convlab.sweep import plan_sweep, run_sweep
    from convlab.sweep.execute import describe
    from convlab.sweep.plan import trial_lines

    plan = plan_sweep(file)
    if dry_run:
        console.print(f"sweep {plan.name}: {describe(plan)}; all configs valid")
        for line in trial_lines(plan):
            console.print(line)
        return
    result = run_sweep(plan, workers=workers, storage=storage, runs_dir=runs_dir,
                       heartbeat=heartbeat, echo=None if quiet else say)
    counts = ", ".join(f"{n} {status}" for status, n in result.counts.items())
    console.print(f"sweep {plan.name}: {counts}; index {result.index}")
    if result.interrupted:
        console.print("interrupted: run the same command again to continue")
    if not result.done:
        raise typer.Exit(1)


def say(text: str) -> None:
    """A progress line as it is: parameters such as ``[16, 32]`` are not markup."""
    console.print(text, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``sweep`` to the main app (once, however often it is called)."""
    if getattr(app, "_convlab_sweep", False):
        return
    app._convlab_sweep = True  # type: ignore[attr-defined]
    app.command("sweep")(sweep)
