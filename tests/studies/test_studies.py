"""Bundled studies: every one plans at every scale, its parameter-count claims hold,
and its smoke scale runs end to end on the real data, ending with a report; ``study
list`` and ``study run --dry-run`` print what the plans hold, and ``--group`` runs part
of a study (on a tiny synthetic study)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import tiny_config
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


def test_scales_smallest_first() -> None:
    assert SCALES == ("smoke", "quick", "long", "full")


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.parametrize("scale", SCALES)
def test_every_trial_of_every_scale_validates(name: str, scale: str) -> None:
    study = load_study(name)
    if scale not in study.scales:
        pytest.skip(f"study {name} has no {scale} scale")
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


# ------------------------------------------------------------------ the command line


def test_study_list_shows_scales_and_trial_counts_within_80_columns(cli: Any) -> None:
    code, out, err = cli("study", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    for name in STUDIES:
        study = load_study(name)
        counts = {g.name: len(plan_sweep(group_sweep(study, g, next(iter(study.scales))))
                              .trials) for g in study.groups}
        head = next(line for line in lines if line.startswith(f"{name}: "))
        n = len(counts)
        assert head.startswith(f"{name}: {sum(counts.values())} trials in {n} group")
        assert head.endswith("scales " + ", ".join(s for s in SCALES if s in study.scales))
        block = lines[lines.index(head):]
        for group, count in counts.items():  # "  6  ladder-mnist    baseline, ..."
            assert any(line.split()[:2] == [str(count), group] for line in block), group


def test_dry_run_lists_every_groups_trials_as_sweep_dry_run_does(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("study", "run", "capacity", "--scale", "smoke", "--dry-run",
                         "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "study capacity (smoke): all configs valid; nothing created or trained"
    study = load_study("capacity")
    total = 0
    for group in study.groups:
        sweep_file = tmp_path / f"{group.name}.yaml"
        sweep_file.write_text(yaml.safe_dump(group_sweep(study, group, "smoke"),
                                             sort_keys=False))
        code, listed, err = cli("sweep", sweep_file, "--dry-run")
        assert code == 0, err
        head, *trials = listed.splitlines()  # "sweep width: 5 trials (...); all configs valid"
        at = lines.index(f"group {group.name}: "
                         + head.split(": ", 1)[1].removesuffix("; all configs valid"))
        assert lines[at + 1:at + 1 + len(trials)] == trials
        total += len(trials)
    assert lines[-1] == f"total: {total} trials in {len(study.groups)} groups"
    assert not (tmp_path / "runs").exists()  # nothing created


def test_dry_run_honours_group_and_names_the_probe(cli: Any) -> None:
    code, out, err = cli("study", "run", "fashion-mnist", "--dry-run", "--group", "depth",
                         "--group", "cnn-vs-mlp")
    assert code == 0, err
    groups = [line.split(":")[0] for line in out.splitlines() if line.startswith("group ")]
    assert groups == ["group cnn-vs-mlp", "group depth"]  # in the study's order
    assert "equivariance probe: trial 2 (cnn) of group cnn-vs-mlp" in out
    assert out.splitlines()[-1] == "total: 4 trials in 2 groups"


@pytest.mark.parametrize("args,message", [
    (["nope"], "'nope' is neither a bundled study"),
    (["capacity", "--scale", "huge"], "--scale 'huge': study capacity has scales smoke, "),
    (["capacity", "--group", "nope"], "--group 'nope': study capacity has groups width, "
                                      "depth, linear, shallow, flatten-order"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_bad_study_input_is_one_line_and_exit_2(cli: Any, tmp_path: Path, args: list[str],
                                                message: str, dry_run: bool) -> None:
    runs = tmp_path / "runs"
    code, out, err = cli("study", "run", *args, *(["--dry-run"] if dry_run else []),
                         "--runs-dir", runs)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not runs.exists()  # refused before anything trains


# ------------------------------------------------------------------ part of a study


def tiny_study(tmp_path: Path) -> Path:
    """Two groups of two seconds-fast trials on synthetic data; a probe on group a."""
    base = tiny_config(data={"synthetic": {"shape": [1, 12, 12], "classes": 4,
                                           "train_size": 128, "test_size": 32}},
                       train={"epochs": 1, "threads": 1})
    doc = {
        "name": "tiny-study", "description": "two tiny groups", "base": base,
        "scales": {"smoke": {}, "long": {"train.epochs": 2}},
        "groups": [
            {"name": "a", "description": "two widths", "grid": {"model.stages": {
                "narrow": [{"channels": 2}, {"channels": 4}],
                "wide": [{"channels": 4}, {"channels": 8}]}}},
            {"name": "b", "description": "two learning rates",
             "grid": {"optim.lr": [0.01, 0.001]}},
        ],
        "equivariance": [{"group": "a", "run": "narrow", "shift": 2, "rotate": 90}],
    }
    path = tmp_path / "tiny-study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _headings(md: Path) -> list[str]:
    return [line for line in md.read_text().splitlines() if line.startswith("#")]


def test_groups_run_one_by_one_build_the_report_of_all(tmp_path: Path) -> None:
    study, runs = tiny_study(tmp_path), tmp_path / "runs"
    first = run_study(study, "smoke", runs_dir=runs, echo=None, groups=["a"])
    assert (first.trials, first.completed, first.groups) == (2, 2, ("a",))
    assert not (first.folder / "b").exists()
    heads = _headings(first.report_md)
    assert "## a" in heads and "## b" not in heads
    assert "## Equivariance of the trained narrow (a)" in heads
    second = run_study(study, "smoke", runs_dir=runs, echo=None, groups=["b"])
    assert second.trials == 2 and second.groups == ("b",)
    one_by_one = _headings(second.report_md)
    assert "## a" in one_by_one and "## b" in one_by_one  # a's runs are in the folder
    assert "## Equivariance of the trained narrow (a)" in one_by_one  # though a did not run
    assert "Not measured" not in second.report_md.read_text()
    everything = run_study(study, "smoke", runs_dir=runs, echo=None)  # all done: skipped
    assert everything.groups == ("a", "b") and everything.completed == 4
    assert _headings(everything.report_md) == one_by_one


def test_group_on_the_command_line_and_a_fourth_scale(cli: Any, tmp_path: Path) -> None:
    study, runs = tiny_study(tmp_path), tmp_path / "runs"
    code, out, err = cli("study", "run", study, "--scale", "long", "--group", "b",
                         "--runs-dir", runs)
    assert code == 0, err
    assert "2/2 trials completed" in out
    folder = runs / "studies" / "tiny-study-long"
    assert (folder / "b").is_dir() and not (folder / "a").exists()
    code, out, err = cli("study", "run", study, "--scale", "quick", "--dry-run")
    assert code == 2 and "--scale 'quick': study tiny-study has scales smoke, long" in err
