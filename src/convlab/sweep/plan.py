"""From a sweep file to the list of trials: expansion, then validation of every trial.

Pure apart from reading the base experiment: ``expand_grid`` and ``draw_random`` are
plain functions of the sweep spec, so tests can check the expansion by hand, and
``build_plan`` validates every trial's resolved config before anything is created or run.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from convlab.config import (
    ExperimentConfig,
    find_experiment,
    read_yaml,
    resolve_paths,
    set_dotted,
    validate_config,
)
from convlab.errors import ConfigError
from convlab.sweep.spec import Distribution, RandomSpec, SweepConfig, SweepError, load_sweep

Mode = Literal["grid", "search"]


@dataclass(frozen=True)
class TrialSpec:
    """One planned training: its place in the plan, what it changes, its resolved config.

    ``key`` is ``config_hash`` of the resolved config as the sweep file makes it (before
    the per-process ``train.threads`` share): the identity that resume and the
    exactly-once bookkeeping use, the same on every machine and for any ``--workers``.
    """

    index: int
    params: dict[str, Any]
    config: ExperimentConfig
    key: str
    name: str = ""  # from named grid values (also the config's description)
    named_keys: tuple[str, ...] = ()  # the keys whose values are named

    def label(self) -> str:
        """How messages call the trial: its name, with the unnamed settings after it."""
        rest = format_params({k: v for k, v in self.params.items()
                              if k not in self.named_keys})
        if not self.name:
            return rest
        return self.name if rest == "(base)" else f"{self.name} {rest}"


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: a fixed list of trials (grid/random/seeds) or a search space."""

    sweep: SweepConfig
    source: str  # the file, for messages
    base_raw: dict[str, Any]  # the base experiment as written (overrides apply to this)
    base: ExperimentConfig
    trials: tuple[TrialSpec, ...] = ()  # empty for a search
    fingerprint: str = ""
    by_key: dict[str, TrialSpec] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.sweep.name

    @property
    def mode(self) -> Mode:
        return "search" if self.sweep.search is not None else "grid"

    @property
    def total(self) -> int:
        """Trials the sweep is done after."""
        return self.sweep.search.trials if self.sweep.search else len(self.trials)

    @property
    def metric(self) -> str:
        """The value each trial reports to Optuna (the objective of a search)."""
        if self.sweep.search is not None:
            return self.sweep.search.metric
        return "val.top1" if self.base.data.val_fraction > 0 else "test.top1"

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        if self.sweep.search is not None:
            return self.sweep.search.resolved_direction
        return "maximize"

    @property
    def param_keys(self) -> list[str]:
        """Every swept key in file order (``seed`` last when ``seeds:`` repeats)."""
        s = self.sweep
        keys = [*(s.grid or {}), *(s.random.params if s.random else {}),
                *(s.search.params if s.search else {})]
        if s.seeds and s.search is None:
            keys.append("seed")
        return keys

    def trial_config(self, params: dict[str, Any], label: str) -> ExperimentConfig:
        """The base with ``params`` applied (as ``--set`` would), validated."""
        return make_config(self.base_raw, params, f"{self.source}: {label}")


# ------------------------------------------------------------------- expansion


def expand_grid(grid: dict[str, list[Any]] | None, zip_: bool = False) -> list[dict[str, Any]]:
    """The grid's points in file order: a cartesian product (last key varies fastest), or
    the lists paired element-wise with ``zip_``. No grid: one empty point."""
    return [point for point, _ in _grid_points(grid, zip_)]


def _grid_points(
    grid: dict[str, list[Any]] | None, zip_: bool
) -> list[tuple[dict[str, Any], dict[str, int]]]:
    """Each point with the position of each key's value in its list (which names it)."""
    if not grid:
        return [({}, {})]
    keys = list(grid)
    ranges = [range(len(v)) for v in grid.values()]
    rows = zip(*ranges, strict=True) if zip_ else itertools.product(*ranges)
    return [({k: copy.deepcopy(grid[k][i]) for k, i in zip(keys, row, strict=True)},
             dict(zip(keys, row, strict=True))) for row in rows]


def sample(dist: Distribution, rng: random.Random) -> Any:
    """One draw; loguniform is uniform in log space (Bergstra & Bengio 2012)."""
    if dist.kind == "loguniform":
        return math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))  # type: ignore[arg-type]
    if dist.kind == "uniform":
        return rng.uniform(dist.low, dist.high)  # type: ignore[arg-type]
    if dist.kind == "int":
        return rng.randint(int(dist.low), int(dist.high))  # type: ignore[arg-type]
    return copy.deepcopy(rng.choice(dist.choices))


def draw_random(spec: RandomSpec | None) -> list[dict[str, Any]]:
    """``spec.trials`` draws from a generator seeded with ``spec.seed``: the same list on
    every machine and every re-run, which is what makes random trials resumable."""
    if spec is None:
        return [{}]
    rng = random.Random(spec.seed)
    return [{k: sample(d, rng) for k, d in spec.params.items()} for _ in range(spec.trials)]


def expand(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every trial's parameters: grid points x random draws x seeds (seeds innermost)."""
    return [params for params, _ in expand_named(sweep)]


def expand_named(sweep: SweepConfig) -> list[tuple[dict[str, Any], str]]:
    """:func:`expand`, each trial with the names of its named grid values joined by
    ", " (``""`` when the grid names none). Names go by position, so a zipped list may
    repeat a value under different names."""
    points = []
    for g, at in _grid_points(sweep.grid, sweep.zip):
        name = ", ".join(names[at[k]] for k, names in sweep.grid_names.items())
        points += [({**g, **r}, name) for r in draw_random(sweep.random)]
    if sweep.seeds:
        points = [({**p, "seed": s}, name) for p, name in points for s in sweep.seeds]
    return points


def format_params(params: dict[str, Any]) -> str:
    """``optim.lr=0.1 seed=0``: short, for messages and progress lines."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return json.dumps(v) if isinstance(v, list | dict) else str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in params.items()) or "(base)"


def trial_lines(plan: SweepPlan) -> list[str]:
    """The planned trials as ``convlab sweep --dry-run`` lists them (and ``convlab study
    run --dry-run``, per group): number, the key's first 12 characters, what it sets."""
    return [f"{t.index + 1:>4}  {t.key[:12]}  {format_params(t.params)}" for t in plan.trials]


# ------------------------------------------------------------------ validation


def make_config(base_raw: dict[str, Any], params: dict[str, Any], label: str) -> ExperimentConfig:
    """Apply dotted ``params`` to the raw base exactly as ``--set`` does, then validate."""
    raw = copy.deepcopy(base_raw)
    try:
        for key, value in params.items():
            set_dotted(raw, key, copy.deepcopy(value), label)
    except ConfigError as e:
        raise SweepError(f"{label}: {str(e).removeprefix('--set ')}") from None
    try:
        resolve_paths(raw, None, label)  # a swept `nets.py:Net`: against the working dir
        return validate_config(raw, label)
    except ConfigError as e:
        raise SweepError(str(e)) from None


def check_key(resolved: dict[str, Any], key: str, where: str, experiment: str) -> None:
    """Refuse a swept key that the experiment does not have, naming the nearest section.

    Stops (accepting) where the tree holds ``None`` (an optional section switched off:
    validation of the trials decides there) or a model key when the model name is swept
    (another builder has other settings).
    """
    node: Any = resolved
    parts = key.split(".")
    for i, part in enumerate(parts):
        if node is None:
            return
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SweepError(
                    f"{where}.{key}: {'.'.join(parts[:i])} has {len(node)} items; expected "
                    f"an index 0..{len(node) - 1}, got {part!r}"
                )
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                section = ".".join(parts[:i]) or "the top level"
                raise SweepError(
                    f"{where}.{key}: not a key of experiment {experiment!r}; {section} has: "
                    f"{', '.join(sorted(node))}"
                )
            node = node[part]
        else:
            raise SweepError(
                f"{where}.{key}: {'.'.join(parts[:i])} is a value, not a section, in "
                f"experiment {experiment!r}"
            )


def load_base(sweep: SweepConfig, folder: Path | None, source: str) -> dict[str, Any]:
    """The base experiment as a raw mapping: inline, a path (relative to the sweep
    file's folder first), or a bundled name."""
    if isinstance(sweep.base, dict):
        raw = copy.deepcopy(sweep.base)
        try:
            resolve_paths(raw, folder, f"{source}: base")
        except ConfigError as e:
            raise SweepError(str(e)) from None
        return raw
    candidate = (folder / sweep.base) if folder is not None else None
    try:
        path = candidate if candidate is not None and candidate.is_file() \
            else find_experiment(sweep.base)
        raw = read_yaml(path)
        resolve_paths(raw, Path(path).resolve().parent, str(path))
    except ConfigError as e:
        raise SweepError(f"{source}: base: {e}") from None
    raw.setdefault("name", path.stem)
    return raw


def fingerprint(kind: str, payload: Any) -> str:
    """Identity of a plan, kept in the study so that two different sweep files never
    share one study by accident."""
    blob = json.dumps([kind, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def build_plan(
    sweep: SweepConfig, folder: Path | None = None, source: str = "sweep"
) -> SweepPlan:
    """Expand and validate every trial; raise a one-line SweepError before anything runs."""

    base_raw = sweep.apply_set(load_base(sweep, folder, source), source)
    base = make_config(base_raw, {}, f"{source}: base")
    resolved = base.to_dict()
    swept = {**(sweep.grid or {}), **(sweep.random.params if sweep.random else {}),
             **(sweep.search.params if sweep.search else {})}
    model_name_swept = "model.name" in swept
    for section in ("grid", "random", "search"):
        block = getattr(sweep, section)
        keys = block if section == "grid" else (block.params if block is not None else {})
        for key in keys or {}:
            if model_name_swept and key.startswith("model.") and key != "model.name":
                continue
            check_key(resolved, key, f"{source}: {section}", base.name)

    if sweep.search is not None:
        return _search_plan(sweep, source, base_raw, base)

    trials = []
    # the keys a name stands for: its own, or every grid key when the lists are zipped
    named = tuple(sweep.grid or {}) if sweep.zip and sweep.grid_names else tuple(sweep.grid_names)
    for i, (params, name) in enumerate(expand_named(sweep)):
        label = f"trial {i + 1} ({format_params(params)})"
        raw = {**base_raw, "description": name} if name else base_raw
        cfg = make_config(raw, params, f"{source}: {label}")
        trials.append(TrialSpec(i, params, cfg, cfg.config_hash(), name, named))
    by_key: dict[str, TrialSpec] = {}
    for t in trials:
        if t.key in by_key:
            other = by_key[t.key]
            raise SweepError(
                f"{source}: trials {other.index + 1} ({other.label()}) and {t.index + 1} "
                f"({t.label()}) resolve to the same experiment; drop one of the values"
            )
        by_key[t.key] = t
    return SweepPlan(sweep, source, base_raw, base, tuple(trials),
                     fingerprint("grid", [t.key for t in trials]), by_key)


def _search_plan(
    sweep: SweepConfig, source: str, base_raw: dict[str, Any], base: ExperimentConfig
) -> SweepPlan:
    """A search samples at run time, so validate what can be known now: every choice and
    both ends of every range, one parameter at a time, and that the metric's split exists."""
    search = sweep.search
    assert search is not None
    if sweep.seeds:
        base_raw = {**base_raw, "seed": sweep.seeds[0]}
        base = make_config(base_raw, {}, f"{source}: base")
    for key, dist in search.params.items():
        for value in dist.corners():
            cfg = make_config(base_raw, {key: value}, f"{source}: search.{key} at {value!r}")
            _check_metric_split(cfg, search.metric, source)
    _check_metric_split(base, search.metric, source)
    payload = {"search": search.model_dump(mode="json"), "base": base_raw}
    return SweepPlan(sweep, source, base_raw, base, (), fingerprint("search", payload))


def _check_metric_split(cfg: ExperimentConfig, metric: str, source: str) -> None:
    if metric.startswith("val.") and cfg.data.val_fraction == 0:
        raise SweepError(
            f"{source}: search.metric: {metric!r} needs data.val_fraction > 0 in the "
            f"experiment (a search tuned on the test split reports an optimistic result)"
        )


def plan_sweep(source: str | Path | dict[str, Any]) -> SweepPlan:
    """A sweep file (or a raw mapping) to a validated plan."""
    from convlab.sweep.spec import parse_sweep

    if isinstance(source, dict):
        return build_plan(parse_sweep(copy.deepcopy(source)), None, "sweep")
    sweep, folder = load_sweep(source)
    return build_plan(sweep, folder, str(source))
