"""Bundled studies: the classic CNN experiments, one command each.

A study file names a shared base experiment, *groups* (each one sweep: a ``grid`` over
dotted keys, optional ``zip``/``seeds``, and ``set`` for the group's fixed overrides) and
*scales*: dotted overrides applied to every trial, so ``smoke`` (tiny subsets, 1 epoch,
what the tests run), ``quick`` (minutes on a laptop CPU), ``long`` (more data and
epochs than quick, short of the full study) and ``full`` (the real study, for a GPU) are
one file; a study need not have every scale. Each group runs as an ordinary sweep under
``<runs_dir>/studies/<study>-<scale>/<group>/`` (resumable like any sweep) and the study
ends with one report over all groups.

So that a scale can spend its time where the study's lesson is, two keys go beyond one
set of overrides for every trial:

- ``seeds: [0, 1, 2]`` in a scale (a reserved key, not a dotted override; ``seed: 3``
  as a dotted key still sets the base experiment's seed) repeats every trial of every
  group with each seed at that scale.
- ``scales: {long: {...}, quick: {...}}`` in a group: dotted overrides for that group
  only, applied after the study's scale, so a trial's experiment is built as
  base <- group ``set`` <- study scale <- group scale. A group scale may hold ``seeds``
  too; naming a scale the study does not have is a validation error.

Which seeds a group runs at a scale (:func:`group_seeds`), most specific first: the
``seeds`` of the group's own scale entry, else the group's fixed ``seeds:`` (part of
that group's design, e.g. capacity's flatten-order over three seeds), else the study
scale's ``seeds``, else none (one trial per grid point, the base's ``seed``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from convlab.config import format_validation_error, read_yaml, set_dotted
from convlab.errors import ConvlabError

if TYPE_CHECKING:
    from convlab.report.report import ReportFiles
    from convlab.sweep.plan import SweepPlan

Scale = Literal["smoke", "quick", "long", "full"]
SCALES: tuple[str, ...] = ("smoke", "quick", "long", "full")  # smallest first
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
    seeds: list[int] | None = None  # fixed: wins over a study scale's seeds
    # per scale: dotted overrides after the study's scale, for this group only; may hold
    # seeds (which then win over the group's fixed ones)
    scales: dict[str, dict[str, Any]] = Field(default_factory=dict)


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
    def _scales_and_probes(self) -> StudyConfig:
        for scale, overrides in self.scales.items():
            _check_seeds(overrides, f"scales.{scale}.seeds")
        for i, group in enumerate(self.groups):
            for scale, overrides in group.scales.items():
                where = f"groups.{i} ({group.name}): scales.{scale}"
                if scale not in self.scales:
                    raise ValueError(f"{where}: the study has no scale {scale!r} (its "
                                     f"scales: {', '.join(self.scales)})")
                _check_seeds(overrides, f"{where}.seeds")
        names = [g.name for g in self.groups]
        for i, probe in enumerate(self.equivariance):
            if probe.group not in names:
                raise ValueError(f"equivariance.{i}.group: {probe.group!r} is not a group "
                                 f"of this study ({', '.join(names)})")
        return self


SEEDS_KEY = "seeds"  # reserved in a scale's overrides: not a dotted key


def _check_seeds(overrides: dict[str, Any], where: str) -> None:
    """A scale's ``seeds``, if any: a non-empty list of distinct integers."""
    if SEEDS_KEY not in overrides:
        return
    seeds = overrides[SEEDS_KEY]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)):
        raise ValueError(f"{where}: a non-empty list of integers, e.g. [0, 1, 2] "
                         f"(got {seeds!r})")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{where}: repeated seeds in {seeds}")


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


def check_scale(study: StudyConfig, scale: str) -> None:
    """Refuse a scale the study does not have, naming the ones it has."""
    if scale not in study.scales:
        raise StudyError(
            f"--scale {scale!r}: study {study.name} has scales {', '.join(study.scales)}"
        )


def select_groups(study: StudyConfig, names: Sequence[str] | None) -> list[StudyGroup]:
    """The groups ``names`` picks, in the study's order (None or empty: every group);
    an unknown name is a one-line error listing the study's groups."""
    if not names:
        return list(study.groups)
    known = [g.name for g in study.groups]
    for name in names:
        if name not in known:
            raise StudyError(f"--group {name!r}: study {study.name} has groups "
                             f"{', '.join(known)}")
    return [g for g in study.groups if g.name in names]


def group_seeds(study: StudyConfig, group: StudyGroup, scale: str) -> list[int] | None:
    """The seeds ``group`` repeats its trials over at ``scale``, most specific first: its
    own scale entry's ``seeds``, else its fixed ``seeds:``, else the study scale's
    ``seeds``; None when none is set (the base experiment's ``seed``)."""
    check_scale(study, scale)
    for seeds in (group.scales.get(scale, {}).get(SEEDS_KEY), group.seeds,
                  study.scales[scale].get(SEEDS_KEY)):  # type: ignore[index]
        if seeds:
            return list(seeds)
    return None


def group_sweep(study: StudyConfig, group: StudyGroup, scale: str) -> dict[str, Any]:
    """The sweep file of one group at one scale: base <- group ``set`` <- study scale
    <- group scale (dotted overrides, applied in that order), with the seeds that
    :func:`group_seeds` picks."""
    seeds = group_seeds(study, group, scale)  # checks the scale
    base = copy.deepcopy(study.base)
    base["name"] = f"{study.name}-{group.name}"
    layers = (group.set, study.scales[scale], group.scales.get(scale, {}))  # type: ignore[index]
    for i, overrides in enumerate(layers):
        for key, value in overrides.items():
            if i and key == SEEDS_KEY:
                continue  # a scale's reserved key, not an override (group_seeds reads it)
            set_dotted(base, key, copy.deepcopy(value), f"study {study.name}")
    sweep: dict[str, Any] = {"name": group.name, "description": group.description,
                             "base": base, "grid": copy.deepcopy(group.grid)}
    if group.zip:
        sweep["zip"] = True
    if seeds:
        sweep["seeds"] = seeds
    return sweep


@dataclass(frozen=True)
class StudyPlan:
    """A study validated at one scale: every group's sweep plan (planned and checked
    whether or not it is selected, so a broken study fails at once), the groups to run,
    and each probe with the 1-based index of the trial it names."""

    study: StudyConfig
    scale: str
    plans: dict[str, SweepPlan]  # every group, in the study's order
    selected: tuple[str, ...]  # the groups to run, in the study's order
    probes: tuple[tuple[EquivarianceProbe, int], ...]

    @property
    def trials(self) -> int:
        """Trials of the selected groups."""
        return sum(self.plans[g].total for g in self.selected)


def plan_study(name_or_path: str | Path | StudyConfig, scale: str = "smoke",
               groups: Sequence[str] | None = None) -> StudyPlan:
    """Plan and validate every group of a study at ``scale`` (every trial's config, each
    probe's trial) without creating or training anything; ``groups`` selects the groups
    to run (None: all). Bad input is a one-line :class:`StudyError` or ``SweepError``."""
    from convlab.sweep.plan import plan_sweep

    study = name_or_path if isinstance(name_or_path, StudyConfig) else load_study(name_or_path)
    check_scale(study, scale)
    selected = tuple(g.name for g in select_groups(study, groups))
    plans = {g.name: plan_sweep(group_sweep(study, g, scale)) for g in study.groups}
    probes = tuple((p, _probed_trial(p, plans[p.group])) for p in study.equivariance)
    return StudyPlan(study, scale, plans, selected, probes)


@dataclass
class StudyResult:
    folder: Path
    report_html: Path
    report_md: Path
    trials: int  # of the groups run by this call
    completed: int
    groups: tuple[str, ...] = ()  # the groups run by this call


def _probed_trial(probe: EquivarianceProbe, plan: SweepPlan) -> int:
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
    groups: Sequence[str] | None = None,
) -> StudyResult:
    """Run the study's groups (``groups``: only those, by name; None: all), skipping
    trials already done, then write its report.

    Every group's trials are planned and validated before the first one trains, so a
    broken study fails at once instead of after an hour of training. The report covers
    every group with finished runs in the study folder, whichever call ran them: running
    the groups one at a time and then all of them builds the same report.
    """
    from convlab.sweep.execute import run_sweep

    plan = plan_study(name_or_path, scale, groups)
    study = plan.study
    folder = study_folder(study, scale, runs_dir)
    trials = completed = 0
    for name in plan.selected:
        if echo is not None:
            echo(f"study {study.name} ({scale}): group {name}")
        result = run_sweep(plan.plans[name], workers=workers, runs_dir=folder, echo=echo)
        trials += len(result.rows)
        completed += sum(r.get("status") == "completed" for r in result.rows)
    files = write_study_report(plan, folder)
    if echo is not None:
        echo(f"report: {files.html}")
    return StudyResult(folder, files.html, files.markdown, trials, completed, plan.selected)


def write_study_report(plan: StudyPlan, folder: Path) -> ReportFiles:
    """The study's report over the groups that have finished runs in ``folder`` (in the
    study's order), then the probes of those groups; returns the ``ReportFiles``."""
    from convlab.errors import RunError
    from convlab.report.data import load_runs
    from convlab.report.report import write_grouped_report
    from convlab.studies.probes import probe_section

    study = plan.study
    groups = []
    for g in study.groups:
        try:
            runs = load_runs([folder / g.name]) if (folder / g.name).is_dir() else []
        except RunError:  # a group folder without a finished run yet
            runs = []
        if runs:
            groups.append((g.name, g.description, runs))
    reported = {name for name, _, _ in groups}
    extra = [probe_section(p, _trial_row(folder / p.group, index),
                           folder / "report" / "figures" / f"equivariance-{i}")
             for i, (p, index) in enumerate(plan.probes, 1) if p.group in reported]
    return write_grouped_report(groups, folder / "report",
                                f"Study {study.name} ({plan.scale})", study.description,
                                extra)


def _trial_row(sweep_dir: Path, index: int) -> dict[str, Any]:
    """The sweep index row (``sweep.json``, which every sweep run rewrites) of trial
    ``index``; {} when the sweep has no readable index or no such row."""
    import json

    try:
        rows = json.loads((sweep_dir / "sweep.json").read_text()).get("trials", [])
    except (OSError, ValueError, AttributeError):
        return {}
    return next((r for r in rows if isinstance(r, dict) and r.get("index") == index), {})
