"""Sweeps: many trainings of one experiment, varied over a grid, random draws or a search.

A sweep file (``convlab.sweep.spec``) names a base experiment and what to vary. It is
expanded into a fixed list of trials (``convlab.sweep.plan``) and *every* trial's config is
validated before a folder is created or a training starts. Trials then run through an
Optuna study (``convlab.sweep.execute``), in ``--workers`` processes on this machine,
and/or in any number of ``convlab sweep FILE --storage postgresql://...`` processes on
other machines. Each trial is an ordinary run folder::

    <runs_dir>/<sweep name>/
        sweep.yaml            the sweep as run (base inlined): run it again to continue
        sweep.json            index: status, value and run folder of every trial, best trial
        trials.csv            the same, one row per trial, one column per swept key
        optuna.journal        the study, without --storage (plus .sweep.lock)
        runs/<experiment>/<run-id>/   the trials' run folders (this machine's)

Design: how each grid point completes exactly once
---------------------------------------------------

Why not ``GridSampler``: its points are chosen when a trial starts, from the trials that
look unfinished at that moment. Optuna's own documentation says two workers can then pick
the same point ("the total number of actual trials may exceed the size of the grid"),
and once the grid is exhausted it re-runs a random point. A killed worker's retry
(``RetryFailedTrialCallback``) is a fresh ``enqueue_trial`` made outside any lock, which
can race with a second worker queueing the same failed point. So a grid (and the random
draws, which are drawn once, up front, from a seeded generator, and so are a grid too)
is run as a *queue of WAITING trials*, one per point, with three rules:

1. **Identity.** A point is the ``config_hash`` of its resolved config (before the
   per-process ``train.threads`` share), stored in the trial as ``convlab.key``. It is
   the same on every machine, for any ``--workers``, and across runs of the same file.

2. **Only one process creates trials at a time.** Queueing happens under the sweep lock
   (``flock`` beside the journal; a PostgreSQL advisory lock), and a point is queued only
   if it has no COMPLETE, WAITING or RUNNING trial. Every queueing step re-reads the
   study under the lock, and the previous holder's writes were committed before it let
   go, so no two WAITING trials ever exist for one point. (``enqueue_trial(...,
   skip_if_exists=True)`` documents that it is *not* safe when processes race.) Points
   are queued at start-up (every point without a result: a re-run retries failed and
   interrupted points and skips completed ones) and when a worker's death is noticed
   (only that point, at most ``MAX_KILLED`` times per invocation).

3. **Taking a trial is atomic.** A worker takes a WAITING trial with Optuna's
   ``set_trial_state_values(RUNNING)``, which succeeds for exactly one process: a
   row lock (``SELECT ... FOR UPDATE``) in the RDB storage, the order of the log in the
   journal storage. A loser just tries the next WAITING trial.

So a point runs twice only after its first trial was declared dead. Death is declared
once (the RUNNING -> FAIL transition is itself atomic, and only FAIL without a recorded
outcome counts as "killed"): on PostgreSQL by Optuna's heartbeat (a thread records one
every ``--heartbeat`` seconds; ``fail_stale_trials`` fails a trial silent for 4 x that),
on the journal by the process table (same machine: the owner's PID and process start
time must still match). A worker that runs out of queued trials keeps polling while
others' trials run, so a killed worker's point comes back to a live one; workers stop
when nothing is queued or running. A worker judged dead that was merely frozen longer
than the grace period cannot record its late result (the trial is already FAIL); its run
folder stays, and the point's completion is the retry's.

Searches (``search:``) are adaptive, so they cannot be queued up front: under the sweep
lock a worker asks the TPE sampler for a new trial only while fewer than ``trials``
trials are queued, running or finished, which bounds the count exactly; a dead worker's
trial turns FAIL and frees its slot. Median pruning (``MedianPruner``) sees the metric
after every epoch through the loop's reporter hook; a pruned trial's run folder is
marked ``interrupted`` with a message (it can be continued with ``convlab run
--resume``) and the trial is PRUNED in the study.
"""

from __future__ import annotations

from convlab.sweep.execute import SweepResult, run_sweep
from convlab.sweep.plan import SweepPlan, TrialSpec, expand, expand_grid, plan_sweep
from convlab.sweep.spec import Distribution, SweepConfig, SweepError, load_sweep, parse_sweep
from convlab.sweep.storage import StorageSpec

__all__ = [
    "Distribution",
    "StorageSpec",
    "SweepConfig",
    "SweepError",
    "SweepPlan",
    "SweepResult",
    "TrialSpec",
    "expand",
    "expand_grid",
    "load_sweep",
    "parse_sweep",
    "plan_sweep",
    "run_sweep",
]
