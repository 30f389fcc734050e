"""A user's own model, as a student writes one, through every command.

The model files are written into ``tmp_path``; the commands that must work in a fresh
process (resume, summary, viz, probe, sweep workers) run as real ``convlab`` processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from torch import nn

import convlab
from convlab.errors import ConfigError, ModelError
from convlab.models import MODELS, register_model
from convlab.usercode import UserCodeError

NETS = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    """Two convolutions and a linear head."""

    def __init__(self, width: int = 4, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def make_mlp(hidden: int, in_shape: tuple, num_classes: int):
    c, h, w = in_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


class Broken(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        raise RuntimeError("forgot to pick a width")


class WrongShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x.mean((1, 2, 3)).unsqueeze(1).expand(-1, 4))
'''

DATA = {"dataset": "synthetic",
        "synthetic": {"shape": [1, 12, 12], "classes": 4, "train_size": 128, "test_size": 32}}
TRAIN = {"epochs": 2, "batch_size": 32, "threads": 1}


def write_experiment(folder: Path, model: dict, **extra: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nets.py").write_text(NETS)
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": DATA, "model": model, "train": TRAIN, **extra}))
    return path


def convlab_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A real ``convlab`` process (a fresh interpreter: nothing registered in this one)."""
    return subprocess.run([sys.executable, "-m", "convlab", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300)


def only_run(runs: Path) -> Path:
    found = [p for p in runs.glob("*/*") if (p / "summary.json").exists()]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- from YAML


def test_a_yaml_run_of_a_user_model_from_another_directory(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "project", {"name": "nets.py:TinyNet", "width": 3})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = convlab_cli("run", str(exp), "--runs-dir", str(tmp_path / "runs"), "-q",
                       cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    run = convlab.load_run(only_run(tmp_path / "runs"))
    assert run.status == "completed"
    # the dataset's classes and channels reached the constructor: 4 scores, 1 channel
    assert run.summary["params"] == (9 * 3 + 3) + (27 * 6 + 6) + (6 * 4 + 4)
    assert run.summary["trainable_params"] == run.summary["params"]
    assert run.config.model.settings == {"width": 3}  # dataset parameters come at build
    code = run.env["user_code"][0]
    assert Path(code["file"]) == (tmp_path / "project" / "nets.py").resolve()
    assert (run.path / code["copy"]).read_text() == NETS


@pytest.mark.parametrize("name", ["nets:TinyNet", "./nets.py:TinyNet", "nets.py:TinyNet"])
def test_the_spellings_of_a_local_file(tmp_path: Path, name: str) -> None:
    exp = write_experiment(tmp_path, {"name": name})
    assert convlab.load_config(exp).model.name == f"{(tmp_path / 'nets.py').resolve()}:TinyNet"


def test_a_dotted_name_without_a_colon_says_how_to_name_user_code(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, {"name": "nets.TinyNet"})
    with pytest.raises(ConfigError, match=r"named with a colon: nets:TinyNet or nets.py:TinyNet"):
        convlab.load_config(exp)


def test_the_resolved_config_records_the_absolute_file_and_the_defaults(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, {"name": "nets.py:TinyNet"})
    cfg = convlab.load_config(exp)
    assert cfg.model.name == f"{(tmp_path / 'nets.py').resolve()}:TinyNet"
    assert cfg.model.settings == {"width": 4}  # dataset parameters are filled in at build


def test_a_function_returning_a_module_gets_the_input_shape(tmp_path: Path) -> None:
    (tmp_path / "nets.py").write_text(NETS)
    model = convlab.create_model({"name": str(tmp_path / "nets.py") + ":make_mlp",
                                  "hidden": 5}, (3, 8, 8), 7)
    assert model[1].in_features == 3 * 8 * 8 and model[3].out_features == 7


def test_resume_summary_viz_and_probe_in_fresh_processes(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, {"name": "nets.py:TinyNet", "width": 3})

    def stop_after_first(epoch: int, metrics: dict) -> str | None:
        return "stopped for the test" if epoch == 1 else None

    first = convlab.run(exp, runs_dir=tmp_path / "runs", epoch_hook=stop_after_first)
    assert first.status == "pruned" and first.summary["epochs_done"] == 1
    resumed = convlab_cli("run", "--resume", str(first.path), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    run = convlab.load_run(first.path)
    assert run.status == "completed" and run.summary["epochs_done"] == 2

    summary = convlab_cli("summary", str(run.path), cwd=tmp_path / "runs")
    assert summary.returncode == 0, summary.stderr
    assert "conv1" in summary.stdout and "conv2" in summary.stdout and "fc" in summary.stdout
    viz = convlab_cli("viz", str(run.path), "--filters", "--activations", cwd=tmp_path)
    assert viz.returncode == 0, viz.stderr
    assert list((run.path / "figures").glob("*.png"))
    probe = convlab_cli("probe", "equivariance", str(run.path), "--shift", "2", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert "conv1" in probe.stdout
    rf = convlab_cli("calc", "rf", str(run.path), cwd=tmp_path)
    assert rf.returncode == 0, rf.stderr
    assert "conv2" in rf.stdout and "yes" in rf.stdout  # analytic and gradient fields agree
    report = convlab_cli("report", str(run.path), cwd=tmp_path)
    assert report.returncode == 0, report.stderr


def test_a_changed_file_is_reopened_from_the_run_copy_with_a_warning(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, {"name": "nets.py:TinyNet", "width": 3})
    run = convlab.run(exp, runs_dir=tmp_path / "runs", overrides=["train.epochs=1"])
    (tmp_path / "nets.py").write_text(NETS.replace("2 * width", "3 * width"))  # edited later
    done = convlab_cli("summary", str(run.path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "changed since the run" in done.stderr and "code/nets.py" in done.stderr
    assert "6x6x6" in done.stdout and "9x6x6" not in done.stdout  # the run's 2*width conv2
    (tmp_path / "nets.py").unlink()  # gone altogether: the copy still serves
    gone = convlab_cli("summary", str(run.path), cwd=tmp_path)
    assert gone.returncode == 0 and "is gone" in gone.stderr


def test_a_two_worker_sweep_over_a_keyword_argument(tmp_path: Path) -> None:
    write_experiment(tmp_path, {"name": "nets.py:TinyNet"})
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(
        {"name": "widths", "base": "exp.yaml", "grid": {"model.width": [2, 3]}}))
    done = convlab_cli("sweep", "sweep.yaml", "--workers", "2", "--runs-dir", "runs",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    runs = [convlab.load_run(p.parent) for p in (tmp_path / "runs").rglob("summary.json")
            if (p.parent / "config.yaml").exists()]
    widths = sorted(r.config.model.settings["width"] for r in runs
                    if r.summary.get("status") == "completed")
    assert widths == [2, 3]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("model", "message"), [
    ({"name": "nets.py:TinyNet", "widht": 3}, r"unknown key 'widht'; did you mean 'width'\?"),
    ({"name": "nets.py:make_mlp"}, r"missing required key 'hidden'"),
    ({"name": "nets.py:TinyNet", "width": "wide"}, r"width: Input should be a valid integer"),
    ({"name": "nets.py:TinyNett"}, r"defines no 'TinyNett'; did you mean 'TinyNet'\?"),
    ({"name": "nothere.py:Net"}, r"nothere.py: file not found \(looked for .*nothere.py"),
])
def test_bad_model_sections_are_one_line_before_any_data(
    tmp_path: Path, model: dict, message: str
) -> None:
    exp = write_experiment(tmp_path, model)
    with pytest.raises((ConfigError, UserCodeError), match=message) as info:
        convlab.run(exp, runs_dir=tmp_path / "runs")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_user_code_that_raises_is_one_line_naming_its_file_and_line(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, {"name": "nets.py:Broken"})
    done = convlab_cli("run", str(exp), "--runs-dir", "runs", cwd=tmp_path)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and "nets.py:" in line and "forgot to pick a width" in line
    assert "RuntimeError" in line and not (tmp_path / "runs").exists()
    debug = convlab_cli("--debug", "run", str(exp), "--runs-dir", "runs", cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_a_file_that_fails_to_import_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import torch\n\nx = 1 / 0\n")
    exp = write_experiment(tmp_path, {"name": "bad.py:Net"})
    with pytest.raises((ConfigError, UserCodeError), match=r"bad.py:3: ZeroDivisionError"):
        convlab.load_config(exp)


def test_a_wrong_output_shape_is_refused_before_training(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, {"name": "nets.py:WrongShape"})
    with pytest.raises(ModelError, match=r"returns shape \(2, 3\) .* expected \(batch, "
                                         r"num_classes\) = \(2, 4\)"):
        convlab.run(exp, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- registration


def test_register_twice_from_one_source_replaces_from_another_refuses() -> None:
    def first() -> nn.Module:
        return nn.Linear(1, 1)

    def make(name: str) -> object:
        def fn(num_classes: int = 10) -> nn.Module:
            return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        fn.__qualname__ = name
        return fn

    try:
        register_model("cell-model")(make("cell"))  # a notebook cell ...
        register_model("cell-model")(make("cell"))  # ... run twice: replaced
        assert "cell-model" in convlab.list_models("cell-*")
        with pytest.raises(ModelError, match=r"already registered by .*:cell; .*:other cannot"):
            register_model("cell-model")(make("other"))
        with pytest.raises(ModelError, match=r"'cnn' is already registered by convlab"):
            register_model("cnn")(first)
    finally:
        MODELS._items.pop("cell-model", None)


def test_imports_key_and_import_flag_register_models(tmp_path: Path) -> None:
    (tmp_path / "reg.py").write_text(textwrap.dedent('''
        import convlab
        from torch import nn

        @convlab.register_model("reg-tiny")
        class RegTiny(nn.Module):
            """Registered from a user file."""
            def __init__(self, num_classes: int, in_shape: tuple, hidden: int = 6):
                super().__init__()
                c, h, w = in_shape
                self.net = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden),
                                         nn.ReLU(), nn.Linear(hidden, num_classes))
            def forward(self, x):
                return self.net(x)
    '''))
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"imports": ["reg.py"], "data": DATA,
                                   "model": {"name": "reg-tiny", "hidden": 5},
                                   "train": {**TRAIN, "epochs": 1}}))
    done = convlab_cli("run", str(exp), "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "summary.json").read_text())["params"] == 144 * 5 + 5 + 5 * 4 + 4
    listed = convlab_cli("models", "ls", "reg-*", "--import", "reg.py", cwd=tmp_path)
    assert listed.returncode == 0 and "reg-tiny" in listed.stdout
    assert "Registered from a user file" in listed.stdout
    shown = convlab_cli("--import", "reg.py", "models", "show", "reg-tiny", cwd=tmp_path)
    assert yaml.safe_load(shown.stdout) == {"model": {"name": "reg-tiny", "hidden": 6}}


def test_an_entry_point_plugin_registers_on_first_use(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "myplugin").mkdir(parents=True)
    (site / "myplugin" / "__init__.py").write_text(textwrap.dedent('''
        import convlab
        from torch import nn

        @convlab.register_model("plugin-net")
        def plugin_net(num_classes: int = 10):
            return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
    '''))
    dist = site / "myplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[convlab.plugins]\nmine = myplugin\n")
    code = ("import convlab; print(convlab.list_models('plugin-*')); "
            "print(convlab.create_model('plugin-net', (1, 4, 4), 3)(__import__('torch')"
            ".zeros(2, 1, 4, 4)).shape)")
    done = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(site)},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "['plugin-net']" in done.stdout and "torch.Size([2, 3])" in done.stdout


# ---------------------------------------------------------------- Python API


class Frozen(nn.Module):
    """A frozen feature extractor and a trainable head: a linear probe."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.head = nn.Linear(3, num_classes)
        for p in self.features.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.head(self.features(x))


def test_run_takes_a_model_object_and_counts_frozen_parameters(tmp_path: Path) -> None:
    from conftest import tiny_config

    model = Frozen()
    before = model.features[0].weight.detach().clone()
    run = convlab.run(tiny_config(), ["train.epochs=1"], model=model, runs_dir=tmp_path)
    assert run.status == "completed"
    assert run.summary["trainable_params"] == 3 * 4 + 4
    assert run.summary["frozen_params"] == 3 * 9 + 3
    assert (model.features[0].weight == before).all()  # frozen stays frozen
    # this test module is importable, so the run records the class and can rebuild it
    assert run.config.model.name.endswith(":Frozen")
    reopened = convlab.load_run(run.path, model=Frozen()).load_model()
    assert (reopened.head.weight == model.head.weight.cpu()).all()


def test_a_resnet18_linear_probe_counts_its_trainable_parameters() -> None:
    from convlab.models import parameter_counts

    probe = convlab.create_model({"name": "resnet18", "freeze": "backbone"}, (3, 32, 32), 10)
    counts = parameter_counts(probe)
    assert counts["trainable_params"] == 512 * 10 + 10
    assert counts["frozen_params"] == counts["params"] - 5130 > 11_000_000


def test_run_takes_a_callable_given_the_dataset_parameters(tmp_path: Path) -> None:
    from conftest import tiny_config

    seen = {}

    def factory(num_classes: int, in_channels: int) -> nn.Module:
        seen.update(num_classes=num_classes, in_channels=in_channels)
        return nn.Sequential(nn.Conv2d(in_channels, 2, 3), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(2, num_classes))

    run = convlab.run(tiny_config(), ["train.epochs=1"], model=factory, runs_dir=tmp_path)
    assert seen == {"num_classes": 4, "in_channels": 1} and run.status == "completed"
    assert run.summary["model_from"] == "object"  # a local function: Python only
    with pytest.raises(Exception, match=r"load_run\(path, model=\.\.\.\)"):
        convlab.load_run(run.path).load_model()
    assert convlab.load_run(run.path, model=factory(4, 1)).load_model() is not None
