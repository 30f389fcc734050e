"""``convlab study list`` and ``convlab study run NAME --scale smoke|quick|long|full``."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from convlab.studies import StudyConfig, StudyPlan

WIDTH = 80  # what `study list` fits its lines to


def register(app: typer.Typer) -> None:
    study_app = typer.Typer(help="The bundled studies: classic CNN experiments, one command "
                                 "each.", no_args_is_help=True)
    app.add_typer(study_app, name="study")

    @study_app.command("list")
    def study_list() -> None:
        """The bundled studies with their scales, groups and trial counts.

        Per study: its total trials and scales (the trials per scale where seeds per
        scale make them differ), the first sentence of its description, then one line
        per group: its trials at the smallest scale (others in parentheses where they
        differ), name and description."""
        from rich.console import Console

        from convlab.studies import bundled_studies, load_study

        console = Console(soft_wrap=True, highlight=False)
        for i, name in enumerate(bundled_studies()):
            if i:
                console.print()
            for line in study_lines(load_study(name)):
                console.print(line, markup=False)

    @study_app.command("run")
    def study_run(
        name: Annotated[str, typer.Argument(help="A bundled study name or a study file.")],
        scale: Annotated[str, typer.Option(
            "--scale", help="smoke | quick | long | full (the study file says which it has)",
        )] = "smoke",
        group: Annotated[list[str] | None, typer.Option(
            "--group", "-g", metavar="GROUP",
            help="Run only this group (repeat the option for several); the report still "
                 "covers every group with finished runs in the study folder.",
        )] = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Validate every trial of the (selected) groups and list them "
                              "per group; create and train nothing.")] = False,
        workers: Annotated[int, typer.Option("--workers", help="Parallel trials.")] = 1,
        runs_dir: Annotated[
            Path | None, typer.Option("--runs-dir", help="Root of the run folders.")
        ] = None,
    ) -> None:
        """Run a study (resumable: finished trials are skipped) and write its report.

        Each group is a sweep under <runs-dir>/studies/<study>-<scale>/<group>/; the
        report (report/ beside them) covers every group with finished runs there, so
        running the groups one at a time and then all builds the same report."""
        from rich.console import Console

        from convlab.studies import plan_study, run_study

        if dry_run:
            console = Console(soft_wrap=True, highlight=False)
            for line in dry_run_lines(plan_study(name, scale, group)):
                console.print(line, markup=False)
            return
        result = run_study(name, scale, runs_dir=runs_dir, workers=workers, groups=group)
        print(f"{result.completed}/{result.trials} trials completed; "
              f"report: {result.report_html}")


def dry_run_lines(plan: StudyPlan) -> list[str]:
    """What ``study run --dry-run`` prints: each selected group's trials as ``sweep
    --dry-run`` lists them, the probes, and the total."""
    from convlab.sweep.execute import describe
    from convlab.sweep.plan import trial_lines

    study = plan.study
    lines = [f"study {study.name} ({plan.scale}): all configs valid; nothing created or "
             f"trained"]
    for name in plan.selected:
        lines.append(f"group {name}: {describe(plan.plans[name])}")
        lines += trial_lines(plan.plans[name])
    for probe, index in plan.probes:
        if probe.group in plan.selected:
            lines.append(f"equivariance probe: trial {index} ({probe.run}) of group "
                         f"{probe.group}")
    n = len(plan.selected)
    lines.append(f"total: {plan.trials} trials in {n} group{'s' if n != 1 else ''}")
    return lines


def study_lines(study: StudyConfig, width: int = WIDTH) -> list[str]:
    """One study for ``study list``: its name, trials and scales; the first sentence of
    its description; a line per group (trials, name, description shortened to fit
    ``width``). Every scale is planned, since seeds per scale (a scale's or a group's
    scale's ``seeds``) change the counts: where they are the same at every scale the
    header reads ``N trials in G groups; scales ...``, else ``G groups; trials smoke N,
    quick N, long M``, and a group whose count differs from its count at the smallest
    scale (the number in its line) names the others first, ``(long 18)``."""
    from convlab.errors import ConvlabError
    from convlab.studies import SCALES, plan_study

    scales = sorted(study.scales, key=lambda s: SCALES.index(s) if s in SCALES else 99)
    n = len(study.groups)
    groups = f"{n} group{'s' if n != 1 else ''}"
    counts: dict[str, dict[str, int]] = {}  # scale -> group -> trials
    try:
        for scale in scales:
            counts[scale] = {g: p.total for g, p in plan_study(study, scale).plans.items()}
    except ConvlabError as e:  # a broken study is listed, with why it cannot be counted
        counts = {}
        head = f"{study.name}: trials not counted ({str(e).splitlines()[0]}) in {groups}; " \
               f"scales {', '.join(scales)}"
    else:
        totals = {scale: sum(c.values()) for scale, c in counts.items()}
        if len(set(totals.values())) == 1:
            head = f"{study.name}: {totals[scales[0]]} trials in {groups}; " \
                   f"scales {', '.join(scales)}"
        else:
            head = f"{study.name}: {groups}; trials " + ", ".join(
                f"{scale} {total}" for scale, total in totals.items())
    lines = [head]
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(study.description.split()),
                     maxsplit=1)[0]
    if first:
        lines += textwrap.wrap(first, width, initial_indent="  ", subsequent_indent="  ")
    smallest = counts.get(scales[0], {})
    name_w = max(len(g.name) for g in study.groups)
    count_w = max([len(str(c)) for c in smallest.values()] + [1])
    for g in study.groups:
        head = f"  {smallest.get(g.name, '?'):>{count_w}}  {g.name:<{name_w}}  "
        others = ", ".join(f"{scale} {c[g.name]}" for scale, c in counts.items()
                           if c[g.name] != smallest[g.name])
        desc = " ".join(filter(None, [f"({others})" if others else "", g.description]))
        room = max(width - len(head), 10)
        desc = textwrap.shorten(desc, room, placeholder="…") if desc else ""
        lines.append(f"{head}{desc}".rstrip())
    return lines
