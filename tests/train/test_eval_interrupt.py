"""Ctrl-C while the last epoch is evaluated: the trained epoch is kept, and --resume
evaluates it and completes without training a step again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import tiny_config
from convlab import load_run, run
from convlab.train.progress import Reporter
from convlab.train.runner import resume_run

CFG = tiny_config(train={"epochs": 2, "batch_size": 32, "threads": 1, "deterministic": True},
                  data={"val_fraction": 0.25})


class _CtrlCWhileEvaluating(Reporter):
    """Sends this process SIGINT when the test split of epoch ``at`` starts evaluating."""

    def __init__(self, at: int) -> None:
        self.at, self.epoch, self.evals = at, 0, []

    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self.epoch = epoch

    def eval_start(self, split: str, images: int) -> None:
        self.evals.append((self.epoch, split, images))
        if self.epoch == self.at and split == "test":
            os.kill(os.getpid(), signal.SIGINT)


class _CountSteps(Reporter):
    def __init__(self) -> None:
        self.steps, self.evals = 0, []

    def tick(self, done: int) -> None:
        self.steps += 1

    def eval_start(self, split: str, images: int) -> None:
        self.evals.append(split)


def test_ctrl_c_in_final_evaluation_resumes_into_evaluation(runs_dir: Path) -> None:
    full = run(CFG, runs_dir=runs_dir, quiet=True)
    rep = _CtrlCWhileEvaluating(at=2)
    cut = run(CFG, runs_dir=runs_dir, reporter=rep)
    assert cut.summary["status"] == "interrupted" and cut.summary["epochs_done"] == 1
    assert rep.evals == [(1, "val", 64), (1, "test", 64), (2, "val", 64), (2, "test", 64)]
    again = _CountSteps()
    done = resume_run(cut.path, reporter=again)
    assert done.summary["status"] == "completed" and done.summary["epochs_done"] == 2
    assert again.steps == 0 and again.evals == ["val", "test"]  # evaluated, not trained
    assert [r["loss"] for r in done.metrics] == [r["loss"] for r in full.metrics]
    wa, wb = load_file(full.weights_path), load_file(load_run(done.path).weights_path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
