"""Sweep files: expansion by hand (cartesian, zip, seeds, random draws) and validation."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import tiny_config
from convlab.sweep import SweepError, expand, expand_grid, parse_sweep, plan_sweep, run_sweep


def sweep(**body: Any) -> dict[str, Any]:
    base = tiny_config()
    return {"name": "s", "base": base, **body}


# ------------------------------------------------------------------- expansion


def test_cartesian_grid_in_file_order_last_key_fastest() -> None:
    points = expand_grid({"optim.lr": [0.1, 0.01], "train.batch_size": [16, 32, 64]})
    assert points == [
        {"optim.lr": 0.1, "train.batch_size": 16},
        {"optim.lr": 0.1, "train.batch_size": 32},
        {"optim.lr": 0.1, "train.batch_size": 64},
        {"optim.lr": 0.01, "train.batch_size": 16},
        {"optim.lr": 0.01, "train.batch_size": 32},
        {"optim.lr": 0.01, "train.batch_size": 64},
    ]


def test_zip_pairs_lists_and_seeds_repeat_innermost() -> None:
    spec = parse_sweep(sweep(grid={"optim.lr": [0.1, 0.01], "train.batch_size": [16, 64]},
                             zip=True, seeds=[0, 1]))
    assert expand(spec) == [
        {"optim.lr": 0.1, "train.batch_size": 16, "seed": 0},
        {"optim.lr": 0.1, "train.batch_size": 16, "seed": 1},
        {"optim.lr": 0.01, "train.batch_size": 64, "seed": 0},
        {"optim.lr": 0.01, "train.batch_size": 64, "seed": 1},
    ]


def test_seeds_alone_repeat_the_base() -> None:
    plan = plan_sweep(sweep(seeds=[3, 4]))
    assert [t.params for t in plan.trials] == [{"seed": 3}, {"seed": 4}]
    assert [t.config.seed for t in plan.trials] == [3, 4]


def test_plan_resolves_every_trial_and_keys_are_distinct() -> None:
    plan = plan_sweep(sweep(grid={"optim.lr": [0.1, 0.01],
                                  "model.stages.0.channels": [2, 6]}, seeds=[0, 1]))
    assert len(plan.trials) == 8 and len(plan.by_key) == 8
    t = plan.trials[5]  # lr 0.01, channels 2, seed 1
    assert t.params == {"optim.lr": 0.01, "model.stages.0.channels": 2, "seed": 1}
    assert t.config.optim.lr == 0.01 and t.config.seed == 1
    assert t.config.model.settings["stages"][0]["channels"] == 2
    assert plan.param_keys == ["optim.lr", "model.stages.0.channels", "seed"]


def test_named_grid_values_name_the_trials() -> None:
    heads = {"fc": {"type": "flatten"}, "gap average": {"type": "gap"}}
    plan = plan_sweep(sweep(grid={"model.head": heads, "optim.lr": [0.1, 0.01]}))
    assert [t.params["model.head"] for t in plan.trials] == [
        {"type": "flatten"}, {"type": "flatten"}, {"type": "gap"}, {"type": "gap"}]
    assert [t.config.description for t in plan.trials] == ["fc", "fc", "gap average",
                                                           "gap average"]
    assert [t.label() for t in plan.trials] == [
        "fc optim.lr=0.1", "fc optim.lr=0.01", "gap average optim.lr=0.1",
        "gap average optim.lr=0.01"]
    assert plan.trials[2].config.model.settings["head"]["type"] == "gap"
    both = plan_sweep(sweep(grid={"model.head": heads, "optim.lr": {"fast": 0.1, "slow": 0.01}},
                            zip=True))
    assert [t.label() for t in both.trials] == ["fc, fast", "gap average, slow"]
    assert plan_sweep(sweep(grid={"optim.lr": [0.1]})).trials[0].config.description == ""
    # zipped, a named list may repeat a value: names go by position
    ladder = plan_sweep(sweep(grid={"optim.lr": {"base": 0.1, "+ decay": 0.1, "+ wd": 0.1},
                                    "schedule.name": ["constant", "step", "step"],
                                    "optim.weight_decay": [0.0, 0.0, 1e-4]},
                              zip=True, seeds=[0, 1]))
    assert [t.name for t in ladder.trials] == ["base", "base", "+ decay", "+ decay", "+ wd",
                                               "+ wd"]
    assert ladder.trials[3].label() == "+ decay seed=1"  # the name stands for the zipped keys


def test_random_draws_are_seeded_in_bounds_and_counted() -> None:
    body = sweep(random={"optim.lr": {"loguniform": ["1e-4", 1e-1]},  # YAML reads 1e-4 as str
                         "train.batch_size": {"int": [8, 16]},
                         "optim.name": {"choice": ["sgd", "adam"]},
                         "trials": 5, "seed": 7})
    first, again = expand(parse_sweep(body)), expand(parse_sweep(body))
    assert first == again and len(first) == 5
    for p in first:
        assert 1e-4 <= p["optim.lr"] <= 1e-1
        assert 8 <= p["train.batch_size"] <= 16 and isinstance(p["train.batch_size"], int)
        assert p["optim.name"] in ("sgd", "adam")
    other = expand(parse_sweep({**body, "random": {**body["random"], "seed": 8}}))
    assert other != first


def test_grid_crossed_with_random_draws() -> None:
    spec = parse_sweep(sweep(grid={"train.batch_size": [16, 32]},
                             random={"optim.lr": {"uniform": [0.01, 0.02]}, "trials": 3}))
    points = expand(spec)
    assert len(points) == 6
    assert [p["train.batch_size"] for p in points] == [16, 16, 16, 32, 32, 32]
    assert [p["optim.lr"] for p in points[:3]] == [p["optim.lr"] for p in points[3:]]


def test_scientific_strings_in_grid_are_numbers() -> None:
    plan = plan_sweep(sweep(grid={"optim.lr": ["1e-3", "2.5E-2"]}))
    assert [t.params["optim.lr"] for t in plan.trials] == [1e-3, 2.5e-2]


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(("body", "expected"), [
    ({"grid": {"optim.lrr": [0.1]}}, "grid.optim.lrr: not a key of experiment 'tiny'; optim has:"),
    ({"grid": {"optimiser.lr": [0.1]}}, "grid.optimiser.lr: not a key of experiment"),
    ({"grid": {}}, "grid: empty grid"),
    ({"grid": {"optim.lr": []}}, "optim.lr: empty list of values"),
    ({"grid": {"optim.lr": 0.1}}, "optim.lr: expected a list of values (or a mapping of "
                                  "names to values), got 0.1"),
    ({"grid": {"optim.lr": {}}}, "grid.optim.lr: empty mapping of named values"),
    ({"grid": {"optim.lr": [0.1]}, "grid_names": {}}, "grid_names is not a sweep key"),
    ({"grid": {"optim.lr": [0.1, -1.0]}}, "trial 2 (optim.lr=-1): optim.lr: Input should be "
                                          "greater than 0"),
    ({"grid": {"optim.lr": [0.1, 0.2], "train.epochs": [1]}, "zip": True},
     "zip: true needs grid lists of one length, got optim.lr: 2, train.epochs: 1"),
    ({"random": {"optim.lr": {"loguniform": [0, 0.1]}, "trials": 2}},
     "random.optim.lr: loguniform needs 0 < low < high, got [0, 0.1]"),
    ({"random": {"optim.lr": {"uniform": [0.2, 0.1]}, "trials": 2}},
     "uniform needs low < high, got [0.2, 0.1]"),
    ({"random": {"train.epochs": {"int": [1, 2.5]}, "trials": 2}}, "int needs integer bounds"),
    ({"random": {"optim.name": {"choice": []}, "trials": 2}}, "choice needs a non-empty list"),
    ({"random": {"optim.lr": {"gaussian": [0, 1]}, "trials": 2}}, "unknown distribution"),
    ({"random": {"optim.lr": {"uniform": [0.1, 0.2]}}}, "random.trials: Field required"),
    ({"random": {"optim.lr": {"uniform": [0.1, 0.2]}, "trails": 2}}, "random.trails: unknown key"),
    ({"random": {"trials": 2}}, "random: no parameters"),
    ({"gird": {"optim.lr": [0.1]}}, "gird: unknown key"),
    ({}, "nothing to sweep"),
    ({"grid": {"optim.lr": [0.1]}, "search": {"optim.lr": {"uniform": [0.1, 0.2]},
                                              "trials": 2}}, "search: replaces grid:"),
    ({"grid": {"seed": [1, 2]}, "seeds": [0]}, "seeds: and grid.seed both set"),
    ({"seeds": [1, 1]}, "seeds: repeated seeds"),
    ({"grid": {"optim.lr": [0.1, 0.1]}}, "resolve to the same experiment"),
    ({"grid": {"model.stages.5.channels": [4]}}, "model.stages has 2 items"),
    ({"search": {"optim.lr": {"uniform": [0.1, 0.2]}, "trials": 2}},
     "search.metric: 'val.top1' needs data.val_fraction > 0"),
    ({"search": {"optim.lr": {"uniform": [0.1, 0.2]}, "trials": 2, "metric": "val.acc"}},
     "search.metric: Value error, expected <split>.<metric>"),
    ({"search": {"optim.lr": {"uniform": [-0.1, 0.2]}, "trials": 2, "metric": "test.top1"}},
     "search.optim.lr at -0.1: optim.lr: Input should be greater than 0"),
    ({"search": {"optim.lr": {"uniform": [0.1, 0.2]}, "trials": 2, "metric": "test.top1"},
      "seeds": [0, 1]}, "search: takes at most one seed"),
    ({"name": "a b", "seeds": [0]}, "name: String should match pattern"),
    ({"base": "no-such-experiment", "seeds": [0]}, "base: 'no-such-experiment' is neither"),
])
def test_bad_sweeps_are_one_line_errors_naming_the_key(body: dict[str, Any], expected: str) -> None:
    raw = {**sweep(), **body}
    if "base" in body:
        raw["base"] = body["base"]
    with pytest.raises(SweepError) as e:
        plan_sweep(raw)
    message = str(e.value).replace("Value error, ", "")
    assert expected.replace("Value error, ", "") in message
    assert "\n" not in message


def test_a_swept_model_name_defers_model_keys_to_the_trials() -> None:
    plan = plan_sweep(sweep(base={**tiny_config(), "model": {"name": "cnn"}},
                            grid={"model.name": ["mlp"], "model.hidden": [[16]]}))
    assert plan.trials[0].config.model.name == "mlp"
    with pytest.raises(SweepError, match=r"trial 1 \(model.name=mlp model.stages"):
        plan_sweep(sweep(grid={"model.name": ["mlp"], "model.stages": [[{"channels": 4}]]}))


def test_base_path_is_relative_to_the_sweep_file(tmp_path: Path,
                                                 write_sweep: Callable[..., Path]) -> None:
    import yaml

    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(name="fromfile")))
    path = write_sweep(base="exp/tiny.yaml", grid={"optim.lr": [0.1]})
    plan = plan_sweep(path)
    assert plan.base.name == "fromfile" and plan.name == "tinysweep"
    assert plan_sweep(write_sweep(name="bundled", base="synthetic-smoke", seeds=[0])).base.name \
        == "synthetic-smoke"


def test_bad_input_creates_no_sweep_folder(tmp_path: Path) -> None:
    with pytest.raises(SweepError):
        run_sweep(sweep(grid={"optim.lr": [0.1, -1.0]}), runs_dir=tmp_path / "runs")
    with pytest.raises(SweepError, match="unsupported database 'sqlite'"):
        run_sweep(sweep(grid={"optim.lr": [0.1]}), runs_dir=tmp_path / "runs",
                  storage="sqlite:///x.db")
    with pytest.raises(SweepError, match="--workers: expected at least 1"):
        run_sweep(sweep(grid={"optim.lr": [0.1]}), runs_dir=tmp_path / "runs", workers=0)
    assert not (tmp_path / "runs").exists()


def test_distribution_corners_and_file_round_trip() -> None:
    spec = parse_sweep(sweep(random={"optim.lr": {"loguniform": [1e-3, 1e-1]},
                                     "train.epochs": {"int": [1, 3]}, "trials": 2}))
    assert spec.random is not None
    assert spec.random.params["train.epochs"].corners() == [1, 3]
    again = parse_sweep(spec.to_file(tiny_config()))
    assert again == spec
    assert math.isclose(again.random.params["optim.lr"].low, 1e-3)  # type: ignore[union-attr]
    named = parse_sweep(sweep(grid={"optim.lr": {"fast": 0.1, "slow": 0.01}}))
    assert named.to_file(tiny_config())["grid"] == {"optim.lr": {"fast": 0.1, "slow": 0.01}}
    assert parse_sweep(named.to_file(tiny_config())) == named


def test_set_changes_the_base_of_every_trial() -> None:
    base = tiny_config(model={"name": "cnn", "stages": [{"channels": 4}, {"channels": 8}]})
    plan = plan_sweep({"name": "s", "base": base, "grid": {"optim.lr": [0.1, 0.01]},
                       "set": {"train.epochs": 1, "model.stages.*.activation": "tanh",
                               "optim.weight_decay": "1e-4"}})
    for t in plan.trials:
        assert t.config.train.epochs == 1 and t.config.optim.weight_decay == 1e-4
        assert {s["activation"] for s in t.config.model.settings["stages"]} == {"tanh"}
    assert [t.config.optim.lr for t in plan.trials] == [0.1, 0.01]
    assert plan.base.train.epochs == 1  # the base itself carries the change
    spec = parse_sweep({"name": "s", "base": base, "grid": {"optim.lr": [0.1]},
                        "set": {"train.epochs": 1}})
    again = parse_sweep(spec.to_file(base))
    assert again.set == {"train.epochs": 1} and again == spec


@pytest.mark.parametrize(("body", "expected"), [
    ({"grid": {"optim.lr": [0.1]}, "set": {"optim.lr": 0.2}},
     "optim.lr: both fixed by set: and swept"),
    ({"grid": {"optim.lr": [0.1]}, "set": {"train epochs": 1}},
     "'train epochs' is not a dotted experiment key"),
    ({"grid": {"optim.lr": [0.1]}, "set": {"train.epochs": -1}},
     "sweep: set: train.epochs: Input should be greater than 0"),
    ({"grid": {"optim.lr": [0.1]}, "set": {"train.epoch": 1}},
     "sweep: set: train.epoch: unknown key; did you mean 'epochs'?"),
])
def test_bad_set_is_one_line_error(body: dict[str, Any], expected: str) -> None:
    with pytest.raises(SweepError) as e:
        plan_sweep(sweep(**body))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_a_trial_line_shows_accuracy_in_percent_and_fits_80_columns() -> None:
    from convlab.sweep.execute import trial_line

    line = trial_line(3, 12, "completed", "optim.lr=0.1 model.width=16", "val.top1", 0.91234,
                      12.34)
    assert line == "[3/12] completed  optim.lr=0.1 model.width=16  val.top1 91.23%  12.3s"
    assert len(line) <= 80
    assert trial_line(1, 2, "failed", "x", "test.loss", float("nan"), 1.0) == \
        "[1/2] failed  x  1.0s"
    assert "test.loss 0.1235" in trial_line(1, 2, "completed", "x", "test.loss", 0.123456, 1)
