"""Running a sweep: the study, the queue, the workers (design in ``convlab.sweep``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from convlab.config import ExperimentConfig
from convlab.errors import ConvlabError
from convlab.runs import Run, atomic_write, resolve_runs_dir
from convlab.sweep import index as ix
from convlab.sweep.plan import SweepPlan, TrialSpec, format_params, plan_sweep
from convlab.sweep.spec import Distribution, SweepError
from convlab.sweep.storage import StorageSpec, owner_alive, owner_record
from convlab.train.progress import Reporter

if TYPE_CHECKING:  # the loop imports torch; the CLI imports this module before it needs it
    from convlab.train.loop import EpochHook

Echo = Callable[[str], None]

MAX_KILLED = 3  # a grid point whose worker died this often is left for the next invocation
ORPHAN_S = 120.0  # a RUNNING trial nobody has claimed in writing this long ago is dead
ACTIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)


def trial_line(done: int, total: int, status: str, label: str, metric: str, value: float,
               seconds: float) -> str:
    """``[3/6] completed  lr=0.1  val.top1 91.23%  12.3s``: accuracies in %, as
    everywhere else; losses to 4 significant digits."""
    shown = ""
    if math.isfinite(value):
        shown = (f"{metric} {100 * value:.2f}%" if metric.endswith(("top1", "top5"))
                 else f"{metric} {value:.4g}")
    return "  ".join(x for x in (f"[{done}/{total}] {status}", label, shown,
                                 f"{seconds:.1f}s") if x)


def physical_share(workers: int) -> int:
    """``train.threads`` per worker process: the cores shared fairly, at least one
    (docs/architecture.md, "Performance": oversubscribing the cores made one run 30x slower)."""
    from convlab.train.runner import physical_cores

    return max(1, physical_cores() // workers)


def with_threads(cfg: ExperimentConfig, share: int) -> ExperimentConfig:
    """The config a worker trains: ``train.threads`` set to its share of the cores, or
    to what the experiment asks for when that is less."""
    explicit = cfg.train.threads
    threads = share if explicit is None else min(explicit, share)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"threads": threads})})


@dataclass
class SweepResult:
    """What ``run_sweep`` leaves: the folder, one row per trial, and whether it is done."""

    folder: Path
    plan: SweepPlan
    rows: list[dict[str, Any]]
    done: bool
    interrupted: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return ix.counts(self.rows)

    @property
    def index(self) -> Path:
        return self.folder / "trials.csv"


# -------------------------------------------------------------------- the study


def _prepare(plan: SweepPlan, spec: StorageSpec, sweep_dir: Path) -> int:
    """Create or load the study, check it holds this sweep, and queue every grid point
    that has no completed, queued or running trial; return how many trials are left.

    All under the sweep lock, opening the storage included: on a fresh database Optuna
    creates its tables then, and two workers doing that at once can collide.
    """
    lock = spec.lock(sweep_dir, plan.name)
    try:
        with lock():
            storage = spec.open(sweep_dir)
            try:
                study = optuna.create_study(storage=storage, study_name=plan.name,
                                            direction=plan.direction, load_if_exists=True)
            except Exception as e:  # noqa: BLE001 - storage/driver errors: one line
                raise SweepError(f"study {plan.name!r}: cannot create or load it "
                                 f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                                 ) from None
            fail_dead_trials(study, storage, spec)  # a killed earlier run's, before the checks
            _check_study(plan, study, storage)
            if plan.mode == "grid":
                _enqueue_missing(plan, study, storage, startup=True)
            study_id = storage.get_study_id_from_name(plan.name)
            rows = ix.collect(plan, storage.get_all_trials(study_id, deepcopy=False))
    finally:
        lock.close()
    return sum(r["status"] not in ix.DONE for r in rows) if plan.mode == "grid" \
        else max(0, plan.total - sum(r["status"] in ix.DONE for r in rows))


def _check_study(plan: SweepPlan, study: optuna.Study, storage: Any) -> None:
    """One study, one sweep: refuse another kind of sweep's study; adopt an edited sweep
    file (a grid value added...) unless a live worker is running a trial it no longer
    has, and cancel the queued trials it no longer has."""
    if study.direction.name.lower() != plan.direction:
        raise SweepError(
            f"study {plan.name!r} exists with direction {study.direction.name.lower()}; "
            f"this sweep wants {plan.direction}: give the sweep another name:"
        )
    attrs = study.user_attrs
    mode = attrs.get("convlab.mode")
    if mode is not None and mode != plan.mode:
        raise SweepError(f"study {plan.name!r} holds a {mode} sweep, this file is a "
                         f"{plan.mode}: give the sweep another name:")
    if attrs.get("convlab.plan") == plan.fingerprint:
        return
    study_id = storage.get_study_id_from_name(plan.name)
    live = storage.get_all_trials(study_id, deepcopy=False,
                                  states=(TrialState.WAITING, TrialState.RUNNING))
    foreign = [t for t in live if t.user_attrs.get(ix.KEY) not in plan.by_key]
    running = [t for t in foreign if t.state == TrialState.RUNNING]
    if running:
        raise SweepError(
            f"study {plan.name!r} is running another version of this sweep ({len(running)} "
            f"trials that this file does not have); wait for it, or give this version "
            f"another name:"
        )
    for t in foreign:  # queued by the previous version of the file: not ours to run
        with contextlib.suppress(UpdateFinishedTrialError):
            storage.set_trial_user_attr(t._trial_id, ix.STATUS, "cancelled")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    study.set_user_attr("convlab.plan", plan.fingerprint)
    study.set_user_attr("convlab.mode", plan.mode)
    study.set_user_attr("convlab.total", plan.total)


def _enqueue_missing(plan: SweepPlan, study: optuna.Study, storage: Any, startup: bool) -> int:
    """Queue the grid points that need a (new) trial; the caller holds the sweep lock.

    At start-up that is every point without a completed, queued or running trial (so
    failed and interrupted points are retried once per invocation); later only points
    whose last trial was killed (a FAIL without an outcome: its worker died), at most
    MAX_KILLED times.
    """
    groups: dict[str, list[FrozenTrial]] = {}
    study_id = storage.get_study_id_from_name(plan.name)
    for t in storage.get_all_trials(study_id, deepcopy=False):
        groups.setdefault(str(t.user_attrs.get(ix.KEY)), []).append(t)
    queued = 0
    for t in plan.trials:
        group = groups.get(t.key, [])
        if any(g.state in ACTIVE for g in group):
            continue
        if not startup:
            if not group:
                continue
            last = max(group, key=lambda g: g.number)
            killed = sum(ix.STATUS not in g.user_attrs for g in group)
            if ix.STATUS in last.user_attrs or killed >= MAX_KILLED:
                continue
        study.enqueue_trial(params={}, user_attrs={
            ix.KEY: t.key, ix.INDEX: t.index, ix.PARAMS: t.params})
        queued += 1
    return queued


def fail_dead_trials(study: optuna.Study, storage: Any, spec: StorageSpec) -> None:
    """RUNNING -> FAIL for trials whose worker is dead: by the heartbeat on a database,
    by the process table on a journal, and, anywhere, for a trial that never got an
    owner record (its worker died within a moment of claiming it). The transition is
    atomic, so each death is declared once whoever notices it."""
    if spec.url is not None:
        optuna.storages.fail_stale_trials(study)  # the heartbeat's verdict
    now = dt.datetime.now()
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(ix.OWNER)
        if owner is not None:
            dead = spec.url is None and owner_alive(owner) is False
        else:
            start = t.datetime_start
            dead = start is not None and (now - start).total_seconds() > ORPHAN_S
        if dead:
            with contextlib.suppress(UpdateFinishedTrialError):  # another was first
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


# ------------------------------------------------------------------- the worker


def pruning_hook(trial: optuna.Trial, metric: str, direction: str) -> EpochHook:
    """Reports the search metric to Optuna after every epoch; stops unpromising trials
    (the loop then ends the run with status ``pruned``, its weights and metrics kept)."""
    split, name = metric.split(".")
    worse = "below" if direction == "maximize" else "above"

    def hook(epoch: int, splits: dict[str, dict[str, float]]) -> str | None:
        value = splits.get(split, {}).get(name)
        if value is None or not math.isfinite(value):
            return None
        trial.report(float(value), epoch)
        if trial.should_prune():
            return (f"pruned by the sweep after epoch {epoch}: {metric} {value:.4g} "
                    f"{worse} the median of earlier trials at that epoch")
        return None

    return hook


class _Heartbeat:
    """Records the running trial's heartbeat in the RDB every interval (a thread: the
    loop never stops for it)."""

    def __init__(self, storage: Any, trial_id: int, interval: float) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        storage.record_heartbeat(trial_id)  # before the owner record: see _claimed
        self.thread = threading.Thread(target=self._beat, daemon=True, name="sweep-heartbeat")
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - a missed beat is tolerated by the grace period
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _suggest(trial: optuna.Trial, key: str, dist: Distribution) -> Any:
    if dist.kind in ("loguniform", "uniform"):
        return trial.suggest_float(key, dist.low, dist.high,  # type: ignore[arg-type]
                                   log=dist.kind == "loguniform")
    if dist.kind == "int":
        return trial.suggest_int(key, int(dist.low), int(dist.high))  # type: ignore[arg-type]
    choices = list(dist.choices)
    if all(c is None or isinstance(c, bool | int | float | str) for c in choices):
        return trial.suggest_categorical(key, choices)
    # lists/mappings (e.g. a stages list) are not Optuna categories: choose their JSON
    return json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in choices]))


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, ConvlabError) else f"{type(e).__name__}: {text}".rstrip(": ")


class Worker:
    """Takes trials from the study until there is nothing left to take or wait for.

    One per process. ``threads`` is this process's share of the cores; ``name`` labels
    its lines; ``number`` offsets the TPE seed so parallel searchers do not propose the
    same first points.
    """

    def __init__(self, plan: SweepPlan, spec: StorageSpec, sweep_dir: Path, threads: int,
                 name: str = "", number: int = 0, echo: Echo | None = print) -> None:
        self.plan, self.spec, self.sweep_dir = plan, spec, sweep_dir
        self.threads, self.name, self.echo = threads, name, echo
        self.storage = spec.open(sweep_dir)
        self.lock = spec.lock(sweep_dir, plan.name)
        search = plan.sweep.search
        sampler: optuna.samplers.BaseSampler | None = None
        pruner: optuna.pruners.BasePruner | None = None
        if search is not None:
            sampler = optuna.samplers.TPESampler(
                seed=search.seed + number, n_startup_trials=search.startup_trials)
            pruner = optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials) \
                if search.pruning else optuna.pruners.NopPruner()
        self.study = optuna.load_study(study_name=plan.name, storage=self.storage,
                                       sampler=sampler, pruner=pruner)
        self.study_id = self.storage.get_study_id_from_name(plan.name)
        self.heartbeat: _Heartbeat | None = None
        self.stopping = False
        self.poll = 0.5 if spec.url is None else min(2.0, float(spec.heartbeat))

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.stopping:
                self.recover()
                claimed = self.claim()
                if claimed is not None:
                    self.run_trial(*claimed)
                    continue
                if not self._in_flight():
                    break
                time.sleep(self.poll)  # others' trials may yet die and come back to us
        finally:
            self.lock.close()

    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)

    def _in_flight(self) -> bool:
        live = self.trials((TrialState.WAITING, TrialState.RUNNING))
        if self.plan.mode == "grid":
            return any(t.user_attrs.get(ix.KEY) in self.plan.by_key for t in live)
        return bool(live)

    # -- dead workers ------------------------------------------------------------------

    def recover(self) -> None:
        """Fail the trials of dead workers, then queue their grid points again."""
        fail_dead_trials(self.study, self.storage, self.spec)
        if self.plan.mode == "grid" and self._needs_requeue():
            with self.lock():
                _enqueue_missing(self.plan, self.study, self.storage, startup=False)

    def _needs_requeue(self) -> bool:
        """A cheap look without the lock; ``_enqueue_missing`` decides under it."""
        groups: dict[str, list[FrozenTrial]] = {}
        for t in self.trials():
            groups.setdefault(str(t.user_attrs.get(ix.KEY)), []).append(t)
        for key in self.plan.by_key:
            group = groups.get(key, [])
            if group and not any(g.state in ACTIVE for g in group):
                last = max(group, key=lambda g: g.number)
                if ix.STATUS not in last.user_attrs:
                    return True
        return False

    # -- claiming ----------------------------------------------------------------------

    def claim(self) -> tuple[int, dict[str, Any], TrialSpec | None, optuna.Trial | None] | None:
        """Take one trial: a queued grid point (atomically, WAITING -> RUNNING), or a new
        search trial while fewer than ``trials`` are queued, running or finished."""
        if self.plan.mode == "grid":
            for t in self.trials((TrialState.WAITING,)):
                spec = self.plan.by_key.get(t.user_attrs.get(ix.KEY))  # type: ignore[arg-type]
                if spec is None:
                    continue
                try:
                    won = self.storage.set_trial_state_values(t._trial_id, TrialState.RUNNING)
                except UpdateFinishedTrialError:
                    continue
                if won:
                    self._claimed(t._trial_id)
                    return t._trial_id, spec.params, spec, None
            return None
        search = self.plan.sweep.search
        assert search is not None
        with self.lock():
            taken = [t for t in self.trials() if t.state != TrialState.FAIL]
            if len(taken) >= search.trials:
                return None
            trial = self.study.ask()
            params = {k: _suggest(trial, k, d) for k, d in search.params.items()}
            self.storage.set_trial_user_attr(trial._trial_id, ix.PARAMS, params)
            self._claimed(trial._trial_id)
        return trial._trial_id, params, None, trial

    def _claimed(self, trial_id: int) -> None:
        """Heartbeat first, owner record second: a trial with an owner record always has
        a heartbeat, and one without is an orphan after ORPHAN_S (see ``recover``)."""
        if self.spec.url is not None:
            self.heartbeat = _Heartbeat(self.storage, trial_id, self.spec.heartbeat)
        self.storage.set_trial_user_attr(trial_id, ix.OWNER, owner_record(self.name))

    # -- one trial ---------------------------------------------------------------------

    def run_trial(self, trial_id: int, params: dict[str, Any], spec: TrialSpec | None,
                  trial: optuna.Trial | None) -> None:
        from convlab.train.runner import resume_run, run_experiment

        number = spec.index + 1 if spec is not None else (trial.number + 1 if trial else 0)
        label = spec.label() if spec is not None else format_params(params)
        t0 = time.time()
        status, run_path, error, final = "failed", None, None, {}
        cfg: ExperimentConfig | None = None
        try:
            base_cfg = spec.config if spec is not None else \
                self.plan.trial_config(params, f"trial {number} ({label})")
            cfg = with_threads(base_cfg, self.threads)
            search = self.plan.sweep.search
            hook = pruning_hook(trial, search.metric, self.plan.direction) \
                if trial is not None and search is not None and search.pruning else None
            earlier = self._resumable_run(base_cfg)
            if earlier is not None:
                self._say(f"trial {number}: resuming {earlier} from its checkpoint")
                run = resume_run(earlier, reporter=Reporter(), epoch_hook=hook,
                                 threads=cfg.train.threads)
            else:
                run = run_experiment(cfg, runs_dir=self.sweep_dir / "runs", quiet=True,
                                     reporter=Reporter(), epoch_hook=hook)
            status, run_path = run.status, run.path
            final = dict(run.summary.get("final") or {})
        except KeyboardInterrupt:
            self._finish(trial_id, trial, "interrupted", label, number,
                         self._find_run(cfg, t0), None, {}, t0)
            self.stopping = True
            raise
        except Exception as e:  # noqa: BLE001 - one trial's failure must not end the sweep
            error = _one_line(e)
            run_path = self._find_run(cfg, t0)
        if status == "interrupted":  # first Ctrl-C / SIGTERM: checkpointed, then stopped
            self.stopping = True
        self._finish(trial_id, trial, status, label, number, run_path, error, final, t0)

    def _runs_of(self, cfg: ExperimentConfig) -> list[tuple[Path, str]]:
        """This sweep's run folders of ``cfg``'s experiment, newest first, with the tag
        their name ends in (``<date>-<time>-<tag>[-<n>]``: the config hash's first 8)."""
        folder = self.sweep_dir / "runs" / cfg.name
        found = [(p, p.name.split("-")[2]) for p in folder.glob("*-*-*") if p.is_dir()]
        return sorted(found, key=lambda f: f[0].stat().st_mtime, reverse=True)

    def _resumable_run(self, base: ExperimentConfig) -> Path | None:
        """The run folder an earlier attempt at this trial left with a checkpoint (Ctrl-C,
        or a worker killed mid-trial), to go on from there instead of from scratch.

        Only grid trials have earlier attempts (a search trial's parameters are new).
        The earlier attempt may have run with another thread count, which its config
        records and its name's hash includes. Once this worker has claimed the trial no
        earlier attempt is running: its worker stopped, or was judged dead (process
        check on this machine, heartbeat across machines) before the trial was queued
        again.
        """
        if self.plan.mode != "grid":
            return None
        for path, tag in self._runs_of(base):
            try:
                run = Run.open(path)
                if run.status not in ("interrupted", "running") or \
                        not (run.checkpoint_dir / "state.pt").exists():
                    continue
                ran = with_threads(base, run.config.train.threads or self.threads)
            except Exception:  # noqa: BLE001 - an unreadable folder is not resumed
                continue
            if ran.config_hash()[:8] == tag:
                return path
        return None

    def _find_run(self, cfg: ExperimentConfig | None, t0: float) -> Path | None:
        """The run folder a failed or interrupted training left, written since ``t0``."""

        if cfg is None:
            return None
        tag = cfg.config_hash()[:8]
        found = [p for p, t in self._runs_of(cfg) if t == tag and p.stat().st_mtime >= t0 - 1]
        return found[0] if found else None

    def _finish(self, trial_id: int, trial: optuna.Trial | None, status: str,
                label: str, number: int, run_path: Path | None,
                error: str | None, final: dict[str, Any], t0: float) -> None:
        """Record the outcome (attributes first: a finished trial is read-only), then the
        state; report the line."""
        seconds = round(time.time() - t0, 3)
        worst = -math.inf if self.plan.direction == "maximize" else math.inf
        value = final.get(self.plan.metric)
        if status != "completed" or value is None or not math.isfinite(value):
            value = worst
        attrs = {ix.STATUS: status, ix.RUN: str(run_path) if run_path else None,
                 ix.SECONDS: seconds, ix.FINAL: final, ix.ERROR: error}
        try:
            for k, v in attrs.items():
                self.storage.set_trial_user_attr(trial_id, k, v)
            if status in ("completed", "diverged"):
                state, values = TrialState.COMPLETE, [float(value)]
            elif status == "pruned":
                state, values = TrialState.PRUNED, None
            else:
                state, values = TrialState.FAIL, None
            if trial is not None:
                self.study.tell(trial, values, state=state)
            else:
                self.storage.set_trial_state_values(trial_id, state, values)
        except (UpdateFinishedTrialError, RuntimeError, ValueError) as e:
            # our heartbeat was judged stale and the trial given to another worker
            self._say(f"trial {number} ({label}): result not recorded ({e}); "
                      f"the trial was given to another worker")
        finally:
            if self.heartbeat is not None:
                self.heartbeat.close()
                self.heartbeat = None
        rows = self.write_index()
        done = sum(r["status"] in ix.DONE for r in rows)
        self._say(trial_line(done, self.plan.total, status, label, self.plan.metric, value,
                             seconds))
        if run_path or error:  # on a line of its own: the first stays within 80 columns
            self._say("    " + "  ".join(str(x) for x in (run_path, error) if x))

    def write_index(self) -> list[dict[str, Any]]:
        return ix.write_index(self.sweep_dir, self.plan, self.trials(),
                              self.spec.label(self.sweep_dir))

    def _say(self, text: str) -> None:
        if self.echo is not None:
            self.echo(f"{self.name}: {text}" if self.name else text)


def _worker_main(plan: SweepPlan, spec: StorageSpec, sweep_dir: Path, threads: int,
                 name: str, number: int, verbose: bool) -> None:
    """Entry point of a worker process (spawned: no forked torch state)."""
    from convlab.errors import one_line_warnings

    one_line_warnings()  # as the CLI shows them
    echo: Echo | None = (lambda s: print(s, flush=True)) if verbose else None
    try:
        worker = Worker(plan, spec, sweep_dir, threads, name, number, echo)
        worker.run()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if worker.stopping:  # a trial was interrupted: tell the parent not to carry on
        raise SystemExit(130)


def _join_all(procs: list[Any]) -> None:
    """Reap each process as soon as it exits, in any order: a dead worker must stop being
    a zombie at once, or the others (which check the process table) would wait for it."""
    from multiprocessing.connection import wait

    pending = {p.sentinel: p for p in procs}
    while pending:
        for sentinel in wait(list(pending)):
            pending.pop(sentinel).join()  # type: ignore[call-overload]


def _run_processes(plan: SweepPlan, spec: StorageSpec, sweep_dir: Path, threads: int,
                   workers: int, verbose: bool) -> tuple[list[int], bool]:
    """N worker processes on this machine; SIGTERM to us is passed on to them (Ctrl-C
    reaches them directly: they share our process group)."""
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, name=f"convlab-sweep-w{i + 1}",
                    args=(plan, spec, sweep_dir, threads, f"w{i + 1}", i, verbose))
        for i in range(workers)
    ]
    for p in procs:
        p.start()

    terminated = []

    def forward(signum: int, frame: Any) -> None:
        terminated.append(signum)
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, forward)
    try:
        try:
            _join_all(procs)
        except KeyboardInterrupt:
            _join_all(procs)  # they checkpoint and stop; wait for them to record it
            raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return [p.exitcode if p.exitcode is not None else -1 for p in procs], bool(terminated)


# ---------------------------------------------------------------------- run_sweep


def describe(plan: SweepPlan) -> str:
    """``4 trials (2 grid points x 2 seeds)``."""
    s = plan.sweep
    if s.search is not None:
        return f"{s.search.trials} trials (TPE search on {s.search.metric}, " \
               f"{s.search.resolved_direction})"
    parts = []
    if s.grid:
        sizes = [len(v) for v in s.grid.values()]
        n = sizes[0] if s.zip else math.prod(sizes)
        parts.append(f"{n} grid points{' (zipped)' if s.zip else ''}")
    if s.random:
        parts.append(f"{s.random.trials} random draws")
    if s.seeds:
        parts.append(f"{len(s.seeds)} seeds")
    return f"{len(plan.trials)} trials ({' x '.join(parts)})"


def run_sweep(
    source: SweepPlan | str | Path | dict[str, Any],
    *,
    workers: int = 1,
    storage: str | None = None,
    runs_dir: str | Path | None = None,
    heartbeat: int = 15,
    echo: Echo | None = print,
) -> SweepResult:
    """Run (or continue) a sweep; return its rows once nothing is left to run or wait for.

    Everything that can be wrong with the input (the file, every trial's config, the
    storage URL, a clash with an existing study) raises a one-line ``SweepError`` before
    the sweep folder ``<runs_dir>/<name>/`` is created; a folder this call created is
    removed again if setting up the study fails.
    """
    plan = source if isinstance(source, SweepPlan) else plan_sweep(source)
    if workers < 1:
        raise SweepError(f"--workers: expected at least 1, got {workers}")
    spec = StorageSpec.from_option(storage, heartbeat)
    spec.check_reachable()
    sweep_dir = resolve_runs_dir(runs_dir) / plan.name
    created = not sweep_dir.exists()
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        left = _prepare(plan, spec, sweep_dir)
        atomic_write(sweep_dir / "sweep.yaml", yaml.safe_dump(
            plan.sweep.to_file(plan.base_raw), sort_keys=False))
    except OSError as e:
        if created:
            shutil.rmtree(sweep_dir, ignore_errors=True)
        raise SweepError(f"{sweep_dir}: cannot create the sweep folder "
                         f"({e.strerror or e})") from None
    except BaseException:
        if created:
            shutil.rmtree(sweep_dir, ignore_errors=True)
        raise

    # no more processes than trials left: an idle process would only cost a torch import
    workers = max(1, min(workers, left))
    threads = physical_share(workers)
    # this process's worker: the only one with --workers 1, else it mops up after the
    # worker processes (the grid points of one that died) and writes the final index
    local = Worker(plan, spec, sweep_dir, threads, "", 0, echo)
    try:
        if echo is not None:
            rows = ix.collect(plan, local.trials())
            already = sum(r["status"] in ix.DONE for r in rows)
            echo(f"sweep {plan.name}: {describe(plan)}, {already} done already; "
                 f"{workers} worker{'s' if workers > 1 else ''}, at most {threads} "
                 f"thread{'s' if threads > 1 else ''} each; study in {spec.label(sweep_dir)}")
        if workers > 1:
            codes, terminated = _run_processes(plan, spec, sweep_dir, threads, workers,
                                               echo is not None)
            for i, code in enumerate(codes):
                if code not in (0, 130) and echo is not None:
                    echo(f"worker w{i + 1} exited with code {code}")
            local.stopping = terminated or 130 in codes  # stopped on purpose: no mop-up
        local.run()
    finally:
        rows = local.write_index()
    done = ix.is_done(plan, rows)
    stopped = local.stopping or any(r["status"] == "interrupted" for r in rows)
    return SweepResult(sweep_dir, plan, rows, done, interrupted=stopped and not done)
