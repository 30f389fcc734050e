"""Bundled studies: every one plans at every scale, its parameter-count claims hold,
and its smoke scale runs end to end on the real data, ending with a report; ``study
list`` and ``study run --dry-run`` print what the plans hold, and ``--group`` runs part
of a study (on a tiny synthetic study); seeds per scale and a group's own scale
overrides (on study files the tests write)."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import tiny_config
from convlab.analysis.budget import count_params
from convlab.commands.study import study_lines
from convlab.config import load_config
from convlab.studies import (
    SCALES,
    StudyError,
    bundled_studies,
    group_seeds,
    group_sweep,
    load_study,
    plan_study,
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
def test_every_bundled_study_has_every_scale(name: str) -> None:
    # long is the scale that shows the classic directions on a CPU; each study's
    # measured wall time and readings are in benchmarks/RESULTS.md
    assert set(load_study(name).scales) == set(SCALES)


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
        scales = [s for s in SCALES if s in study.scales]
        counts = {s: {g: p.total for g, p in plan_study(study, s).plans.items()}
                  for s in scales}  # seeds per scale may make them differ
        totals = [sum(c.values()) for c in counts.values()]
        head = next(line for line in lines if line.startswith(f"{name}: "))
        n = len(study.groups)
        if len(set(totals)) == 1:
            assert head.startswith(f"{name}: {totals[0]} trials in {n} group")
            assert head.endswith("scales " + ", ".join(scales))
        else:
            assert head.startswith(f"{name}: {n} group")
            assert head.endswith("; trials " + ", ".join(
                f"{s} {t}" for s, t in zip(scales, totals, strict=True)))
        block = lines[lines.index(head):]
        for group in counts[scales[0]]:  # "  6  ladder-mnist    (long 18) baseline, ..."
            line = next(li for li in block if li.split()[1:2] == [group])
            assert line.split()[0] == str(counts[scales[0]][group])
            others = ", ".join(f"{s} {c[group]}" for s, c in counts.items()
                               if c[group] != counts[scales[0]][group])
            rest = line.split(None, 2)[2] if len(line.split()) > 2 else ""
            if others:
                assert rest.startswith(f"({others}) "), line
            else:
                assert not re.match(r"\((smoke|quick|long|full) \d+", rest), line


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


# ------------------------------------------------------------------ seeds per scale, group scales


def seeded_study(tmp_path: Path, **changes: Any) -> Path:
    """A study on synthetic data with both keys: the long scale repeats every trial over
    three seeds; group b overrides the long scale (its own seeds and data), group c has
    fixed seeds. ``changes`` replace top-level keys of the file."""
    base = tiny_config(data={"synthetic": {"shape": [1, 12, 12], "classes": 4,
                                           "train_size": 128, "test_size": 32}},
                       train={"epochs": 1, "threads": 1})
    doc: dict[str, Any] = {
        "name": "seeded", "base": base,
        "scales": {"smoke": {"seed": 5},  # a dotted key: the base's seed, as before
                   "long": {"train.epochs": 3, "train.batch_size": 16, "seeds": [0, 1, 2]}},
        "groups": [
            {"name": "a", "grid": {"optim.lr": [0.01, 0.001]}},
            {"name": "b", "set": {"train.epochs": 2, "optim.lr": 0.1},
             "grid": {"train.batch_size": [8, 32]},
             "scales": {"long": {"train.batch_size": 64, "data.synthetic.train_size": 64,
                                 "seeds": [3, 4]}}},
            {"name": "c", "grid": {"optim.lr": [0.1, 0.01]}, "seeds": [7, 8]},
        ],
    }
    doc.update(changes)
    path = tmp_path / "seeded.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_group_sweep_applies_base_then_set_then_study_scale_then_group_scale(
        tmp_path: Path) -> None:
    study = load_study(seeded_study(tmp_path))
    a, b, c = study.groups
    long_b = load_config(group_sweep(study, b, "long")["base"])
    assert long_b.train.epochs == 3  # the study's scale over the group's set
    assert long_b.optim.lr == 0.1  # the group's set, which no scale names
    assert long_b.train.batch_size == 64  # the group's scale over the study's scale
    assert long_b.data.synthetic["train_size"] == 64  # the group's scale over the base
    long_a = load_config(group_sweep(study, a, "long")["base"])  # b's scale is b's alone
    assert (long_a.train.batch_size, long_a.data.synthetic["train_size"]) == (16, 128)
    smoke_b = load_config(group_sweep(study, b, "smoke")["base"])  # no group scale here
    assert (smoke_b.train.epochs, smoke_b.train.batch_size, smoke_b.seed) == (2, 32, 5)
    # seeds is a scale's reserved key, never a dotted override of the base
    assert "seeds" not in group_sweep(study, a, "long")["base"]


def test_scale_seeds_repeat_every_trial_and_group_seeds_win_unless_its_scale_sets_them(
        tmp_path: Path) -> None:
    study = load_study(seeded_study(tmp_path))
    a, b, c = study.groups
    assert [group_seeds(study, g, "smoke") for g in (a, b, c)] == [None, None, [7, 8]]
    # the group's scale entry > the group's fixed seeds > the study scale's seeds
    assert [group_seeds(study, g, "long") for g in (a, b, c)] == [[0, 1, 2], [3, 4], [7, 8]]
    smoke, long = plan_study(study, "smoke"), plan_study(study, "long")
    assert {g: p.total for g, p in smoke.plans.items()} == {"a": 2, "b": 2, "c": 4}
    assert {g: p.total for g, p in long.plans.items()} == {"a": 6, "b": 4, "c": 4}
    assert (smoke.trials, long.trials) == (8, 14)
    assert [t.config.seed for t in smoke.plans["a"].trials] == [5, 5]  # dotted seed: base
    assert [(t.params["optim.lr"], t.config.seed) for t in long.plans["a"].trials] == [
        (0.01, 0), (0.01, 1), (0.01, 2), (0.001, 0), (0.001, 1), (0.001, 2)]
    assert [t.config.seed for t in long.plans["b"].trials] == [3, 4, 3, 4]
    # a group scale's seeds win over the group's fixed seeds too
    doc = yaml.safe_load(seeded_study(tmp_path).read_text())
    doc["groups"][2]["scales"] = {"long": {"seeds": [9]}}
    study = load_study(seeded_study(tmp_path, groups=doc["groups"]))
    assert group_seeds(study, study.groups[2], "long") == [9]
    assert group_seeds(study, study.groups[2], "smoke") == [7, 8]


@pytest.mark.parametrize("where,value,message", [
    ("group", {"quick": {"train.epochs": 2}},
     "groups.1 (b): scales.quick: the study has no scale 'quick' (its scales: smoke, long)"),
    ("group", {"long": {"seeds": []}}, "groups.1 (b): scales.long.seeds: a non-empty list"),
    ("study", {"smoke": {}, "long": {"seeds": [1, 1]}},
     "scales.long.seeds: repeated seeds in [1, 1]"),
    ("study", {"smoke": {}, "long": {"seeds": 3}}, "scales.long.seeds: a non-empty list"),
])
def test_bad_scales_fail_validation_naming_the_group_and_the_scale(
        cli: Any, tmp_path: Path, where: str, value: dict, message: str) -> None:
    doc = yaml.safe_load(seeded_study(tmp_path).read_text())
    if where == "group":
        doc["groups"][1]["scales"] = value
    else:
        doc["scales"] = value
    path = seeded_study(tmp_path, **doc)
    with pytest.raises(StudyError, match=re.escape(message)):
        load_study(path)
    code, out, err = cli("study", "run", path, "--dry-run")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_study_list_counts_trials_per_scale_where_seeds_make_them_differ(
        tmp_path: Path) -> None:
    lines = study_lines(load_study(seeded_study(tmp_path)))
    assert lines == ["seeded: 3 groups; trials smoke 8, long 14",
                     "  2  a  (long 6)",
                     "  2  b  (long 4)",
                     "  4  c"]  # c's fixed seeds: 4 at every scale
    same = seeded_study(tmp_path, scales={"smoke": {}, "long": {"train.epochs": 2}},
                        groups=[{"name": "a", "description": "two rates",
                                 "grid": {"optim.lr": [0.01, 0.001]}}])
    assert study_lines(load_study(same)) == ["seeded: 2 trials in 1 group; scales smoke, long",
                                             "  2  a  two rates"]


def test_dry_run_of_a_study_with_scale_seeds_and_group_scales(
        cli: Any, tmp_path: Path) -> None:
    path, runs = seeded_study(tmp_path), tmp_path / "runs"
    code, out, err = cli("study", "run", path, "--scale", "long", "--dry-run",
                         "--runs-dir", runs)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "study seeded (long): all configs valid; nothing created or trained"
    heads = [line for line in lines if line.startswith("group ")]
    assert heads == ["group a: 6 trials (2 grid points x 3 seeds)",
                     "group b: 4 trials (2 grid points x 2 seeds)",
                     "group c: 4 trials (2 grid points x 2 seeds)"]
    b = lines.index(heads[1])
    assert [line.split()[2:] for line in lines[b + 1:b + 5]] == [
        ["train.batch_size=8", "seed=3"], ["train.batch_size=8", "seed=4"],
        ["train.batch_size=32", "seed=3"], ["train.batch_size=32", "seed=4"]]
    assert lines[-1] == "total: 14 trials in 3 groups"
    code, out, err = cli("study", "run", path, "--scale", "smoke", "--dry-run")
    assert code == 0 and out.splitlines()[-1] == "total: 8 trials in 3 groups", err
    assert not runs.exists()  # nothing created
