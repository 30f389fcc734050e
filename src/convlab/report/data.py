"""The thin layer between run folders and the pure report code.

Everything below this module works on :class:`RunData`, a plain record of one run
(settings, final/best metrics, per-epoch curves, gradient norms), so comparisons,
sentences and plots can be tested on hand-made numbers without training anything.
Only this module touches :class:`convlab.runs.Run`; it never reads a run's files by
name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convlab.errors import ConvlabError, RunError
from convlab.runs import Run

SPLITS = ("train", "val", "test")
CURVE_METRICS = ("loss", "top1", "top5")

# split -> {"epoch": [...], "loss": [...], "top1": [...], "top5": [...]}, one value per epoch
Curves = dict[str, dict[str, list[float]]]
# steps.csv columns that are not gradient norms: the train metrics of each log interval
STEP_METRIC_COLUMNS = ("at_epoch", "train_loss", "train_top1", "train_top5", "lr")


class ReportError(ConvlabError):
    """A report or comparison that cannot be made: bad paths, an unwritable output folder."""


@dataclass(frozen=True)
class RunData:
    """One run as plain data: what the comparison, the sentences and the plots need.

    ``config`` is the nested resolved config (``ExperimentConfig.to_dict()``); ``final``
    and ``best`` use the summary's ``"<split>.<metric>"`` keys; ``steps`` maps the
    gradient-norm columns of steps.csv (``step``, ``epoch``, ``total``, one per layer)
    to their values, ``train_steps`` its train-metric columns (``step``, ``epoch``,
    ``at_epoch``, ``train_loss``, ``train_top1``, ``lr``), each on the lines that have
    them. ``sizes`` counts the images of each split; ``viz_figures`` are the PNG files
    ``convlab viz`` left in the run folder.
    """

    label: str
    config: dict[str, Any] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    params: int | None = None
    status: str = "completed"
    curves: Curves = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    path: str = ""
    env: dict[str, Any] = field(default_factory=dict)  # provenance (env.json)
    summary: dict[str, Any] = field(default_factory=dict)  # the raw summary.json
    train_steps: dict[str, list[float]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # split -> images
    viz_figures: list[str] = field(default_factory=list)

    @property
    def experiment(self) -> str:
        return str(self.config.get("name", ""))

    @property
    def description(self) -> str:
        return str(self.config.get("description") or "")

    @property
    def epochs_done(self) -> int:
        """Epochs trained (an epoch-0 evaluation is not one)."""
        done = self.summary.get("epochs_done")
        if isinstance(done, int):
            return done
        return max((int(e) for c in self.curves.values() for e in c.get("epoch", [])),
                   default=0)


# ------------------------------------------------------------------ finding run folders


def _natural_key(path: Path) -> list[Any]:
    """Sort ``trial-2`` before ``trial-10``: sweeps number their trials without padding."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _try_open(path: Path) -> tuple[Run | None, RunError | None]:
    try:
        return Run.open(path), None
    except RunError as e:
        return None, e


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """The runs named by ``paths``: run folders themselves, or folders holding run
    folders at any depth (``runs/<experiment>/``, a sweep folder with trials below).

    Why walk rather than ``list_runs``: sweeps and studies nest their runs one or two
    levels deeper than ``runs/<experiment>/<run>``. A run folder is not searched further
    (its ``checkpoint/`` holds no runs); hidden folders and symlinks are skipped. The
    result is deduplicated and in natural path order, which is the order trials were
    numbered in. Raises a one-line :class:`RunError` for a path that is missing or holds
    no run.
    """
    out: dict[Path, Run] = {}
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise RunError(f"{p}: no such file or directory")
        if not p.is_dir():
            raise RunError(f"{p}: not a folder (expected a run folder or a folder of runs)")
        run, err = _try_open(p)
        found = [run] if run is not None else _walk(p)
        if not found:
            if err is not None and "no summary.json" not in str(err):
                raise err  # a run folder with a broken summary: say exactly that
            raise RunError(f"{p}: no run folders in it (a run folder has a summary.json)")
        for r in found:
            out.setdefault(r.path.resolve(), r)
    return sorted(out.values(), key=lambda r: _natural_key(r.path))


def _walk(root: Path) -> list[Run]:
    found: list[Run] = []
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if here != root:
            run, _err = _try_open(here)
            if run is not None:
                found.append(run)
                dirnames[:] = []
                continue
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink()
        )
    return found


def run_labels(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the path below the runs' common parent folder.

    One run keeps ``<experiment>/<run-id>``; runs of one sweep become ``trial-003``.
    """
    if len(paths) == 1:
        p = paths[0]
        return [f"{p.parent.name}/{p.name}"]
    resolved = [p.resolve() for p in paths]
    parent = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    return [str(p.relative_to(parent)) for p in resolved]


# ------------------------------------------------------------------ reading one run


def _read_config(run: Run) -> dict[str, Any]:
    """The resolved config, without where the run was sent (``tracking`` is not a setting
    of the experiment); a run written by an older convlab whose config no longer
    validates is still shown, from its raw YAML."""
    try:
        cfg = dict(run.config.to_dict())
    except ConvlabError:
        from convlab.config import read_yaml

        try:
            cfg = read_yaml(run.config_path)
        except ConvlabError:
            return {}
    cfg.pop("tracking", None)
    return cfg


def curves_from_rows(rows: Iterable[dict[str, Any]]) -> Curves:
    """metrics.csv rows -> per-split lists (epochs ascending); blank values are skipped
    for that metric only (top-5 is blank with fewer than 6 classes)."""
    curves: Curves = {}
    for r in sorted(rows, key=lambda r: int(r["epoch"])):
        split = str(r["split"])
        c = curves.setdefault(split, {"epoch": []})
        c["epoch"].append(float(r["epoch"]))
        for k in CURVE_METRICS:
            v = r.get(k)
            if v not in (None, ""):
                c.setdefault(k, []).append(float(v))
    # a metric blank in some epochs cannot be drawn against "epoch": drop it
    for c in curves.values():
        for k in [k for k in c if k != "epoch" and len(c[k]) != len(c["epoch"])]:
            del c[k]
    return {s: curves[s] for s in (*SPLITS, *sorted(set(curves) - set(SPLITS))) if s in curves}


def split_steps(cols: dict[str, list[float]]
                ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """steps.csv columns (NaN where a line has no value) -> (gradient norms, train
    metrics), each holding only the lines that have its values, so every column of
    either is complete and can be drawn against its ``step``."""
    def rows_with(key: str, names: list[str]) -> dict[str, list[float]]:
        keep = [i for i, v in enumerate(cols.get(key, [])) if v == v]  # not NaN
        out = {k: [cols[k][i] for i in keep] for k in names}
        return {k: v for k, v in out.items() if all(x == x for x in v)} if keep else {}

    index = [k for k in ("step", "epoch") if k in cols]
    grads = [k for k in cols if k not in index and k not in STEP_METRIC_COLUMNS]
    metrics = [k for k in STEP_METRIC_COLUMNS if k in cols]
    return rows_with("total", index + grads), rows_with("train_loss", index + metrics)


def split_sizes(env: dict[str, Any]) -> dict[str, int]:
    """Images in each split, as env.json records them (a split of 0 images is left out)."""
    data = env.get("data") or {}
    return {s: int(data[s]) for s in SPLITS if isinstance(data.get(s), int) and data[s] > 0}


def run_data(run: Run, label: str | None = None) -> RunData:
    """Read one run folder into a :class:`RunData`."""
    s = run.summary
    shape = s.get("input_shape")
    grads, train_steps = split_steps(run.steps)
    env = _read_env(run)
    return RunData(
        label=label or run.name,
        config=_read_config(run),
        final={k: float(v) for k, v in (s.get("final") or {}).items() if v is not None},
        best={k: float(v) for k, v in (s.get("best") or {}).items() if v is not None},
        best_epoch=s.get("best_epoch"),
        params=s.get("params"),
        status=run.status,
        curves=curves_from_rows(run.metrics),
        steps=grads,
        input_shape=tuple(shape) if shape else None,
        num_classes=s.get("num_classes"),
        path=str(run.path),
        env=env,
        summary=dict(s),
        train_steps=train_steps,
        sizes=split_sizes(env),
        viz_figures=[str(p) for p in sorted(run.figures_dir.glob("*.png"))]
        if run.figures_dir.is_dir() else [],
    )


def _read_env(run: Run) -> dict[str, Any]:
    try:
        return run.env
    except ConvlabError:  # a run killed before env.json: the report still shows the rest
        return {}


def load_runs(paths: Iterable[str | Path]) -> list[RunData]:
    """Find the runs under ``paths`` and read them, labelled relative to each other."""
    runs = find_runs(paths)
    labels = run_labels([r.path for r in runs])
    return [run_data(r, label) for r, label in zip(runs, labels, strict=True)]
