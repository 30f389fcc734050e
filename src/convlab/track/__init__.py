"""Experiment trackers (TensorBoard, MLflow, Weights & Biases) behind one small interface.

The training loop knows only :class:`Tracking`: it calls :meth:`Tracking.log_step` at
each logging interval and :meth:`Tracking.log_epoch` at each epoch end, and the runner
calls :meth:`Tracking.finish` once the summary is written. The run folder stays the
source of truth; a tracker is a copy, so ``convlab export`` can send old runs too.

A tracker never costs a run: every call into one is guarded, and the first exception
prints one warning line and drops that tracker for the rest of the run. A tracker whose
package is missing is refused before any training (:func:`check_trackers`), as a
one-line :class:`TrackerError` naming the pip command.

Every tracker gets the same scalar names (:func:`step_scalars`, :func:`epoch_scalars`):
``step/train/loss`` against the optimizer step, ``epoch/test/top1`` against the epoch,
``final/test/top1`` once at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from convlab.errors import ConvlabError
from convlab.io import read_json, write_json
from convlab.runs import Run

# tracker name -> (module to import, extra that installs it)
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow"),
            "wandb": ("wandb", "wandb")}

Warn = Callable[[str], None]


class TrackerError(ConvlabError):
    """A tracker that cannot be used: its package is missing, or its settings are wrong."""


def missing_package_message(name: str, why: str = "") -> str:
    module, extra = PACKAGES[name]
    return (f"tracking: {name} needs the {module} package{why}: "
            f"pip install 'convlab[{extra}]'")


def check_trackers(names: Iterable[str]) -> None:
    """Refuse (one line, before any data is read) a tracker whose package is absent."""
    for name in names:
        if importlib.util.find_spec(PACKAGES[name][0]) is None:
            raise TrackerError(missing_package_message(name))


def run_key(run: Run) -> str:
    """``<experiment>/<run-id>``: names a run in every tracker, and finds it again
    (an export of a run already sent is skipped)."""
    return f"{run.path.parent.name}/{run.path.name}"


def run_uid(run: Run) -> str:
    """A 16-character id ``[0-9a-f]`` derived from :func:`run_key` (W&B run ids)."""
    return hashlib.sha1(run_key(run).encode()).hexdigest()[:16]


def run_label(run: Run, description: str = "") -> str:
    """The name a tracker shows: the run's description (a sweep's named values) or key."""
    return f"{description} ({run.path.name})" if description else run_key(run)


# ------------------------------------------------------------------ scalar names


def step_scalars(train: Mapping[str, float], lr: float | None,
                 images_per_s: float | None) -> dict[str, float]:
    """Scalars of one logging interval: ``train`` holds ``loss``/``top1``/``top5`` (a
    ``train_`` prefix is dropped), over the images since the previous interval."""
    out = {f"step/train/{k.removeprefix('train_')}": float(v) for k, v in train.items()
           if k.removeprefix("train_") in ("loss", "top1", "top5")}
    if lr is not None:
        out["step/lr"] = float(lr)
    if images_per_s is not None:
        out["step/images_per_s"] = float(images_per_s)
    return out


def epoch_scalars(splits: Mapping[str, Mapping[str, float]], lr: float | None,
                  images_per_s: float | None) -> dict[str, float]:
    """Scalars of one epoch: every split's loss/top-1/top-5 (the rows of metrics.csv)."""
    out = {f"epoch/{split}/{k}": float(v) for split, m in splits.items()
           for k, v in m.items() if k in ("loss", "top1", "top5") and v is not None}
    if lr is not None:
        out["epoch/lr"] = float(lr)
    if images_per_s is not None:
        out["epoch/images_per_s"] = float(images_per_s)
    return out


def final_scalars(summary: Mapping[str, Any]) -> dict[str, float]:
    """``final/test/top1``...: the last epoch's metrics from summary.json."""
    return {"final/" + k.replace(".", "/"): float(v)
            for k, v in (summary.get("final") or {}).items() if v is not None}


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The resolved config as dotted keys with scalar values (lists as their text)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flat_params(v, key + "."))
        elif isinstance(v, list | tuple):
            out[key] = str(list(v))
        else:
            out[key] = "null" if v is None else v
    return out


# ------------------------------------------------------------------ the interface


class Tracker:
    """One destination. Subclasses implement what they support; any method may raise
    (the :class:`Tracking` around it turns that into one warning)."""

    name = "tracker"

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        """Scalars of one logging interval at optimizer step ``step``; flush."""

    def log_epoch(self, epoch: int, step: int, scalars: dict[str, float]) -> None:
        """Scalars of one finished epoch (``step``: optimizer steps so far)."""

    def finish(self, run: Run) -> None:
        """The run is over (its summary written): final metrics, status, artifacts."""

    def close(self) -> None:
        """Release files and processes without finishing (after a failure)."""


def read_marks(run: Run) -> dict[str, Any]:
    """``tracking.json``: what each tracker has sent of this run (for ``export``)."""
    try:
        return read_json(run.tracking_path) if run.tracking_path.exists() else {}
    except ConvlabError:
        return {}


def mark(run: Run, name: str, **record: Any) -> None:
    """Record in ``tracking.json`` that ``name`` holds this run (``done`` when complete)."""
    marks = read_marks(run)
    marks[name] = {**marks.get(name, {}), **record}
    write_json(run.tracking_path, marks)


def open_tracker(spec: Any, run: Run, config: Mapping[str, Any],
                 resume_step: int | None = None) -> Tracker:
    """The tracker a ``tracking:`` entry asks for, started for ``run``."""
    with warnings.catch_warnings():  # tqdm's, imported by the trackers, in a notebook
        warnings.filterwarnings("ignore", message="IProgress not found")  # without widgets
        return _open_tracker(spec, run, config, resume_step)


def _open_tracker(spec: Any, run: Run, config: Mapping[str, Any],
                  resume_step: int | None) -> Tracker:
    if spec.name == "tensorboard":
        from convlab.track.tensorboard import TensorBoardTracker

        return TensorBoardTracker(spec, run, config, resume_step)
    if spec.name == "mlflow":
        from convlab.track.mlflow import MlflowTracker

        return MlflowTracker(spec, run, config, resume_step)
    if spec.name == "wandb":
        from convlab.track.wandb import WandbTracker

        return WandbTracker(spec, run, config, resume_step)
    raise TrackerError(f"tracking: unknown tracker {spec.name!r}")  # pragma: no cover


def stderr_warn(text: str) -> None:
    """Warnings reach the user even from a quiet run (``convlab.run`` in a script)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


class Tracking:
    """The trackers of one run, each call guarded: a failing tracker is reported once
    and dropped, and the run goes on. Empty, it does nothing (the loop's default)."""

    def __init__(self, trackers: Iterable[Tracker] = (), warn: Warn = stderr_warn,
                 run: Run | None = None) -> None:
        self.trackers = list(trackers)
        self.warn = warn
        self.run = run
        self.failures: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def fail(self, name: str, e: BaseException, where: str = "") -> None:
        """Report a tracker's failure in one line; the run continues without it."""
        self.failures[name] = one_line(e)
        hint = f"; send it later with: convlab export {self.run.path} --to {name}" \
            if self.run is not None else ""
        self.warn(f"warning: {name} tracking failed{where} ({one_line(e)}); the run goes on "
                  f"without it{hint}")

    def _each(self, method: str, *args: Any) -> None:
        for t in list(self.trackers):
            try:
                getattr(t, method)(*args)
            except Exception as e:  # a tracker never costs a run
                self.trackers.remove(t)
                self.fail(t.name, e)
                with contextlib.suppress(Exception):  # already reported
                    t.close()

    def log_step(self, step: int, train: Mapping[str, float], lr: float | None = None,
                 images_per_s: float | None = None) -> None:
        if self.trackers:
            self._each("log_step", step, step_scalars(train, lr, images_per_s))

    def log_epoch(self, epoch: int, step: int, splits: Mapping[str, Mapping[str, float]],
                  lr: float | None = None, images_per_s: float | None = None) -> None:
        if self.trackers:
            self._each("log_epoch", epoch, step, epoch_scalars(splits, lr, images_per_s))

    def finish(self, run: Run) -> None:
        """Final metrics and status to every tracker still working; then none is left."""
        self._each("finish", run)
        self.trackers = []


def start_tracking(cfg: Any, run: Run, warn: Warn = stderr_warn,
                   resume_step: int | None = None) -> Tracking:
    """Open the trackers ``cfg.tracking`` names for ``run``; one that cannot start (W&B
    cannot reach its service, an unwritable folder) is a warning, not an error."""
    tracking = Tracking(warn=warn, run=run)
    if not cfg.tracking:
        return tracking
    check_trackers(t.name for t in cfg.tracking)
    config = cfg.to_dict()
    for spec in cfg.tracking:
        try:
            tracking.trackers.append(open_tracker(spec, run, config, resume_step))
        except TrackerError:
            raise
        except Exception as e:
            tracking.fail(spec.name, e, " to start")
    return tracking


__all__ = [
    "PACKAGES", "Tracker", "TrackerError", "Tracking", "check_trackers", "epoch_scalars",
    "final_scalars", "flat_params", "mark", "open_tracker", "read_marks", "run_key",
    "run_label", "run_uid", "start_tracking", "step_scalars",
]
