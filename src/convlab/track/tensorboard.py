"""TensorBoard: event files in the run folder (or below ``log_dir``), flushed at every
logging interval so ``tensorboard --logdir runs`` shows a run while it trains; at the end
the resolved config and the final metrics as HParams, so the HParams tab compares the
trials of a sweep."""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convlab.runs import Run
from convlab.track import Tracker, final_scalars, flat_params, mark, run_key

_FILE_NUMBER = itertools.count()  # two writers of one process in one second get two files

# convlab status -> the HParams plugin's session status
SESSION_STATUS = {"completed": "STATUS_SUCCESS", "failed": "STATUS_FAILURE",
                  "diverged": "STATUS_FAILURE", "interrupted": "STATUS_ABORTED",
                  "pruned": "STATUS_ABORTED"}


def log_dir_for(spec: Any, run: Run) -> Path:
    """``<run>/tensorboard``, or ``<log_dir>/<experiment>/<run-id>`` with a ``log_dir``."""
    if getattr(spec, "log_dir", None):
        return Path(spec.log_dir) / run_key(run)
    return run.tensorboard_dir


def hparam_value(v: Any) -> int | float | str | bool:
    """HParams take numbers, text and booleans only."""
    return v if isinstance(v, bool | int | float | str) else str(v)


class EventWriter:
    """One TensorBoard event file, written synchronously in this thread.

    TensorBoard's own writer (and torch's ``SummaryWriter`` on top of it) writes from a
    background thread, whose failure is printed as a thread traceback and raised only at
    a later call; here a full or read-only disk is an exception of the call that wrote,
    which the tracker turns into one warning line. The format is TensorBoard's: a
    ``brain.Event:2`` record first, then ``Event`` protos framed by its record writer.
    """

    def __init__(self, folder: Path, purge_step: int | None = None) -> None:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        self.Event = Event
        name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_FILE_NUMBER)}")  # TensorBoard's own naming
        self.file = open(folder / name, "wb")  # noqa: SIM115 - closed by close()
        self.records = RecordWriter(self.file)
        self.write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # TensorBoard drops older events from this step on
            self.write(Event(wall_time=time.time(), step=purge_step,
                             session_log=SessionLog(status=SessionLog.START)))

    def write(self, event: Any) -> None:
        self.records.write(event.SerializeToString())

    def summary(self, summary: Any, step: int = 0) -> None:
        self.write(self.Event(wall_time=time.time(), step=int(step), summary=summary))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.summary(Summary(value=[Summary.Value(tag=k, simple_value=float(v))
                                    for k, v in values.items()]), step)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, spec: Any, run: Run, config: Mapping[str, Any],
                 resume_step: int | None = None) -> None:
        self.log_dir = log_dir_for(spec, run)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config = dict(config)
        # purge_step: a resumed run's steps after its last checkpoint replace the old ones
        self.writer = EventWriter(self.log_dir, purge_step=resume_step or None)
        mark(run, self.name, log_dir=str(self.log_dir), done=False)

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        self.writer.scalars(scalars, step)
        self.writer.flush()

    def log_epoch(self, epoch: int, step: int, scalars: dict[str, float]) -> None:
        self.writer.scalars(scalars, epoch)
        self.writer.flush()

    def finish(self, run: Run) -> None:
        summary = run.summary
        final = final_scalars(summary)
        self.writer.scalars(final, int(summary.get("epochs_done") or 0))
        write_hparams(self.writer, {k: hparam_value(v) for k, v in
                                    flat_params(self.config).items()},
                      list(final), str(summary.get("status", "completed")))
        self.writer.close()
        mark(run, self.name, log_dir=str(self.log_dir), done=True)

    def close(self) -> None:
        self.writer.close()


def write_hparams(writer: EventWriter, hparams: dict[str, Any], metrics: list[str],
                  status: str) -> None:
    """The three HParams summaries (experiment, session start, session end) in the
    run's own event file, so its ``final/...`` scalars are the metric values (torch's
    ``SummaryWriter.add_hparams`` would write them to a new sub-folder: a second run)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import (
        PLUGIN_DATA_VERSION,
        PLUGIN_NAME,
        SESSION_END_INFO_TAG,
    )
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    exp, ssi, _ = hparams_summaries(hparams, dict.fromkeys(metrics, 0.0))
    sei = SessionEndInfo(status=Status.Value(SESSION_STATUS.get(status, "STATUS_UNKNOWN")))
    content = HParamsPluginData(session_end_info=sei, version=PLUGIN_DATA_VERSION)
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name=PLUGIN_NAME, content=content.SerializeToString()))
    end = Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=meta)])
    for part in (exp, ssi, end):
        writer.summary(part)
    writer.flush()
