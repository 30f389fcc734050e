"""Config keys a person can discover and set: `config keys`, descriptions on every field,
'*' over list items, errors blamed on the flag, "did you mean", an empty file, and
`config show` applying match_params."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from conftest import run_cli
from convlab.commands.keys import experiment_keys, matching
from convlab.config import ConfigError, EmptyExperimentWarning, load_config


def _cli(args: list[str], capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    return run_cli(args, capsys, monkeypatch)


def test_keys_rows_name_type_default_and_owner() -> None:
    rows = {(r.key, r.owner): r for r in experiment_keys()}
    r = rows[("train.epochs", "")]
    assert (r.type, r.default) == ("int", "10") and r.description
    assert rows[("model.stages.*.kernel", "model cnn")].default == "3"
    assert rows[("optim.momentum", "optim sgd")].default == "0.9"
    assert {r.key for r in matching(experiment_keys(), "train.early_stopping")} == {
        "train.early_stopping", "train.early_stopping.metric",
        "train.early_stopping.patience", "train.early_stopping.min_delta"}
    assert all(r.owner == "optim sgd" for r in matching(experiment_keys(), "sgd"))


def test_config_keys_command(capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _cli(["config", "keys", "train"], capsys, monkeypatch)
    assert code == 0 and "train.batch_size  int = 64\n    images per training step" in out
    code, out, err = _cli(["config", "keys", "nope"], capsys, monkeypatch)
    assert code == 2 and "no key under 'nope'" in err


def test_wildcard_over_list_items() -> None:
    cfg = load_config("mnist-quick", ["model.stages.*.activation=tanh"])
    assert {s["activation"] for s in cfg.model.settings["stages"]} == {"tanh"}
    cfg = load_config({"model": {"name": "pw1"}}, ["model.stages.*.channels=4"])
    assert {s["channels"] for s in cfg.model.settings["stages"]} == {4}  # defaults expanded
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config({"model": {"name": "mlp"}}, ["model.hidden.*.x=1"])


def test_a_bad_set_value_is_blamed_on_the_flag(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text("train: {epochs: 2}\n")
    with pytest.raises(ConfigError) as e:
        load_config(f, ["train.epochs=-1"])
    assert str(e.value).startswith("--set train.epochs=-1: train.epochs: Input should be")
    f.write_text("train: {epochs: 0}\n")
    with pytest.raises(ConfigError) as e:  # the file's own mistake names the file
        load_config(f, ["optim.lr=0.1"])
    assert str(e.value).startswith(f"{f}: train.epochs")


def test_unknown_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text("train: {bacth_size: 3}\n")
    with pytest.raises(ConfigError, match="train.bacth_size: unknown key; did you mean "
                                          "'batch_size'"):
        load_config(f)


def test_empty_file_says_it_trains_the_defaults(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text("\n")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cfg = load_config(f)
    assert cfg.train.epochs == 10 and w[0].category is EmptyExperimentWarning
    assert "is empty: it trains the defaults" in str(w[0].message)
    code, _, err = _cli(["config", "show", str(f)], capsys, monkeypatch)
    assert code == 0 and err.startswith("warning: ") and err.count("\n") == 1, err


def test_config_show_applies_match_params(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "mp.yaml"
    f.write_text("data: {dataset: synthetic, synthetic: {shape: [1, 12, 12], classes: 4}}\n"
                 "model: {name: mlp, hidden: [8]}\n"
                 "match_params: {reference: 2000, vary: hidden_width}\n")
    code, out, err = _cli(["config", "show", str(f)], capsys, monkeypatch)
    assert code == 0, err
    # (144 + 1) * h + (h + 1) * 4 = 149 h + 4 is nearest 2000 at h = 13 (1,941)
    assert out.startswith("# match_params: hidden_width = 13 gives 1,941 parameters")
    assert "hidden:\n  - 13\n" in out and "match_params: null" in out


@pytest.mark.parametrize(("body", "hint"), [
    ("model: {name: cnn, stages: [{channels: 4, kernle: 3}]}", "did you mean 'kernel'?"),
    ("model: {name: mlp, hiden: [3]}", "model: hiden: unknown key; did you mean 'hidden'?"),
    ("optim: {name: sgd, momentun: 0.9}",
     "momentun: unknown key (for optimizer 'sgd'); did you mean 'momentum'?"),
])
def test_did_you_mean_inside_model_and_optimizer_settings(tmp_path: Path, body: str,
                                                          hint: str) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(body + "\n")
    with pytest.raises(ConfigError, match=re.escape(hint)):
        load_config(f)
