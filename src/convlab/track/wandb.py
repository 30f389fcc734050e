"""Weights & Biases: a W&B run per convlab run, offline unless the environment (or the
setting) says otherwise, so nothing leaves the machine until ``wandb sync`` uploads the
run directory (``<run folder>/wandb/offline-run-*``).

The W&B run id is derived from the run folder (:func:`convlab.track.run_uid`), so a
resumed run continues its W&B run and an export finds a run already sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convlab.runs import Run
from convlab.track import Tracker, final_scalars, mark, run_label, run_uid


def wandb_mode(spec: Any) -> str:
    """The setting, else ``$WANDB_MODE``, else offline."""
    return getattr(spec, "mode", None) or os.environ.get("WANDB_MODE") or "offline"


def wandb_dir(run: Run) -> Path:
    """Where W&B writes its ``wandb/`` folder: ``$WANDB_DIR``, else the run folder."""
    return Path(os.environ.get("WANDB_DIR") or run.path)


def existing_runs(run: Run) -> list[Path]:
    """This run's W&B run directories already on disk (offline or online)."""
    folder = wandb_dir(run) / "wandb"
    uid = run_uid(run)
    return sorted(p for p in folder.glob(f"*run-*-{uid}") if p.is_dir()) \
        if folder.is_dir() else []


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, spec: Any, run: Run, config: Mapping[str, Any],
                 resume_step: int | None = None) -> None:
        import wandb

        self.mode = wandb_mode(spec)
        folder = wandb_dir(run)
        folder.mkdir(parents=True, exist_ok=True)
        description = str(config.get("description") or "")
        self.wb = wandb.init(
            project=getattr(spec, "project", None) or str(config.get("name", "convlab")),
            entity=getattr(spec, "entity", None), name=run_label(run, description),
            notes=description or None, id=run_uid(run), config=dict(config),
            dir=str(folder), mode=self.mode, reinit="create_new",
            resume="allow" if resume_step else None,
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True,
                                    save_code=False),
        )
        self.wb.define_metric("epoch")
        self.wb.define_metric("epoch/*", step_metric="epoch")
        mark(run, self.name, id=run_uid(run), mode=self.mode, dir=str(self.wb.dir),
             done=False)

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        self.wb.log(dict(scalars), step=step)

    def log_epoch(self, epoch: int, step: int, scalars: dict[str, float]) -> None:
        self.wb.log({**scalars, "epoch": epoch}, step=step)

    def finish(self, run: Run) -> None:
        summary = run.summary
        status = str(summary.get("status", "completed"))
        for k, v in final_scalars(summary).items():
            self.wb.summary[k] = v
        self.wb.summary["status"] = status
        self.wb.finish(exit_code=0 if status == "completed" else 1)
        mark(run, self.name, id=run_uid(run), mode=self.mode, done=True)

    def close(self) -> None:
        self.wb.finish(exit_code=1)
