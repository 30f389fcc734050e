"""Run folders: the only module that knows their layout.

::

    <runs_dir>/<experiment>/<run-id>/
        config.yaml            the resolved experiment config
        env.json               provenance: versions, device, threads, seed, git, data fingerprint
        metrics.csv            one row per epoch and split
        summary.json           status, final and best metrics, times; written last
        model.safetensors      the final (or restored best) weights
        normalizer.safetensors the input normalization fitted on the training split
        checkpoint/            the latest end-of-epoch state, for --resume
        steps.csv              train metrics every log_every steps; gradient norms when tracked

Every file is written to a temporary name in the same folder and renamed, so a reader
never sees half a file; ``summary.json`` is updated after the files it describes, so a
killed run reads as ``running`` (incomplete), never as silently finished.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convlab.errors import ConvlabError, RunError
from convlab.io import (  # noqa: F401 - re-exported: run-folder writers use them
    WriteError,
    atomic_write,
    read_json,
    rows_to_csv,
    write_json,
)

STATUSES = ("running", "completed", "failed", "diverged", "interrupted", "pruned")
METRIC_FIELDS = ("epoch", "split", "loss", "top1", "top5", "lr", "time_s")


def resolve_runs_dir(runs_dir: str | Path | None = None) -> Path:
    """The runs root: the argument, else ``$CONVLAB_RUNS``, else ``./runs``."""
    return Path(runs_dir or os.environ.get("CONVLAB_RUNS") or "runs")


# ------------------------------------------------------------------- a run folder


@dataclass
class Run:
    """A run folder on disk, opened for reading (``Run.open``) or being written."""

    path: Path
    summary: dict[str, Any] = field(default_factory=dict)
    model_object: Any = field(default=None, repr=False, compare=False)  # see load_model

    # -- creation -----------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: str | Path | None, experiment: str, tag: str) -> Run:
        """A fresh, uniquely named folder ``<runs_dir>/<experiment>/<time>-<tag>``."""
        parent = resolve_runs_dir(runs_dir) / experiment
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"{parent}: cannot create the run folder ({e.strerror})") from None
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{tag}"
        for i in range(1000):
            path = parent / (stem if i == 0 else f"{stem}-{i}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
            except OSError as e:
                raise RunError(f"{path}: cannot create the run folder ({e.strerror})") from None
        raise RunError(f"{parent}: too many runs named {stem}")  # pragma: no cover

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"{path}: not a run folder (no such directory)")
        if not (path / "summary.json").exists():
            raise RunError(f"{path}: not a run folder (no summary.json)")
        return cls(path, read_json(path / "summary.json"))

    # -- files ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "running"))

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def weights_path(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def normalizer_path(self) -> Path:
        return self.path / "normalizer.safetensors"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    @property
    def figures_dir(self) -> Path:
        """Where ``convlab viz`` puts its PNG files."""
        return self.path / "figures"

    @property
    def fully_conv_dir(self) -> Path:
        """Where ``convlab convert --fully-convolutional`` puts its outputs."""
        return self.path / "fully_conv"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def tensorboard_dir(self) -> Path:
        """TensorBoard event files (``tracking: [tensorboard]``, ``convlab export``)."""
        return self.path / "tensorboard"

    @property
    def tracking_path(self) -> Path:
        """``tracking.json``: what each tracker holds of this run (export skips those)."""
        return self.path / "tracking.json"

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text)

    def write_summary(self, **updates: Any) -> None:
        """Merge ``updates`` into summary.json (always the last file a step writes)."""
        self.summary.update(updates)
        write_json(self.path / "summary.json", self.summary)

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write(self.path / "metrics.csv", rows_to_csv(rows, METRIC_FIELDS))

    def write_steps(self, rows: list[dict[str, Any]]) -> None:
        """steps.csv from rows of different kinds (gradient norms, interval train
        metrics), each with a ``step``: rows of one step and epoch become one line; a
        column a row lacks is left blank. (A gradient row of step ``s`` is the gradient
        of step ``s + 1``; an epoch's last metrics row, after step ``s``, stays apart.)"""
        merged: dict[tuple[Any, Any], dict[str, Any]] = {}
        for r in rows:
            merged.setdefault((r["step"], r.get("epoch")), {}).update(r)
        if not merged:
            return
        fields = list(dict.fromkeys(k for r in rows for k in r))
        lines = [merged[k] for k in sorted(merged)]
        atomic_write(self.path / "steps.csv", rows_to_csv(lines, fields))

    def remove_stale_temp_files(self) -> int:
        """Delete temp files a killed writer left (``.NAME.tmp-PID``); return how many."""
        stale = [*self.path.glob(".*.tmp-*"), *self.checkpoint_dir.glob(".*.tmp-*")]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    # -- reading --------------------------------------------------------------------

    @property
    def config(self) -> Any:
        """The resolved config; user code it names is imported as :meth:`user_code` says."""
        from convlab.config import ModelConfig, load_config, read_yaml, upgrade_legacy

        raw = upgrade_legacy(read_yaml(self.config_path))
        raw.setdefault("name", self.path.parent.name)
        if self.summary.get("model_from") == "object":  # the model section names an
            model = raw.pop("model", {}) or {}          # object no process can rebuild
            cfg = load_config(raw, base_dir=self.path, label=str(self.config_path))
            name = model.get("name", "?") if isinstance(model, dict) else str(model)
            return cfg.model_copy(update={"model": ModelConfig.for_object(name)})
        with self.user_code():
            return load_config(raw, base_dir=self.path, label=str(self.config_path))

    @contextlib.contextmanager
    def user_code(self) -> Iterator[None]:
        """While active, the user files this run recorded are imported from their original
        path while their SHA-256 matches, else from the run folder's copy (``code/``)."""
        from convlab.usercode import prefer_copies

        try:
            records = self.env.get("user_code", [])
        except RunError:  # no env.json yet: nothing recorded
            records = []
        with prefer_copies(records, self.path):
            yield

    @property
    def env(self) -> dict[str, Any]:
        return read_json(self.path / "env.json")

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.path / "metrics.csv")

    @property
    def steps(self) -> dict[str, list[float]]:
        """steps.csv as columns, one value per line, NaN where a line has none: gradient
        norms every ``train.track_grad_norms`` steps (``total`` and one per layer) and
        train metrics every ``train.log_every`` steps (``at_epoch``, ``train_loss``,
        ``train_top1``, ``lr``). Empty when the run has none or the file is unreadable
        (an optional file)."""
        path = self.path / "steps.csv"
        if not path.exists():
            return {}
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            cols = {k: [float(r[k]) if r.get(k) not in (None, "") else float("nan")
                        for r in rows] for k in (rows[0] if rows else {}) if k is not None}
        except (OSError, ValueError, csv.Error):
            return {}
        return cols if any(v == v for v in cols.get("step", [])) else {}

    def metric(self, split: str, name: str) -> list[float]:
        """One metric per epoch for one split, e.g. ``run.metric("test", "top1")``."""
        return [float(r[name]) for r in self.metrics if r["split"] == split and r[name] != ""]

    def load_model(self, device: str = "cpu", model: Any = None) -> Any:
        """The model of this run with its saved weights, in eval mode.

        ``model``: an ``nn.Module`` to load the weights into (a run trained from a model
        object of a class no fresh process can import); default: the one given to
        :func:`convlab.load_run`, else built from the config.
        """
        from convlab.io import load_weights

        model = model if model is not None else self.model_object
        if model is None:
            from convlab.models import build, trained_weights_follow

            with self.user_code(), trained_weights_follow():
                cfg = self.config
                try:
                    model = build(cfg.model.name, cfg.model.settings,
                                  tuple(self.summary["input_shape"]),
                                  int(self.summary["num_classes"]))
                except ConvlabError as e:
                    if self.summary.get("model_from") == "object":
                        raise RunError(
                            f"{self.path}: its model was passed as a Python object and cannot "
                            f"be rebuilt here ({e}); open it with "
                            f"convlab.load_run(path, model=...)") from None
                    raise
        load_weights(model, self.weights_path)
        return model.to(device).eval()

    def metrics_table(self) -> Any:
        from rich.table import Table

        table = Table("epoch", "split", "loss", "top1", "top5", "lr", "time s")
        for r in self.metrics:
            table.add_row(*(str(r.get(k, "")) for k in METRIC_FIELDS))
        return table

    # -- notebooks (see display.py) ------------------------------------------------

    def __repr__(self) -> str:
        from convlab.runs.display import short_repr

        return short_repr(self.name, self.summary)

    def _repr_html_(self) -> str:
        """A notebook shows a run as a card: status, key metrics, small curves."""
        from convlab.runs.display import run_html

        return run_html(self.name, self.summary, self.metrics)

    def to_pandas(self) -> Any:
        """metrics.csv as a pandas DataFrame, one row per epoch and split."""
        from convlab.runs.display import to_pandas

        return to_pandas(self.metrics, METRIC_FIELDS)

    def plot(self) -> Any:
        """The loss and top-1 curves per split, as a matplotlib Figure."""
        from convlab.runs.display import plot

        return plot(self.name, self.metrics)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["epoch"] = int(r["epoch"])
        for k in ("loss", "top1", "top5", "lr", "time_s"):
            if r.get(k) not in (None, ""):
                r[k] = float(r[k])
    return rows


def list_runs(
    runs_dir: str | Path, experiment: str | None = None, status: str | None = None
) -> list[Run]:
    """Every run folder under ``runs_dir`` (sorted by name = by start time per experiment).

    A folder whose summary.json is missing or unreadable is listed as ``incomplete``: a
    run killed before its first write, or one being created right now.
    """
    return [r for _, r in list_grouped_runs(runs_dir, experiment, status)]


SWEEP_MARKERS = ("sweep.yaml", "sweep.json")  # a sweep folder: its trials are in runs/


def list_grouped_runs(
    runs_dir: str | Path, experiment: str | None = None, status: str | None = None
) -> list[tuple[str, Run]]:
    """(group, run) for every run under ``runs_dir``, sweeps and studies included.

    The group is "" for ``<runs_dir>/<experiment>/<run>``, else the sweep folder relative
    to ``runs_dir`` (``lr-width``, ``studies/capacity-smoke/width``): a sweep's trials sit
    in its ``runs/<experiment>/<run>``; its ``report/`` and ``runs/`` folders are never
    runs themselves. ``experiment`` is a glob on the experiment folder's name.
    """
    import fnmatch

    root = Path(runs_dir)
    out: list[tuple[str, Run]] = []

    def experiments(folder: Path, group: str) -> None:
        for d in _subfolders(folder):
            if _is_sweep(d):
                experiments(d / "runs", d.relative_to(root).as_posix())
                continue
            if (d / "summary.json").is_file() or _is_report(d):
                continue  # a run at the wrong depth, or a report folder
            if d.name == "studies" or any(_is_sweep(x) for x in _subfolders(d)):
                experiments(d, group)  # a study: its groups are sweeps
                continue
            if experiment and not fnmatch.fnmatchcase(d.name, experiment):
                continue
            for run_dir in _subfolders(d):
                if _is_report(run_dir):
                    continue  # `convlab report runs/exp` writes runs/exp/report/
                try:
                    run = Run.open(run_dir)
                except RunError:
                    run = Run(run_dir, {"status": "incomplete"})
                if not status or run.status == status:
                    out.append((group, run))

    if root.is_dir():
        experiments(root, "")
    return out


def _subfolders(folder: Path) -> list[Path]:
    """Sorted, not hidden (an MLflow artifact store beside the runs), no links."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and not p.is_symlink())


def _is_report(folder: Path) -> bool:
    """A report folder (report.md / report.html), not a run: it has no summary.json."""
    return not (folder / "summary.json").exists() and any(
        (folder / n).is_file() for n in ("report.md", "report.html"))


def _is_sweep(folder: Path) -> bool:
    return any((folder / m).is_file() for m in SWEEP_MARKERS)
