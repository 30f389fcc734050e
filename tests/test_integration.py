"""End to end on real MNIST / Fashion-MNIST subsets from the shared data folder."""

from __future__ import annotations

from pathlib import Path

from convlab import run


def test_mnist_subset_trains_to_high_accuracy(real_data: Path, runs_dir: Path) -> None:
    cfg = {
        "name": "mnist-subset",
        "data": {"dataset": "mnist", "root": str(real_data), "subset": {"train": 5000,
                                                                         "test": 1000}},
        "model": {"name": "mnist-fast"},
        "optim": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 2, "batch_size": 64},
    }
    r = run(cfg, runs_dir=runs_dir)
    assert r.summary["status"] == "completed"
    assert r.env["data"]["train"] == 5000 and r.env["data"]["test"] == 1000
    assert r.summary["final"]["test.top1"] > 0.93  # chance is 0.10
    assert r.summary["final"]["test.top5"] > r.summary["final"]["test.top1"]


def test_permuted_mnist_keeps_mlp_accuracy(real_data: Path, runs_dir: Path) -> None:
    """An MLP is blind to pixel order: permuting pixels barely changes what it learns."""
    base = {
        "data": {"dataset": "mnist", "root": str(real_data),
                 "subset": {"train": 3000, "test": 1000}},
        "model": {"name": "mlp", "hidden": [128]},
        "optim": {"name": "adam", "lr": 0.002},
        "train": {"epochs": 2, "batch_size": 64, "deterministic": True},
    }
    plain = run({**base, "name": "plain"}, runs_dir=runs_dir)
    permuted = run({**base, "name": "permuted",
                    "data": {**base["data"], "permute": {"seed": 1}}}, runs_dir=runs_dir)
    a, b = plain.summary["final"]["test.top1"], permuted.summary["final"]["test.top1"]
    assert a > 0.85 and abs(a - b) < 0.03
    assert plain.env["data"]["fingerprint"] != permuted.env["data"]["fingerprint"]


def test_fashion_mnist_subset(real_data: Path, runs_dir: Path) -> None:
    cfg = {
        "data": {"dataset": "fashion_mnist", "root": str(real_data), "val_fraction": 0.1,
                 "subset": {"train": 3000, "test": 1000}},
        "model": {"name": "mlp-256x2"},
        "optim": {"name": "adam", "lr": 0.001},
        "train": {"epochs": 1, "batch_size": 64},
    }
    r = run(cfg, runs_dir=runs_dir)
    assert r.env["data"]["classes"][0] == "T-shirt/top"
    assert r.env["data"]["val"] == 6000  # 10% of the 60,000 training images
    assert r.summary["final"]["test.top1"] > 0.65
