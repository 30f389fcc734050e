"""Per-step train metrics in steps.csv and the epoch-0 evaluation (``eval_at_start``)."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import tiny_config
from convlab import load_run, run
from convlab.runs import Run
from convlab.train import loop
from convlab.train.loop import interval_row, means
from convlab.train.progress import Reporter
from convlab.train.runner import resume_run

KS = (1, 5)


def test_interval_row_is_the_mean_since_the_last_log_point() -> None:
    # 10 images so far: loss sum 12, 6 top-1 hits, 9 top-5 hits; 4 images at the last log
    row = interval_row([12.0, 6.0, 9.0], 10, [8.0, 1.0, 3.0], 4, KS)
    assert row == pytest.approx({"train_loss": 4 / 6, "train_top1": 5 / 6, "train_top5": 1.0})
    # no earlier log point in this epoch: since its start
    assert interval_row([12.0, 6.0, 9.0], 10, [], 0, KS) == pytest.approx(
        {"train_loss": 1.2, "train_top1": 0.6, "train_top5": 0.9})
    assert interval_row([12.0, 6.0, 9.0], 10, [12.0, 6.0, 9.0], 10, KS) is None
    assert means([3.0, 1.0], 0, (1,)) == {"loss": 3.0, "top1": 1.0}  # no division by 0


def _cfg(**train: Any) -> dict[str, Any]:
    return tiny_config(train={"epochs": 2, "batch_size": 32, "threads": 1,
                              "deterministic": True, **train})


def test_train_metrics_every_log_every_steps(runs_dir: Path) -> None:
    r = run(_cfg(log_every=3), runs_dir=runs_dir)
    steps = r.steps
    # 256/32 = 8 batches an epoch; logged after batches 3, 6 and the last one (8)
    assert steps["step"] == [3, 6, 8, 11, 14, 16]
    assert steps["epoch"] == [1, 1, 1, 2, 2, 2]
    assert steps["at_epoch"] == [0.375, 0.75, 1.0, 1.375, 1.75, 2.0]
    assert all(v == 0.01 for v in steps["lr"])
    # the intervals' means, weighted by their images (3, 3, 2 batches of 32), give back
    # the epoch's train loss and accuracy in metrics.csv
    train = [row for row in r.metrics if row["split"] == "train"]
    for e, weights in ((1, slice(0, 3)), (2, slice(3, 6))):
        w = [3, 3, 2]
        for name in ("loss", "top1"):
            vals = steps[f"train_{name}"][weights]
            mean = sum(a * b for a, b in zip(w, vals, strict=True)) / sum(w)
            assert mean == pytest.approx(train[e - 1][name], rel=1e-9)


def test_one_host_sync_per_log_interval(runs_dir: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """The step rows come from the sums read for the progress line: reading the train
    accumulator's sums is the sync. Halving ``log_every`` adds exactly one read per extra
    log point (whatever reads the epoch end makes)."""
    reads = {"n": 0}
    base = loop.Accumulator

    class Counting(base):  # type: ignore[misc, valid-type]
        @property  # type: ignore[override]
        def sums(self) -> torch.Tensor:
            reads["n"] += 1
            return base.sums.fget(self)  # type: ignore[attr-defined]

        @sums.setter
        def sums(self, value: torch.Tensor) -> None:
            base.sums.fset(self, value)  # type: ignore[attr-defined]

    monkeypatch.setattr(loop, "Accumulator", Counting)
    counts = {}
    for every in (4, 2):
        reads["n"] = 0
        r = run(_cfg(log_every=every, epochs=1), runs_dir=runs_dir)
        assert len(r.steps["step"]) == 8 // every
        counts[every] = reads["n"]
    assert counts[2] - counts[4] == 4 - 2


def test_step_rows_and_gradient_norms_share_steps_csv(runs_dir: Path) -> None:
    r = run(_cfg(log_every=4, track_grad_norms=4, epochs=1), runs_dir=runs_dir)
    s = r.steps
    # gradient rows at steps 0 and 4 (the gradient of steps 1 and 5), metrics after 4 and 8
    assert s["step"] == [0, 4, 8]
    assert [v == v for v in s["total"]] == [True, True, False]  # NaN where not recorded
    assert [v == v for v in s["train_loss"]] == [False, True, True]


def test_steps_reader_tolerates_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "steps.csv").write_text("step,total\n0,abc\n")
    assert Run.open(tmp_path).steps == {}
    (tmp_path / "steps.csv").write_text("step,total\n")
    assert Run.open(tmp_path).steps == {}


def test_eval_at_start_adds_epoch_0_and_leaves_training_unchanged(runs_dir: Path) -> None:
    plain = run(_cfg(), runs_dir=runs_dir)
    r = run(_cfg(eval_at_start=True), runs_dir=runs_dir)
    rows = r.metrics
    first = [row for row in rows if row["epoch"] == 0]
    assert [row["split"] for row in first] == ["train", "test"]
    for row in first:  # an untrained 4-class model: near chance and near ln 4
        assert abs(row["loss"] - math.log(4)) < 0.3 and row["top1"] < 0.6
    later = [row for row in rows if row["epoch"] > 0]
    assert [row["loss"] for row in later] == [row["loss"] for row in plain.metrics]
    assert r.summary["epochs_done"] == 2 and r.summary["best_epoch"] in (1, 2)
    assert r.summary["final"] == plain.summary["final"]


class _InterruptAt(Reporter):
    def __init__(self, after: int) -> None:
        self.after, self.seen = after, 0

    def batch(self, done: int, metrics: dict[str, float], batch_ms: float) -> None:
        self.seen += 1
        if self.seen == self.after:
            os.kill(os.getpid(), signal.SIGINT)


def test_resumed_run_keeps_its_step_rows_and_epoch_0(runs_dir: Path) -> None:
    cfg = _cfg(log_every=2, eval_at_start=True, epochs=2)
    full = run(cfg, runs_dir=runs_dir)
    cut = run(cfg, runs_dir=runs_dir, reporter=_InterruptAt(3))  # inside epoch 1
    assert cut.summary["status"] == "interrupted"
    done = resume_run(cut.path, reporter=Reporter())
    assert done.summary["status"] == "completed"
    assert load_run(done.path).steps == full.steps
    assert [r["epoch"] for r in done.metrics] == [r["epoch"] for r in full.metrics]
    assert [r["loss"] for r in done.metrics] == [r["loss"] for r in full.metrics]
