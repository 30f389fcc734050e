"""MLflow: one MLflow run per convlab run, with the flattened resolved config as params,
every scalar as a metric (``step/...`` against the optimizer step, ``epoch/...`` against
the epoch), tags (status, description, the run folder) and the config, summary and
weights as artifacts.

The tracking URI is the setting, else ``$MLFLOW_TRACKING_URI``, else a SQLite database
beside the runs (``sqlite:///<runs root>/mlflow.db``; MLflow's plain file store is
deprecated upstream). Artifacts of a SQLite store go to ``.mlflow-artifacts/`` beside
the database (hidden, so listing the runs does not see them).

The client API is used rather than ``mlflow.start_run``: no process-wide active run, so
two trainings in one process (a notebook) cannot log into each other's run. Metrics are
written by a background :class:`Sender` (a write costs ~40 ms on SQLite here, and a locked
database waits 20 s), so the store's speed never becomes the training's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from convlab.runs import Run
from convlab.track import Tracker, final_scalars, flat_params, mark, run_key, run_label

SEND_EVERY_S = 5.0  # step metrics go to MLflow at least this often, and at each epoch end
RUN_TAG = "convlab.run"  # run_key(run): finds a run again (resume, export)
STATUS = {"completed": "FINISHED", "failed": "FAILED", "diverged": "FAILED",
          "interrupted": "KILLED", "pruned": "KILLED", "running": "RUNNING"}


def runs_root(run: Run) -> Path:
    """The folder holding the experiment folders of ``run`` (``runs/``; a sweep's
    ``<sweep>/runs/``)."""
    return run.path.resolve().parent.parent


def tracking_uri(spec: Any, run: Run) -> str:
    uri = getattr(spec, "tracking_uri", None) or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{runs_root(run) / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """Beside a SQLite database; other stores choose their own (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    return (db.parent / ".mlflow-artifacts").resolve().as_uri()


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow logs each schema migration of a new database at INFO, and a failed query
    (a locked database) with its traceback at ERROR before raising it: the exception
    becomes the one warning line of :class:`convlab.track.Tracking` instead."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """One process at a time creates or migrates a SQLite store: two sweep workers
    starting together would both run MLflow's schema migrations on a new file."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(f".{db.name}.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def client_for(uri: str) -> Any:
    from mlflow import MlflowClient

    with quiet_mlflow(), creation_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # creates/migrates the database now
    return client


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The experiment's id, created when new (two sweep workers may race to create it)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location(uri)))
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def find_run(client: Any, exp_id: str, key: str) -> Any:
    """The MLflow run holding convlab run ``key``, or None."""
    found = client.search_runs([exp_id], filter_string=f"tags.`{RUN_TAG}` = '{key}'",
                               max_results=1)
    return found[0] if found else None


def metrics_batch(scalars: Mapping[str, float], step: int) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, int(step)) for k, v in scalars.items()]


def log_metrics(client: Any, run_id: str, scalars: Mapping[str, float], step: int) -> None:
    batch = metrics_batch(scalars, step)
    for i in range(0, len(batch), 1000):  # log_batch takes at most 1000 metrics
        client.log_batch(run_id, metrics=batch[i:i + 1000], synchronous=True)


def log_params(client: Any, run_id: str, config: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    params = [Param(k, str(v)[:6000]) for k, v in flat_params(config).items()]
    for i in range(0, len(params), 100):  # log_batch takes at most 100 params
        client.log_batch(run_id, params=params[i:i + 100], synchronous=True)


class Sender:
    """Writes metric batches from one background thread, in order, so a slow or locked
    store never holds up training. Its first failure is kept and raised by the next call
    from the training thread, which then drops the tracker with one warning line."""

    def __init__(self, write: Callable[[list[Any]], None]) -> None:
        self.write = write
        self.queue: queue.SimpleQueue[list[Any] | None] = queue.SimpleQueue()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, name="convlab-mlflow", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.write(batch)
                except Exception as e:  # raised in the training thread by put/drain
                    self.error = e

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, batch: list[Any]) -> None:
        self.raise_error()
        self.queue.put(batch)

    def drain(self) -> None:
        """Wait until every batch is written; raise the first failure."""
        self.stop()
        self.thread.join()
        self.raise_error()

    def stop(self) -> None:
        self.queue.put(None)


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, spec: Any, run: Run, config: Mapping[str, Any],
                 resume_step: int | None = None) -> None:
        self.pending: list[Any] = []
        self.sent_at = time.perf_counter()
        with quiet_mlflow():
            self._start(spec, run, config, resume_step)
        self.sender = Sender(self.write)

    def _start(self, spec: Any, run: Run, config: Mapping[str, Any],
               resume_step: int | None) -> None:
        self.uri = tracking_uri(spec, run)
        self.client = client_for(self.uri)
        exp_name = getattr(spec, "experiment", None) or str(config.get("name", "convlab"))
        exp_id = experiment_id(self.client, exp_name, self.uri)
        key = run_key(run)
        existing = find_run(self.client, exp_id, key) if resume_step else None
        if existing is not None:  # a resumed run continues its MLflow run
            self.run_id = existing.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            description = str(config.get("description") or "")
            tags = {RUN_TAG: key, "convlab.path": str(run.path.resolve()),
                    "status": "running", "description": description}
            if description:
                tags["mlflow.note.content"] = description
            created = self.client.create_run(exp_id, run_name=run_label(run, description),
                                             tags=tags)
            self.run_id = created.info.run_id
            log_params(self.client, self.run_id, config)
        mark(run, self.name, uri=self.uri, run_id=self.run_id, done=False)

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        """Kept, and sent with the next epoch or after ``SEND_EVERY_S``: one SQLite write
        costs ~40 ms on the 2-core CPU, too much for every logging interval."""
        self.pending += metrics_batch(scalars, step)
        if time.perf_counter() - self.sent_at >= SEND_EVERY_S:
            self.send()

    def log_epoch(self, epoch: int, step: int, scalars: dict[str, float]) -> None:
        self.pending += metrics_batch(scalars, epoch)
        self.send()

    def send(self) -> None:
        batch, self.pending = self.pending, []
        self.sent_at = time.perf_counter()
        if batch:
            self.sender.put(batch)

    def write(self, batch: list[Any]) -> None:
        """In the sender's thread: one batch into the store."""
        with quiet_mlflow():
            for i in range(0, len(batch), 1000):  # log_batch takes at most 1000 metrics
                self.client.log_batch(self.run_id, metrics=batch[i:i + 1000],
                                      synchronous=True)

    def finish(self, run: Run) -> None:
        self.send()
        self.sender.drain()  # every metric written (or the first failure raised)
        with quiet_mlflow():
            self._finish(run)

    def _finish(self, run: Run) -> None:
        summary = run.summary
        status = str(summary.get("status", "completed"))
        log_metrics(self.client, self.run_id, final_scalars(summary),
                    int(summary.get("epochs_done") or 0))
        self.client.set_tag(self.run_id, "status", status)
        for path in (run.config_path, run.summary_path, run.weights_path):
            if path.exists():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, STATUS.get(status, "FINISHED"))
        mark(run, self.name, uri=self.uri, run_id=self.run_id, done=True)

    def close(self) -> None:
        """Stop the sender; the MLflow run stays RUNNING, as MLflow shows a crashed run
        (a second call into a locked database would only wait again)."""
        self.sender.stop()
