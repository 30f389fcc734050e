"""The sweep's index files: ``sweep.json`` and ``trials.csv``, rebuilt from the study.

The Optuna study is the record of truth (it is shared between machines); these files
are a readable snapshot of it, rewritten atomically after every trial, so a reader never
sees half a file and a killed sweep still leaves an index that is at most one trial old.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from convlab.runs import atomic_write, rows_to_csv, write_json
from convlab.sweep.plan import SweepPlan

# trial user attributes written by the workers (see convlab.sweep.execute)
KEY = "convlab.key"
INDEX = "convlab.index"
PARAMS = "convlab.params"
STATUS = "convlab.status"
OWNER = "convlab.owner"
RUN = "convlab.run"
SECONDS = "convlab.seconds"
FINAL = "convlab.final"
ERROR = "convlab.error"

DONE = ("completed", "diverged", "pruned")
STATUS_ORDER = ("completed", "diverged", "pruned", "failed", "interrupted", "killed",
                "cancelled", "running", "pending")
BASE_FIELDS = ("index", "status", "value", "attempts", "trial", "host", "run", "seconds")


def trial_status(t: FrozenTrial) -> str:
    """A trial's outcome in convlab's words; a FAIL without a recorded outcome is a
    trial whose worker died (failed by the heartbeat or the process check)."""
    if t.state == TrialState.RUNNING:
        return "running"
    if t.state == TrialState.WAITING:
        return "pending"
    if t.state == TrialState.PRUNED:
        return "pruned"
    if t.state == TrialState.COMPLETE:
        return str(t.user_attrs.get(STATUS, "completed"))
    return str(t.user_attrs.get(STATUS, "killed"))


def _value(t: FrozenTrial) -> float | None:
    v = t.value if t.state == TrialState.COMPLETE else None
    return v if v is not None and math.isfinite(v) else None


def _row(
    t: FrozenTrial | None, index: int, params: dict[str, Any], attempts: int
) -> dict[str, Any]:
    if t is None:
        return {"index": index, "status": "pending", "value": None, "attempts": 0,
                "trial": None, "host": None, "run": None, "seconds": None,
                "params": params, "error": None}
    owner = t.user_attrs.get(OWNER) or {}
    return {
        "index": index, "status": trial_status(t), "value": _value(t), "attempts": attempts,
        "trial": t.number, "host": owner.get("host"), "run": t.user_attrs.get(RUN),
        "seconds": t.user_attrs.get(SECONDS), "params": params,
        "error": t.user_attrs.get(ERROR),
    }


def _pick(group: list[FrozenTrial]) -> FrozenTrial:
    """The trial that stands for a grid point: its completion, else what is in flight,
    else the latest attempt."""
    for state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
        for t in group:
            if t.state == state:
                return t
    return max(group, key=lambda t: t.number)


def collect(plan: SweepPlan, trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """One row per planned trial (grid/random), or per Optuna trial (search); ``index``
    counts from 1, as the progress lines and messages do."""
    if plan.mode == "search":
        return [
            _row(t, t.number + 1, t.user_attrs.get(PARAMS, t.params),
                 int(t.state != TrialState.WAITING))
            for t in sorted(trials, key=lambda t: t.number)
        ]
    groups: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        groups.setdefault(str(t.user_attrs.get(KEY)), []).append(t)
    rows = []
    for spec in plan.trials:
        group = groups.get(spec.key, [])
        started = sum(t.state != TrialState.WAITING for t in group)
        rows.append(_row(_pick(group) if group else None, spec.index + 1, spec.params,
                         started))
    return rows


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {s: 0 for s in STATUS_ORDER}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return {k: v for k, v in out.items() if v}


def is_done(plan: SweepPlan, rows: list[dict[str, Any]]) -> bool:
    """Grid: every point has a result. Search: ``trials`` trials have finished."""
    finished = sum(r["status"] in DONE for r in rows)
    if plan.mode == "search":
        return finished >= plan.total
    return finished == len(plan.trials)


def best(plan: SweepPlan, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [r for r in rows if r["value"] is not None and r["status"] == "completed"]
    if not scored:
        return None
    pick = max if plan.direction == "maximize" else min
    return pick(scored, key=lambda r: r["value"])


def write_index(
    sweep_dir: Path, plan: SweepPlan, trials: list[FrozenTrial], storage: str
) -> list[dict[str, Any]]:
    """Rewrite ``sweep.json`` and ``trials.csv``; return the rows."""
    rows = collect(plan, trials)
    summary = {
        "name": plan.name,
        "description": plan.sweep.description,
        "mode": plan.mode,
        "study": plan.name,
        "storage": storage,
        "metric": plan.metric,
        "direction": plan.direction,
        "planned": plan.total,
        "done": is_done(plan, rows),
        "counts": counts(rows),
        "best": best(plan, rows),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "trials": rows,
    }
    write_json(sweep_dir / "sweep.json", summary)
    keys = plan.param_keys or sorted({k for r in rows for k in r["params"]})
    flat = []
    for r in rows:
        row = {k: v for k, v in r.items() if k != "params"}
        for k in keys:
            v = r["params"].get(k)
            row[k] = json.dumps(v) if isinstance(v, list | dict) else v
        flat.append(row)
    atomic_write(sweep_dir / "trials.csv", rows_to_csv(flat, [*BASE_FIELDS, *keys, "error"]))
    return rows
