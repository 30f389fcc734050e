"""Config validation: defaults, files, overrides, and one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from convlab.config import (
    ExperimentConfig,
    apply_override,
    bundled_examples,
    json_schema,
    load_config,
)
from convlab.errors import ConfigError


def test_defaults_validate_and_are_frozen() -> None:
    cfg = load_config({})
    assert cfg.data.dataset == "mnist" and cfg.model.name == "cnn"
    with pytest.raises(Exception, match="frozen"):
        cfg.seed = 3  # type: ignore[misc]


def test_file_then_overrides_take_precedence(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("optim: {lr: 0.5}\ntrain: {epochs: 3}\n")
    cfg = load_config(path, ["optim.lr=0.25", "model.stages.0.channels=7"])
    assert cfg.optim.lr == 0.25  # the flag beats the file
    assert cfg.train.epochs == 3  # the file beats the default
    assert cfg.name == "exp"  # named after the file
    assert cfg.model.settings["stages"][0]["channels"] == 7


def test_override_values_are_yaml_typed() -> None:
    cfg = load_config({}, ["data.augment.flip=true", "data.subset.train=100", "optim.name=adam"])
    assert cfg.data.augment.flip is True and cfg.data.subset.train == 100
    assert cfg.optim.name == "adam"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"optim": {"lr": -1}}, r"optim\.lr: Input should be greater than 0 \(got -1\)"),
        ({"optim": {"lrr": 0.1}}, r"optim: lrr: unknown key \(for optimizer 'sgd'\)"),
        ({"data": {"dataset": "imagenet"}},
         r"data: dataset: unknown dataset 'imagenet'; did you mean 'imagenette'"),
        ({"model": {"name": "nope"}}, r"model: unknown model 'nope'; expected one of: cnn"),
        ({"model": {"name": "cnn", "stages": [{"channels": 0}]}},
         r"model: stages\.0\.channels: Input should be greater than 0"),
        ({"model": {"name": "pw1", "head": {"typo": 1}}}, r"model: head\.typo: unknown key"),
        ({"train": {"device": "tpu"}}, r"train\.device: expected auto, cpu, cuda"),
        ({"train": {"early_stopping": {"metric": "val.loss"}}},
         r"needs data\.val_fraction > 0"),
        ({"optim": {"name": "adam", "nesterov": True}},
         r"optim: nesterov: unknown key \(for optimizer 'adam'\)"),
        ({"optim": {"name": "sgd", "momentum": 0, "nesterov": True}},
         r"nesterov needs momentum > 0"),
        ({"schedule": {"name": "cosinus"}}, r"unknown schedule 'cosinus'; expected one of"),
    ],
)
def test_bad_values_name_the_key(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(raw)
    assert "\n" not in str(info.value)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML at line \d+"):
        load_config(path)


def test_non_mapping_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="neither a file nor a bundled experiment"):
        load_config("no-such-example")


def test_yaml_tags_that_would_run_code_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_override_errors() -> None:
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        load_config({}, ["optim.lr"])
    with pytest.raises(ConfigError, match="expected an index 0..1"):
        load_config({"model": {"name": "cnn", "stages": [{"channels": 1}, {"channels": 2}]}},
                    ["model.stages.5.channels=3"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config({"optim": {"lr": 0.1}}, ["optim.lr.x=1"])


def test_apply_override_creates_sections() -> None:
    tree: dict = {}
    apply_override(tree, ["data", "augment", "flip"], True)
    assert tree == {"data": {"augment": {"flip": True}}}


def test_resolved_config_round_trips() -> None:
    cfg = load_config({"model": {"name": "pw1"}, "data": {"permute": {"seed": 3}}})
    again = ExperimentConfig.model_validate(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    # the named architecture is expanded into complete settings
    assert [s["channels"] for s in cfg.model.settings["stages"]] == [32, 64, 64]


def test_bundled_examples_all_validate() -> None:
    examples = bundled_examples()
    assert {"mnist-quick", "cifar10-pw1", "fashion-mlp"} <= set(examples)
    for name in examples:
        assert load_config(name).name == name


def test_json_schema_lists_sections_and_model_settings() -> None:
    schema = json_schema()
    assert {"data", "model", "optim", "schedule", "train"} <= set(schema["properties"])
    assert "model:cnn" in schema["$defs"] and "model:mlp" in schema["$defs"]
