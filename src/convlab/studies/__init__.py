"""Bundled studies: the classic CNN experiments, one command each.

A study file names a shared base experiment, *groups* (each one sweep: a ``grid`` over
dotted keys, optional ``zip``/``seeds``, and ``set`` for the group's fixed overrides) and
*scales*: dotted overrides applied to every trial, so ``smoke`` (tiny subsets, 1 epoch,
what the tests run), ``quick`` (minutes on a laptop CPU) and ``full`` (the real study,
for a GPU) are one file. Each group runs as an ordinary sweep under
``<runs_dir>/studies/<study>-<scale>/<group>/`` (resumable like any sweep) and the study
ends with one report over all groups.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from convlab.config import format_validation_error, read_yaml, set_dotted
from convlab.errors import ConvlabError

Scale = Literal["smoke", "quick", "full"]
SCALES: tuple[str, ...] = ("smoke", "quick", "full")
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StudyError(ConvlabError):
    """A study name or file that cannot be used; one line, exit code 2."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StudyGroup(_Strict):
    name: str = Field(pattern=NAME)
    description: str = ""
    set: dict[str, Any] = Field(default_factory=dict)  # fixed dotted overrides
    grid: dict[str, list[Any] | dict[str, Any]]  # a mapping names the values (see sweep)
    zip: bool = False
    seeds: list[int] | None = None


class EquivarianceProbe(_Strict):
    """After the groups: the equivariance figures of one trained run (a test image
    shifted and rotated, each layer's maps transformed back), in the study's report."""

    group: str  # a group of this study
    run: str  # the name of the trial in that group (a named grid value)
    shift: int = Field(4, ge=1)  # pixels
    rotate: float = 90.0  # degrees (multiples of 90 are exact on the pixel grid)
    index: int = Field(0, ge=0)  # the test image


class StudyConfig(_Strict):
    name: str = Field(pattern=NAME)
    description: str = ""
    base: dict[str, Any]
    scales: dict[Scale, dict[str, Any]]
    groups: list[StudyGroup] = Field(min_length=1)
    equivariance: list[EquivarianceProbe] = Field(default_factory=list)

    @model_validator(mode="after")
    def _probes_name_groups(self) -> StudyConfig:
        names = [g.name for g in self.groups]
        for i, probe in enumerate(self.equivariance):
            if probe.group not in names:
                raise ValueError(f"equivariance.{i}.group: {probe.group!r} is not a group "
                                 f"of this study ({', '.join(names)})")
        return self


def bundled_studies() -> dict[str, Path]:
    folder = Path(__file__).parent
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def load_study(name_or_path: str | Path) -> StudyConfig:
    """A bundled study by name, or a study file."""
    studies = bundled_studies()
    path = studies.get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise StudyError(
            f"{name_or_path!r} is neither a bundled study ({', '.join(studies)}) nor a file"
        )
    raw = read_yaml(path)
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as e:
        raise StudyError(format_validation_error(e, str(path))) from None


def group_sweep(study: StudyConfig, group: StudyGroup, scale: str) -> dict[str, Any]:
    """The sweep file of one group at one scale: base <- group ``set`` <- scale."""
    if scale not in study.scales:
        raise StudyError(
            f"--scale {scale!r}: study {study.name} has scales {', '.join(study.scales)}"
        )
    base = copy.deepcopy(study.base)
    base["name"] = f"{study.name}-{group.name}"
    for key, value in {**group.set, **study.scales[scale]}.items():  # type: ignore[index]
        set_dotted(base, key, copy.deepcopy(value), f"study {study.name}")
    sweep: dict[str, Any] = {"name": group.name, "description": group.description,
                             "base": base, "grid": copy.deepcopy(group.grid)}
    if group.zip:
        sweep["zip"] = True
    if group.seeds:
        sweep["seeds"] = list(group.seeds)
    return sweep


@dataclass
class StudyResult:
    folder: Path
    report_html: Path
    report_md: Path
    trials: int
    completed: int


def _probed_trial(probe: EquivarianceProbe, plan: Any) -> int:
    """The 1-based index of the trial a probe names (checked before anything trains)."""
    names = [t.name for t in plan.trials]
    if probe.run not in names:
        known = ", ".join(filter(None, names)) or "none is named"
        raise StudyError(f"equivariance: group {probe.group} has no trial named "
                         f"{probe.run!r} (its trials: {known})")
    return names.index(probe.run) + 1


def study_folder(study: StudyConfig, scale: str, runs_dir: str | Path | None) -> Path:
    from convlab.runs import resolve_runs_dir

    return resolve_runs_dir(runs_dir) / "studies" / f"{study.name}-{scale}"


def run_study(
    name_or_path: str | Path, scale: str = "smoke", runs_dir: str | Path | None = None,
    workers: int = 1, echo: Callable[[str], None] | None = print,
) -> StudyResult:
    """Run every group of a study (skipping trials already done), then write its report.

    Every group's trials are planned and validated before the first one trains, so a
    broken study fails at once instead of after an hour of training.
    """
    from convlab.report.data import load_runs
    from convlab.report.report import write_grouped_report
    from convlab.studies.probes import probe_section
    from convlab.sweep.execute import run_sweep
    from convlab.sweep.plan import plan_sweep

    study = load_study(name_or_path)
    folder = study_folder(study, scale, runs_dir)
    plans = {g.name: (g, plan_sweep(group_sweep(study, g, scale))) for g in study.groups}
    probed = [(p, _probed_trial(p, plans[p.group][1])) for p in study.equivariance]
    trials = completed = 0
    rows: dict[str, list[dict[str, Any]]] = {}
    for group, plan in plans.values():
        if echo is not None:
            echo(f"study {study.name} ({scale}): group {group.name}")
        result = run_sweep(plan, workers=workers, runs_dir=folder, echo=echo)
        rows[group.name] = result.rows
        trials += len(result.rows)
        completed += sum(r.get("status") == "completed" for r in result.rows)
    groups = [(g.name, g.description, load_runs([folder / g.name])) for g in study.groups]
    extra = [probe_section(p, next((r for r in rows[p.group] if r["index"] == index), {}),
                           folder / "report" / "figures" / f"equivariance-{i}")
             for i, (p, index) in enumerate(probed, 1)]
    files = write_grouped_report(groups, folder / "report",
                                 f"Study {study.name} ({scale})", study.description, extra)
    if echo is not None:
        echo(f"report: {files.html}")
    return StudyResult(folder, files.html, files.markdown, trials, completed)
