"""Bundled studies: every one plans at every scale, its parameter-count claims hold,
and its smoke scale runs end to end on the real data, ending with a report."""

from __future__ import annotations

from html import escape
from pathlib import Path

import pytest

from convlab.analysis.budget import count_params
from convlab.config import load_config
from convlab.studies import (
    SCALES,
    StudyError,
    bundled_studies,
    group_sweep,
    load_study,
    run_study,
)
from convlab.sweep.plan import plan_sweep

STUDIES = list(bundled_studies())


def test_the_classic_studies_are_bundled() -> None:
    assert {"permuted-mnist", "capacity", "ablation", "cifar-design",
            "fashion-mnist", "transfer"} <= set(STUDIES)


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.parametrize("scale", SCALES)
def test_every_trial_of_every_scale_validates(name: str, scale: str) -> None:
    study = load_study(name)
    for group in study.groups:
        plan = plan_sweep(group_sweep(study, group, scale))  # validates every trial config
        assert len(plan.trials) >= 2


def test_smoke_scale_shrinks_every_trial() -> None:
    study = load_study("capacity")
    sweep = group_sweep(study, study.groups[0], "smoke")
    cfg = load_config(sweep["base"])
    assert cfg.train.epochs == 1 and cfg.data.subset.train == 512


def _params(model: dict, shape: tuple[int, int, int] = (1, 28, 28)) -> int:
    cfg = load_config({"model": model})
    return count_params(cfg.model.name, cfg.model.settings, shape, 10)


def test_fashion_study_parameter_matching_is_as_stated() -> None:
    groups = {g.name: g for g in load_study("fashion-mnist").groups}
    mlp, deep = groups["mlp-depth"].grid["model"].values()  # type: ignore[union-attr]
    assert _params(mlp) == 269_322  # 784*256+256 + 256*256+256 + 256*10+10
    assert len(deep["hidden"]) == 54
    # 784*64+64 + 53*(64*64+64) + 64*10+10 = 50,240 + 220,480 + 650
    assert _params(deep) == 271_370
    _, cnn = groups["cnn-vs-mlp"].grid["model"].values()  # type: ignore[union-attr]
    assert _params(cnn) == 270_586  # 320 + 18,496 + 3136*80+80 + 80*10+10
    k1, k28 = groups["kernel-size"].grid["model"].values()  # type: ignore[union-attr]
    assert _params(k1) == 54_904  # 1*7+7 + 7*28*28*10+10
    assert _params(k28) == 50_890  # 784*64+64 + 64*10+10


def test_unknown_study_and_scale() -> None:
    with pytest.raises(StudyError, match="neither a bundled study"):
        load_study("nope")
    study = load_study("ablation")
    with pytest.raises(StudyError, match="--scale 'huge'"):
        group_sweep(study, study.groups[0], "huge")


@pytest.mark.parametrize("name", STUDIES)
def test_smoke_study_runs_and_reports(name: str, real_data: Path, tmp_path: Path,
                                      monkeypatch) -> None:
    monkeypatch.setenv("CONVLAB_DATA", str(real_data))
    if name == "transfer":  # no download here: a random resnet18 stands in for ImageNet's
        import torch
        from torchvision.models import resnet18

        hub = tmp_path / "torch" / "hub" / "checkpoints"
        hub.mkdir(parents=True)
        torch.save(resnet18().state_dict(), hub / "resnet18-f37072fd.pth")
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = run_study(name, "smoke", runs_dir=tmp_path, echo=None)
    assert result.trials == sum(len(plan_sweep(group_sweep(load_study(name), g, "smoke"))
                                    .trials) for g in load_study(name).groups)
    # every trial ran; only fashion-mnist's lr=10 is meant to diverge
    assert result.completed >= result.trials - (1 if name == "fashion-mnist" else 0)
    html = result.report_html.read_text()
    assert "<table" in html and "data:image/png;base64," in html
    for group in load_study(name).groups:
        assert f"{group.name}: Comparison" in html or f"{group.name}: Results" in html
    for probe in load_study(name).equivariance:
        assert f"Equivariance of the trained {escape(probe.run)} ({probe.group})" in html
        assert "Not measured" not in html and "Shifting the input by" in html
    for group in load_study(name).groups:
        for trial in plan_sweep(group_sweep(load_study(name), group, "smoke")).trials:
            if trial.name:  # named grid values name the runs in tables and legends
                assert f"<td>{escape(trial.name)}</td>" in html
