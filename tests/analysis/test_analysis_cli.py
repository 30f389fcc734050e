"""The analysis commands: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

TINY = {  # a synthetic experiment: 1x12x12 images, 4 classes
    "name": "tiny",
    "data": {"dataset": "synthetic",
             "synthetic": {"shape": [1, 12, 12], "classes": 4, "train_size": 64,
                           "test_size": 16}},
    "model": {"name": "cnn", "stages": [{"channels": 4}, {"channels": 8}]},
}


Cli = Callable[..., tuple[int, str, str]]  # the `cli` fixture of conftest.py


def one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert "Traceback" not in err


def test_summary_formats(cli: Cli) -> None:
    code, out, _ = cli("summary", "lenet5", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["totals"] == {"params": 61_706, "trainable": 61_706, "frozen": 0,
                              "macs": 416_520}
    code, out, _ = cli("summary", "mlp", "--input", "3x8x8", "--classes", "5", "-f", "csv")
    # 3*8*8 = 192 inputs: 192*256+256 + 256*256+256 + 256*5+5
    assert code == 0 and out.splitlines()[2].startswith("fc1,Linear,256,49152,256,49408,")
    code, out, _ = cli("summary", "pw1")
    assert code == 0 and "stage1.body.conv1" in out and "MACs per image" in out
    code, out, _ = cli("summary", "cnn", "--set", "stages.0.kernel=5", "-f", "md")
    assert code == 0 and "| stage1.body.conv1 | Conv2d | 32x28x28 | 800 |" in out  # 32*5*5


def test_summary_of_an_experiment_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(TINY))
    code, out, _ = cli("summary", str(path), "-f", "json")
    data = json.loads(out)
    assert code == 0 and data["input"] == [1, 12, 12]
    assert data["layers"][-1]["out_shape"] == [4]


@pytest.mark.parametrize(("args", "needle"), [
    (("summary", "nope"), "'nope' is neither a registered model"),
    (("summary", "pw1", "--input", "28x28"), "expected CxHxW"),
    (("summary", "missing.yaml"), "missing.yaml: file not found"),
    (("summary", "pw1", "--input", "1x4x4"), "cannot take an input"),
    (("summary", "cnn", "--set", "stages.0.kernel=0"), "stages.0.kernel"),
])
def test_summary_errors(cli: Cli, args: tuple[str, ...], needle: str) -> None:
    one_line_error(*cli(*args)[::2], needle)


def test_calc_outsize(cli: Cli) -> None:
    code, out, _ = cli("calc", "outsize", "--input", "28", "--kernel", "5", "--padding", "2")
    assert code == 0 and "floor((28 + 2*2 - 1*(5 - 1) - 1) / 1) + 1 = 28" in out
    code, out, _ = cli("calc", "outsize", "-i", "27", "--chain", "conv k5; pool k2 s2")
    assert code == 0 and "output: 11" in out
    assert "warning: layer 2 (pool k2 s2): (23 - 2) / 2 = 10.5 is not an integer" in out
    code, out, _ = cli("calc", "outsize", "-i", "28x32", "-l", "conv k3 p1", "-l", "pool k2")
    assert code == 0 and "output: 14x16" in out
    code, out, _ = cli("calc", "outsize", "-i", "28", "-k", "4", "-p", "same")
    assert code == 0 and "note: layer 1 (conv k4 psame): 'same' needs asymmetric" in out
    code, out, _ = cli("calc", "outsize", "-i", "28", "-o", "14", "--solve", "kernel",
                       "--stride", "2")
    assert code == 0 and "kernel = 1:" in out and "(floor drops 1 pixel)" in out
    assert "kernel = 2:  floor((28 + 2*0 - 2) / 2) + 1 = 14  (exact)" in out
    code, out, _ = cli("calc", "outsize", "-i", "28x32", "-o", "14x16", "--solve", "kernel",
                       "--type", "maxpool")
    assert code == 0 and "both axes: 2" in out


@pytest.mark.parametrize(("args", "needle"), [
    (("-i", "28", "-o", "30", "--solve", "kernel"), "no integer kernel maps 28 to 30"),
    (("-i", "4", "--chain", "conv k3; conv k3"), "layer 2 (conv k3): the kernel spans 3"),
    (("-i", "28", "--chain", "conv k3; blub"), "layer 2 ('blub'): unknown kind"),
    (("-i", "28x",  "-k", "3"), "--input '28x'"),
    (("-i", "28",), "give a layer"),
    (("-i", "28", "--solve", "kernel"), "--solve needs the wanted size"),
    (("-i", "28", "-o", "14", "-k", "3", "--solve", "kernel"), "leave out the one"),
])
def test_calc_outsize_errors(cli: Cli, args: tuple[str, ...], needle: str) -> None:
    one_line_error(*cli("calc", "outsize", *args)[::2], needle)


def test_calc_conv(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("calc", "conv", "--image", "1 2 0; 0 1 3; 2 1 0", "--kernel",
                       "1 0; 0 -1")
    assert code == 0
    assert "y[0,0] = 1*1 + 2*0 + 0*0 + 1*(-1) = 0" in out  # printed as is, not as markup
    assert out.rstrip().endswith("result (2x2):\n   0 -1\n  -1  1")
    f = tmp_path / "img.txt"
    f.write_text("1 2 3\n4 5 6\n7 8 9\n")
    code, out, _ = cli("calc", "conv", "-x", str(f), "-k", "laplacian", "-p", "1", "--flip")
    # centre: 2 + 4 + 6 + 8 - 4*5 = 0
    assert code == 0 and "y[1,1] = " in out and out.rstrip().splitlines()[-2].split()[1] == "0"


@pytest.mark.parametrize(("args", "needle"), [
    (("--image", "1 2; 3", "--kernel", "box3"), "row 2 has 1 entries but row 1 has 2"),
    (("--image", "1 a", "--kernel", "box3"), "row 1, entry 2: 'a' is not a number"),
    (("--image", "1 2; 3 4", "--kernel", "sobel"), "--kernel 'sobel': not a named kernel"),
    (("--image", "1 2; 3 4", "--kernel", "box3"), "does not fit"),
])
def test_calc_conv_errors(cli: Cli, args: tuple[str, ...], needle: str) -> None:
    one_line_error(*cli("calc", "conv", *args)[::2], needle)


def test_calc_rf(cli: Cli) -> None:
    code, out, _ = cli("calc", "rf", "lenet5")
    assert code == 0 and "NO" not in out and out.count(" yes ") >= 5


def test_probe_ops(cli: Cli) -> None:
    code, out, _ = cli("probe", "ops", "conv", "bias", "maxpool")
    assert code == 0
    assert "affine, not linear; shift-equivariant" in out
    assert "equivariant only to shifts by multiples of 2" in out
    code, out, _ = cli("probe", "ops", "--model", "pw1", "--layers", "3", "-b", "zero")
    assert code == 0 and "stage1.post.pool" in out and "zero shift by (2, 2)" in out
    one_line_error(*cli("probe", "ops", "nope")[::2], "unknown operator 'nope'")
    one_line_error(*cli("probe", "ops", "--model", "pw1", "--layers", "99")[::2],
                   "--layers 99: the model has 13 layers")


def test_probe_equivariance(cli: Cli, tmp_path: Path) -> None:
    out_dir = tmp_path / "figs"
    code, out, _ = cli("probe", "equivariance", "lenet5", "--layers", "3", "--shift", "2",
                       "--out", str(out_dir))
    assert code == 0 and "back by 1" in out and f"wrote 5 files to {out_dir}" in out
    assert (out_dir / "input.png").is_file() and (out_dir / "errors.csv").is_file()
    one_line_error(*cli("probe", "equivariance", "lenet5", "--out", str(out_dir))[::2],
                   "give exactly one transform")


def test_probe_equivariance_with_weights(cli: Cli, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from convlab.analysis.common import resolve_model

    r = resolve_model("cnn", (1, 12, 12))
    w = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in r.model.state_dict().items()}, str(w))
    code, out, _ = cli("probe", "equivariance", "cnn", "-i", "1x12x12", "--weights", str(w),
                       "--rotate", "90", "--image", "random", "--layers", "1",
                       "--out", str(tmp_path / "o"))
    assert code == 0 and "rotated back by -90" in out
    one_line_error(*cli("probe", "equivariance", "lenet5", "--weights", str(w),
                        "--shift", "1", "--out", str(tmp_path / "o"))[::2],
                   "does not fit this model")


def test_probe_linearize(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "lenet5.safetensors"
    code, out, _ = cli("probe", "linearize", "lenet5", "--make-linear", "--save", str(path))
    assert code == 0 and "A (10, 784), b (10,)" in out and "affine, collapsed exactly" in out
    assert load_file(str(path))["A"].shape == (10, 784)
    one_line_error(*cli("probe", "linearize", "lenet5")[::2],
                   "layer stage1.body.act1 (Tanh) is non-linear")


def test_budget(cli: Cli) -> None:
    code, out, _ = cli("budget", "269322", "--model", "mlp", "--vary", "hidden_width")
    assert code == 0
    best = next(line for line in out.splitlines() if "<- best" in line)
    assert best.split()[1] == "256" and "+0.00%" in best
    code, out, _ = cli("budget", "mlp-256x2", "--model", "mlp", "--set", "hidden=[64]",
                       "--vary", "depth", "--keep", "1")
    best = next(line for line in out.splitlines() if "<- best" in line)
    assert code == 0 and best.split()[1] == "54" and "+2,048" in best
    one_line_error(*cli("budget", "1000", "--model", "mlp", "--vary", "nope")[::2],
                   "no setting 'nope'")
    one_line_error(*cli("budget", "lots", "--model", "mlp", "--vary", "width")[::2],
                   "'lots' is neither a registered model")


def test_installed_entry_point() -> None:
    exe = Path(sys.executable).with_name("convlab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "convlab.cli"]
    out = subprocess.run([*cmd, "calc", "outsize", "--input", "32", "--chain",
                          "conv k3 s2 p1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "output: 16" in out.stdout  # (32 + 2 - 3) // 2 + 1


def test_summary_and_probe_take_a_trained_run_folder(tmp_path) -> None:
    """A run folder resolves to its trained model: same weights as model.safetensors."""
    import torch
    from safetensors.torch import load_file

    from conftest import tiny_config
    from convlab import run
    from convlab.analysis.common import resolve_model

    r = run(tiny_config(train={"epochs": 1, "batch_size": 64, "threads": 1}),
            runs_dir=tmp_path / "runs")
    resolved = resolve_model(str(r.path))
    saved = load_file(r.weights_path)
    assert resolved.in_shape == (1, 12, 12) and resolved.num_classes == 4
    assert all(torch.equal(v, saved[k]) for k, v in resolved.model.state_dict().items())


def test_calc_outsize_solves_the_setting_not_given(cli: Cli) -> None:
    code, out, _ = cli("calc", "outsize", "-i", "10", "-o", "14", "--solve", "padding",
                       "-k", "3")
    assert code == 0 and "padding = 3:" in out
    code, out, _ = cli("calc", "outsize", "-i", "28", "-o", "14", "-k", "2")
    assert code == 0 and "solving for the stride" in out and "stride = 2:" in out
    code, out, _ = cli("calc", "outsize", "-i", "10", "-o", "14", "-k", "3", "--stride", "1")
    assert code == 0 and "solving for the padding" in out and "padding = 3:" in out
    one_line_error(*cli("calc", "outsize", "-i", "28", "-o", "14", "-k", "2", "--stride",
                        "2", "-p", "0", "-d", "1")[::2], "nothing to solve for")
    code, out, _ = cli("calc", "outsize", "-i", "5", "--chain", "pool k2 s2 p1 ceil")
    assert code == 0 and "output: 3" in out and "- 1 (a last window" in out


def test_run_folder_options_are_applied_or_refused(cli: Cli, tmp_path: Path) -> None:
    """--input reruns a fully convolutional run at another size; --set and --classes cannot
    change trained weights and say so; linearize keeps the trained weights (same A twice,
    equal to the A of the run's own model made linear)."""
    import torch

    from conftest import tiny_config
    from convlab import run
    from convlab.analysis.affine import linearize, make_linear_module

    model = {"name": "cnn", "stages": [{"channels": 4}], "head": {"type": "gap"}}
    r = run(tiny_config(model=model, train={"epochs": 1, "batch_size": 64, "threads": 1}),
            runs_dir=tmp_path / "runs")
    code, out, _ = cli("summary", str(r.path), "--input", "1x24x24", "-f", "csv")
    assert code == 0 and "stage1.body.conv1,Conv2d,4x24x24" in out
    one_line_error(*cli("summary", str(r.path), "--set", "model.stages.0.kernel=5")[::2],
                   "a run folder's trained model cannot be changed")
    one_line_error(*cli("summary", str(r.path), "--classes", "7")[::2],
                   "was trained for 4 classes")
    one_line_error(*cli("summary", str(r.path), "--input", "3x24x24")[::2],
                   "takes 1-channel images")
    paths = [tmp_path / f"a{i}.safetensors" for i in (1, 2)]
    for p in paths:
        code, out, _ = cli("probe", "linearize", str(r.path), "--make-linear", "--save", str(p))
        assert code == 0, out
    a1, a2 = (load_file(str(p))["A"] for p in paths)
    want = linearize(make_linear_module(r.load_model()), (1, 12, 12)).A
    assert torch.equal(a1, a2) and torch.allclose(a1, want, atol=1e-12)


def test_flatten_run_refuses_another_input_size(cli: Cli, tmp_path: Path) -> None:
    from conftest import tiny_config
    from convlab import run

    r = run(tiny_config(model={"name": "cnn", "stages": [{"channels": 4}]},
                        train={"epochs": 1, "batch_size": 64, "threads": 1}),
            runs_dir=tmp_path / "runs")
    one_line_error(*cli("summary", str(r.path), "--input", "1x24x24")[::2],
                   "(trained at 1x12x12) cannot take it")


def test_pretrained_config_summary_needs_no_weights(cli: Cli, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Shapes and counts need no ImageNet weights: nothing is read or fetched."""
    import convlab.models.resnet as R

    def no_fetch(*a: object, **k: object) -> None:
        raise AssertionError("the summary of an architecture fetched pretrained weights")

    monkeypatch.setattr(R, "imagenet_state_dict", no_fetch)
    exp = tmp_path / "ft.yaml"
    exp.write_text(yaml.safe_dump({
        "data": {"dataset": "synthetic", "synthetic": {"shape": [3, 32, 32], "classes": 10}},
        "model": {"name": "resnet18", "weights": "imagenet", "freeze": "backbone"}}))
    code, out, err = cli("summary", str(exp), "-f", "json")
    assert code == 0, err
    assert json.loads(out)["totals"]["params"] == 11_181_642  # resnet18, 10 classes
    code, out, err = cli("budget", str(exp), "--model", "mlp", "--vary", "hidden_width",
                         "--input", "3x32x32")
    assert code == 0, err
