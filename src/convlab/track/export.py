"""Send run folders that already exist to a tracker (``convlab export``).

The run folder is the source of truth: its metrics.csv (every epoch and split), steps.csv
(train metrics at each logging interval) and summary are replayed through the same
:class:`~convlab.track.Tracker` a live run uses, so an exported run looks like a tracked
one. Exporting is idempotent: a run the tracker already holds complete (recorded in the
run's ``tracking.json``, or found in MLflow by its ``convlab.run`` tag) is skipped; a
partial copy (a tracker that failed mid-run) is replaced.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from convlab.errors import ConvlabError
from convlab.runs import Run
from convlab.track import (
    Tracker,
    check_trackers,
    epoch_scalars,
    open_tracker,
    read_marks,
    step_scalars,
)

Outcome = Literal["sent", "skipped"]


@dataclass(frozen=True)
class Exported:
    run: Run
    outcome: Outcome
    why: str = ""


def run_config(run: Run) -> dict[str, Any]:
    """The resolved config; the raw YAML for a run whose config no longer validates."""
    try:
        return dict(run.config.to_dict())
    except ConvlabError:
        from convlab.config import read_yaml

        try:
            return read_yaml(run.config_path)
        except ConvlabError:
            return {}


def replay_events(run: Run) -> Iterator[tuple[str, int, int, dict[str, float]]]:
    """``("step", step, epoch, scalars)`` and ``("epoch", step, epoch, scalars)`` in the
    order a live run sent them (by step; an epoch after its last logging interval)."""
    rows = run.metrics
    steps = run.steps
    summary = run.summary
    epochs = sorted({int(r["epoch"]) for r in rows})
    done = max([e for e in epochs if e > 0], default=0)
    per_epoch = int(summary.get("steps") or 0) // done if done else 0
    end_step: dict[int, int] = {}
    events: list[tuple[int, int, str, int, dict[str, float]]] = []
    if "step" in steps and "train_loss" in steps:
        for i, step in enumerate(steps["step"]):
            train = {k: steps[f"train_{k}"][i] for k in ("loss", "top1", "top5")
                     if f"train_{k}" in steps and not math.isnan(steps[f"train_{k}"][i])}
            if not train:
                continue  # a gradient-norm line only
            lr = steps["lr"][i] if "lr" in steps and not math.isnan(steps["lr"][i]) else None
            epoch = int(steps["epoch"][i]) if "epoch" in steps else 0
            end_step[epoch] = max(end_step.get(epoch, 0), int(step))
            events.append((int(step), 0, "step", epoch, step_scalars(train, lr, None)))
    for e in epochs:
        splits = {str(r["split"]): {k: r[k] for k in ("loss", "top1", "top5")
                                    if r.get(k) not in (None, "")}
                  for r in rows if int(r["epoch"]) == e}
        lrs = [r["lr"] for r in rows if int(r["epoch"]) == e and r.get("lr") not in (None, "")]
        step = end_step.get(e, e * per_epoch)
        events.append((step, 1, "epoch", e, epoch_scalars(splits, lrs[0] if lrs else None,
                                                          None)))
    for step, _, kind, epoch, scalars in sorted(events, key=lambda t: (t[0], t[1], t[3])):
        yield kind, step, epoch, scalars


def replay(tracker: Tracker, run: Run) -> None:
    for kind, step, epoch, scalars in replay_events(run):
        if kind == "step":
            tracker.log_step(step, scalars)
        else:
            tracker.log_epoch(epoch, step, scalars)
    tracker.finish(run)


def already_there(spec: Any, run: Run) -> str:
    """Why ``run`` need not be sent again ("" when it must); removes a partial copy."""
    record = read_marks(run).get(spec.name, {})
    if spec.name == "tensorboard":
        from convlab.track.tensorboard import log_dir_for

        folder = log_dir_for(spec, run)
        if record.get("done") and record.get("log_dir") == str(folder):
            return f"already in {folder}"
        for old in folder.glob("events.out.tfevents.*") if folder.is_dir() else []:
            old.unlink()  # a partial copy: replaced
        return ""
    if spec.name == "mlflow":
        from convlab.track.mlflow import client_for, find_run, tracking_uri

        uri = tracking_uri(spec, run)
        client = client_for(uri)
        name = getattr(spec, "experiment", None) or str(run_config(run).get("name", "convlab"))
        exp = client.get_experiment_by_name(name)
        found = find_run(client, exp.experiment_id, f"{run.path.parent.name}/{run.path.name}") \
            if exp is not None else None
        if found is None:
            return ""
        if found.info.status != "RUNNING":
            return f"already in {uri} (run {found.info.run_id})"
        client.delete_run(found.info.run_id)  # a partial copy: replaced
        return ""
    if spec.name == "wandb":
        from convlab.track.wandb import existing_runs

        if record.get("done") and existing_runs(run):
            return f"already in {existing_runs(run)[-1]}"
        for old in existing_runs(run):
            shutil.rmtree(old, ignore_errors=True)
        return ""
    raise ConvlabError(f"--to: unknown tracker {spec.name!r}")  # pragma: no cover


def export_runs(runs: list[Run], spec: Any) -> Iterator[Exported]:
    """Send each run to the tracker ``spec`` describes (a ``tracking:`` entry)."""
    check_trackers([spec.name])
    for run in runs:
        why = already_there(spec, run)
        if why:
            yield Exported(run, "skipped", why)
            continue
        tracker = open_tracker(spec, run, run_config(run))
        try:
            replay(tracker, run)
        except BaseException:
            tracker.close()
            raise
        yield Exported(run, "sent")
