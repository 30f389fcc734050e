"""The bundled CIFAR-100 and SVHN experiments train (one short epoch) on fabricated files."""

from __future__ import annotations

from pathlib import Path

import pytest

import convlab
from data.fabricate import fabricate_cifar100, write_svhn


@pytest.mark.parametrize("name", ["cifar100-cnn", "svhn-cnn"])
def test_bundled_example_trains_on_fabricated_files(tmp_path: Path, name: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVLAB_CACHE", str(tmp_path / "cache"))
    if name.startswith("cifar100"):
        fabricate_cifar100(tmp_path / "data")
    else:
        write_svhn(tmp_path / "data" / "svhn", {"train": 40, "test": 8})
    run = convlab.run(name, overrides=[
        f"data.root={tmp_path / 'data'}", "data.download=false", "data.subset.val=4",
        "train.epochs=1", "train.batch_size=4", "train.threads=1",
        "model.stages.0.channels=4", "model.stages.1.channels=4", "model.stages.2.channels=4",
    ], runs_dir=tmp_path / "runs")
    assert run.status == "completed"
    assert run.config.data.dataset == name.split("-")[0]
