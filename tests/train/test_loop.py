"""The loop end to end on tiny synthetic data: folders, metrics, determinism, resume,
divergence, early stopping, gradient norms."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config
from convlab import load_run, run
from convlab.config import load_config
from convlab.train.progress import Reporter
from convlab.train.runner import resume_run, run_experiment


def test_run_writes_a_complete_folder(runs_dir: Path) -> None:
    r = run(tiny_config(), runs_dir=runs_dir)
    names = {p.name for p in r.path.iterdir()}
    assert {"config.yaml", "env.json", "metrics.csv", "summary.json", "model.safetensors",
            "normalizer.safetensors", "checkpoint"} <= names
    s = r.summary
    assert s["status"] == "completed" and s["epochs_done"] == 2
    assert s["params"] == sum(v.numel() for v in load_file(r.weights_path).values())
    # 2 epochs x (train, test); top5 absent because 4 classes <= 5
    rows = r.metrics
    assert [(row["epoch"], row["split"]) for row in rows] == [
        (1, "train"), (1, "test"), (2, "train"), (2, "test")]
    assert rows[-1]["top5"] in ("", None)
    assert s["final"]["test.top1"] > 0.5  # 4 classes: chance is 0.25
    env = r.env
    assert env["seed"] == 0 and env["torch"] == torch.__version__
    assert len(env["data"]["fingerprint"]) == 32 and env["data"]["train"] == 256
    # reopening gives the same run, and its model predicts like the saved weights
    again = load_run(r.path)
    assert again.summary == s
    model = again.load_model()
    assert sum(p.numel() for p in model.parameters()) == s["params"]


def test_top5_reported_when_more_than_five_classes(runs_dir: Path) -> None:
    cfg = tiny_config(data={"dataset": "synthetic", "synthetic": {
        "shape": [1, 8, 8], "classes": 10, "train_size": 64, "test_size": 32}},
        train={"epochs": 1, "batch_size": 16, "threads": 1})
    r = run(cfg, runs_dir=runs_dir)
    assert 0 <= r.metrics[-1]["top5"] <= 1 and r.metrics[-1]["top5"] >= r.metrics[-1]["top1"]


def test_deterministic_runs_repeat_bit_for_bit(runs_dir: Path) -> None:
    cfg = tiny_config(train={"epochs": 2, "batch_size": 32, "threads": 1, "deterministic": True},
                      data={"dataset": "synthetic", "augment": {"crop_padding": 2, "flip": True},
                            "synthetic": {"shape": [1, 12, 12], "classes": 4,
                                          "train_size": 128, "test_size": 32}})
    a, b = run(cfg, runs_dir=runs_dir), run(cfg, runs_dir=runs_dir)
    assert a.path != b.path
    assert [r["loss"] for r in a.metrics] == [r["loss"] for r in b.metrics]
    wa, wb = load_file(a.weights_path), load_file(b.weights_path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class _InterruptAt(Reporter):
    """Sends this process SIGINT once a given number of batches has been reported."""

    def __init__(self, after: int) -> None:
        self.after, self.seen = after, 0

    def batch(self, done: int, metrics: dict[str, float], batch_ms: float) -> None:
        self.seen += 1
        if self.seen == self.after:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("after", [3, 8])  # inside epoch 1, inside epoch 2
def test_interrupt_then_resume_equals_uninterrupted(runs_dir: Path, after: int) -> None:
    cfg = tiny_config(
        train={"epochs": 3, "batch_size": 32, "threads": 1, "deterministic": True,
               "log_every": 1},
        model={"name": "cnn", "stages": [{"channels": 4, "dropout": 0.2}, {"channels": 8}]},
        data={"dataset": "synthetic", "augment": {"crop_padding": 1, "noise": 0.05},
              "synthetic": {"shape": [1, 12, 12], "classes": 4, "train_size": 160,
                            "test_size": 32}},
    )
    full = run(cfg, runs_dir=runs_dir)
    cut = run(cfg, runs_dir=runs_dir, reporter=_InterruptAt(after))
    assert cut.summary["status"] == "interrupted"
    assert load_run(cut.path).status == "interrupted"
    done = resume_run(cut.path, reporter=Reporter())
    assert done.summary["status"] == "completed"
    assert [r["loss"] for r in done.metrics] == [r["loss"] for r in full.metrics]
    wa, wb = load_file(full.weights_path), load_file(done.weights_path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_epoch_hook_stops_the_run_as_pruned_and_it_can_go_on(runs_dir: Path) -> None:
    seen: list[tuple[int, list[str]]] = []

    def hook(epoch: int, splits: dict[str, dict[str, float]]) -> str | None:
        seen.append((epoch, sorted(splits)))
        return "not promising" if epoch == 2 else None

    cfg = tiny_config(train={"epochs": 4, "threads": 1}, data={"val_fraction": 0.25})
    cut = run_experiment(cfg, runs_dir=runs_dir, quiet=True, epoch_hook=hook)
    assert cut.summary["status"] == "pruned" and cut.summary["message"] == "not promising"
    assert seen == [(1, ["test", "train", "val"]), (2, ["test", "train", "val"])]
    assert cut.summary["epochs_done"] == 2 and cut.summary["final"]["val.top1"] is not None
    assert {r["epoch"] for r in cut.metrics} == {1, 2} and cut.weights_path.exists()
    done = resume_run(cut.path, reporter=Reporter())  # a pruned run may still be finished
    assert done.summary["status"] == "completed" and done.summary["epochs_done"] == 4


def test_divergence_stops_with_status_and_finite_checkpoint(runs_dir: Path) -> None:
    # identity activations: nothing saturates or dies, so lr 1e3 blows the weights up
    cfg = tiny_config(optim={"name": "sgd", "lr": 1e3, "momentum": 0.9},
                      model={"name": "mlp", "hidden": [32], "activation": "identity"},
                      data={"dataset": "synthetic", "normalize": "none",
                            "synthetic": {"shape": [1, 12, 12], "classes": 4,
                                          "train_size": 256, "test_size": 64}},
                      train={"epochs": 3, "batch_size": 32, "threads": 1})
    r = run(cfg, runs_dir=runs_dir)
    assert r.summary["status"] == "diverged"
    assert "try a lower optim.lr (now 1000)" in r.summary["message"]
    assert not r.weights_path.exists()  # never save non-finite final weights
    for f in r.checkpoint_dir.glob("model-*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(f).values())


@pytest.mark.parametrize("device", [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="needs CUDA")),
])
def test_injected_nan_is_caught_within_one_step(runs_dir: Path, monkeypatch,
                                                device: str) -> None:
    """On the CPU reading the loss is free, so every step is checked; on a GPU each
    read is a host sync, so the loss is checked every log interval and at the epoch's
    end (8 steps here), and no checkpoint is written in between."""
    import convlab.train.loop as loop

    calls = {"n": 0}
    real = torch.nn.CrossEntropyLoss.forward

    def poisoned(self, logits, target):  # the 5th step returns NaN
        calls["n"] += 1
        out = real(self, logits, target)
        return out * float("nan") if calls["n"] == 5 else out

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", poisoned)
    r = run(tiny_config(train={"device": device, "threads": 1}), runs_dir=runs_dir,
            reporter=Reporter())
    assert r.summary["status"] == "diverged"
    assert loop.Diverged  # the message path below is the user's view
    # stopped at the step that produced the NaN (CPU), or by the end of its epoch (GPU)
    assert calls["n"] == (5 if device == "cpu" else 8)
    assert not r.weights_path.exists()


def test_early_stopping_restores_best(runs_dir: Path) -> None:
    cfg = tiny_config(
        data={"dataset": "synthetic", "val_fraction": 0.25,
              "synthetic": {"shape": [1, 12, 12], "classes": 4, "train_size": 256,
                            "test_size": 64}},
        # min_delta 10 can never be met: epoch 1 is best, patience 2 stops after epoch 3
        train={"epochs": 20, "batch_size": 32, "threads": 1,
               "early_stopping": {"metric": "val.loss", "patience": 2, "min_delta": 10}},
    )
    r = run(cfg, runs_dir=runs_dir)
    s = r.summary
    assert s["epochs_done"] == 3 and s["best_epoch"] == 1 and s["restored_best"] is True
    best = load_file(r.checkpoint_dir / "best.safetensors")
    final = load_file(r.weights_path)
    assert all(torch.equal(best[k], final[k]) for k in best)
    assert {row["split"] for row in r.metrics} == {"train", "val", "test"}


def test_grad_norms_tracked(runs_dir: Path) -> None:
    r = run(tiny_config(train={"epochs": 1, "batch_size": 32, "threads": 1,
                               "track_grad_norms": 2}), runs_dir=runs_dir)
    lines = (r.path / "steps.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["step", "epoch", "total"]
    assert "stage1.body.conv1" in header and "head.fc_out" in header
    totals = [line for line in lines[1:] if line.split(",")[2]]
    assert len(totals) == 4  # 256/32 = 8 steps, every 2nd (other lines: train metrics)


@pytest.mark.parametrize("schedule", ["step", "exponential", "cosine", "onecycle"])
def test_schedules_and_label_smoothing_run(runs_dir: Path, schedule: str) -> None:
    extra = {"step_size": 1} if schedule == "step" else {}
    r = run(tiny_config(schedule={"name": schedule, **extra},
                        train={"epochs": 2, "batch_size": 64, "threads": 1,
                               "label_smoothing": 0.1}), runs_dir=runs_dir)
    lrs = [row["lr"] for row in r.metrics if row["split"] == "train"]
    assert r.summary["status"] == "completed" and lrs[0] != lrs[1]


def test_batch_size_one_and_mlp(runs_dir: Path) -> None:
    cfg = tiny_config(model={"name": "mlp", "hidden": [16]},
                      data={"dataset": "synthetic", "synthetic": {
                          "shape": [1, 6, 6], "classes": 3, "train_size": 20, "test_size": 5}},
                      train={"epochs": 1, "batch_size": 1, "threads": 1})
    r = run(cfg, runs_dir=runs_dir)
    assert r.summary["steps"] == 20 and r.summary["status"] == "completed"


def test_config_in_run_folder_reloads(runs_dir: Path) -> None:
    r = run(tiny_config(), runs_dir=runs_dir)
    assert load_config(r.config_path) == r.config


def test_match_params_sets_the_free_dimension(runs_dir: Path) -> None:
    """An MLP of one hidden layer matched to mlp-256x2 (269,322 parameters) on 1x28x28:
    784h + h + 10h + 10 = 795h + 10 -> h = 338.8, so 339 (269,515) is nearest."""
    cfg = tiny_config(
        data={"dataset": "synthetic", "synthetic": {"shape": [1, 28, 28], "classes": 10,
                                                    "train_size": 64, "test_size": 32}},
        model={"name": "mlp", "hidden": [8]},
        match_params={"reference": "mlp-256x2", "vary": "hidden_width"},
        train={"epochs": 1, "batch_size": 32, "threads": 1},
    )
    r = run(cfg, runs_dir=runs_dir)
    assert r.config.model.settings["hidden"] == [339]
    assert r.summary["params"] == 795 * 339 + 10 == r.summary["match_params"]["params"]
    assert r.summary["match_params"]["target"] == 269_322
    assert r.config.match_params is None  # config.yaml reruns exactly this model


def test_bf16_on_the_cpu_trains_in_bf16_and_warns_where_not_native(
        runs_dir: Path, monkeypatch) -> None:
    from convlab.train import runner

    seen: list[torch.dtype] = []
    monkeypatch.setattr(runner, "cpu_has_native_bf16", lambda: False)
    cfg = tiny_config(train={"epochs": 1, "batch_size": 64, "precision": "bf16"})
    with pytest.warns(UserWarning, match="without native bf16"):
        r = run(cfg, runs_dir=runs_dir)
    assert r.summary["status"] == "completed"
    assert r.summary["final"]["test.top1"] > 0.25  # 4 classes: chance
    # the forward really ran in bf16: a hook on the first conv sees bf16 outputs
    model = r.load_model()
    model.stage1.body.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    monkeypatch.setattr(runner, "cpu_has_native_bf16", lambda: True)
    with runner.autocast_factory(r.config, torch.device("cpu"))():
        model(torch.randn(2, 1, 12, 12))
    assert seen == [torch.bfloat16]
