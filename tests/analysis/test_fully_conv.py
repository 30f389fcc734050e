"""FC layers as convolutions: same outputs at the training size, maps at larger sizes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from conftest import tiny_config
from convlab.analysis import fully_conv as FC
from convlab.analysis.common import AnalysisError, resolve_model

SMALL = "stages=[{channels: 4}, {channels: 8}]"
HIDDEN = [SMALL, "head={type: flatten, hidden: [16, 8], dropout: 0.2}"]

Cli = Callable[..., tuple[int, str, str]]  # the `cli` fixture of conftest.py




def one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err


def cnn(*overrides: str, shape: tuple[int, int, int] = (1, 12, 12)) -> nn.Module:
    torch.manual_seed(0)
    return resolve_model("cnn", shape, 4, list(overrides)).model.eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny trained CNN with two hidden FC layers and dropout, and a tiny MLP: ~1 s."""
    import convlab

    root = tmp_path_factory.mktemp("fc")
    train = {"epochs": 1, "threads": 1}
    model = {"name": "cnn", "stages": [{"channels": 4}, {"channels": 8}],
             "head": {"hidden": [16], "dropout": 0.2}}
    mlp = {"name": "mlp", "hidden": [16]}
    return {
        "cnn": convlab.run(tiny_config(model=model, train=train), runs_dir=root,
                           quiet=True).path,
        "mlp": convlab.run(tiny_config(name="mlp", model=mlp, train=train), runs_dir=root,
                           quiet=True).path,
    }


# ------------------------------------------------------------------ the conversion


def test_flatten_head_is_identical_at_the_training_size() -> None:
    model = cnn(*HIDDEN)
    fc = FC.make_fully_convolutional(model, (1, 12, 12))
    assert fc.kind == "flatten" and fc.feature_shape == (8, 3, 3)
    convs = [m for m in fc.model.classifier if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(16, 8, 3, 3), (8, 16, 1, 1),
                                                      (4, 8, 1, 1)]
    assert not any(isinstance(m, nn.Linear) for m in fc.model.modules())
    assert sum(isinstance(m, nn.Dropout) for m in fc.model.modules()) == 2  # kept
    x = torch.randn(5, 1, 12, 12)
    with torch.no_grad():
        out = fc.model(x)
        ref = model(x)
    assert out.shape == (5, 4, 1, 1)
    assert float((out[..., 0, 0] - ref).abs().max()) < 1e-5
    diff = FC.max_difference(model, fc, (1, 12, 12))
    assert diff is not None and diff[0] < 1e-5
    assert any(isinstance(m, nn.Linear) for m in model.modules())  # the original is kept


def test_larger_image_gives_a_map_of_windows() -> None:
    """'valid' convolutions are exactly shift-equivariant, so score (i, j) at 2x the size
    is the original model on the training-size window at (4 i, 4 j): 4 = the jump."""
    model = cnn("stages=[{channels: 4, padding: valid}, {channels: 6, padding: valid}]",
                "head={hidden: [10]}", shape=(1, 18, 18))
    fc = FC.make_fully_convolutional(model, (1, 18, 18))
    assert fc.feature_shape == (6, 3, 3)  # 18 -> 16 -> 8 -> 6 -> 3
    big = torch.randn(1, 36, 36, generator=torch.Generator().manual_seed(3))
    scores = FC.score_map(fc, big)  # 36 -> 34 -> 17 -> 15 -> 7; 7 - 3 + 1 = 5
    assert scores.shape == (4, 5, 5) == FC.output_size(fc, (1, 36, 36))
    with torch.no_grad():
        for i, j in ((0, 0), (2, 3), (4, 4)):
            window = big[:, 4 * i : 4 * i + 18, 4 * j : 4 * j + 18]
            torch.testing.assert_close(scores[:, i, j], model(window[None])[0],
                                       rtol=1e-4, atol=1e-5)


def test_larger_image_shape_with_same_padding() -> None:
    fc = FC.make_fully_convolutional(cnn(SMALL), (1, 12, 12))
    assert FC.output_size(fc, (1, 24, 24)) == (4, 4, 4)  # features 6x6, kernel 3x3
    assert FC.output_size(fc, (1, 24, 40)) == (4, 4, 8)
    with pytest.raises(AnalysisError, match="too small"):
        FC.score_map(fc, torch.zeros(1, 8, 8))


def test_gap_head_gives_per_location_scores() -> None:
    model = cnn(SMALL, "head={type: gap}")
    fc = FC.make_fully_convolutional(model, (1, 12, 12))
    assert fc.kind == "gap" and fc.linear_head
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in fc.model.modules())
    assert FC.output_size(fc, (1, 12, 12)) == (4, 3, 3)  # the pooled-away locations
    diff = FC.max_difference(model, fc, (1, 12, 12))
    assert diff is not None and diff[0] < 1e-5  # linear head: mean over locations = logits
    nonlinear = FC.make_fully_convolutional(cnn(SMALL, "head={type: gap, hidden: [8]}"),
                                            (1, 12, 12))
    assert not nonlinear.linear_head
    assert FC.max_difference(model, nonlinear, (1, 12, 12)) is None


def test_resnet_is_handled_as_a_gap_model() -> None:
    torch.manual_seed(0)
    model = resolve_model("resnet18-small", (1, 16, 16), 3).model.eval()
    fc = FC.make_fully_convolutional(model, (1, 16, 16))
    assert fc.kind == "gap" and fc.feature_shape == (512, 2, 2)
    diff = FC.max_difference(model, fc, (1, 16, 16))
    assert diff is not None and diff[1] < 1e-5  # relative to the largest logit
    assert FC.output_size(fc, (1, 32, 32)) == (3, 4, 4)


def test_an_mlp_is_refused() -> None:
    with pytest.raises(AnalysisError, match="no convolutional layer"):
        FC.make_fully_convolutional(resolve_model("mlp", (1, 12, 12), 4).model, (1, 12, 12))


def test_linear_to_conv_reshapes_channel_first() -> None:
    fc = nn.Linear(2 * 3 * 4, 5)
    conv = FC.linear_to_conv(fc, 3, 4)
    x = torch.randn(7, 2, 3, 4)
    torch.testing.assert_close(conv(x)[..., 0, 0], fc(x.flatten(1)))
    with pytest.raises(AnalysisError, match="does not fit"):
        FC.linear_to_conv(fc, 5, 5)


# ------------------------------------------------------------------ the command


def test_convert_a_run(cli: Cli, runs: dict[str, Path]) -> None:
    code, out, err = cli("convert", runs["cnn"], "--fully-convolutional")
    assert code == 0, err
    assert "fc1 -> conv 16x3x3, act1, drop1, fc_out -> conv 4x1x1" in out
    diff = float(out.split("from the original = ")[1].split()[0])
    assert diff < 1e-5
    assert "at 24x24 (random0): output 4 x 4 x 4 (classes x H' x W')" in out
    paths = [Path(line) for line in out.splitlines() if line.startswith("/")]
    assert [p.name for p in paths] == ["scores-24x24-random0.png",
                                       "scores-24x24-random0.safetensors", "model.safetensors"]
    assert all(p.parent == runs["cnn"] / "fully_conv" for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = load_file(str(paths[1]))
    assert saved["scores"].shape == (4, 4, 4) and saved["input"].shape == (1, 24, 24)
    assert "classifier.fc1.weight" in load_file(str(paths[2]))


def test_convert_an_image_file_at_a_chosen_size(cli: Cli, runs: dict[str, Path],
                                                tmp_path: Path) -> None:
    img = tmp_path / "scene.png"
    Image.new("RGB", (50, 40), (10, 200, 90)).save(img)
    code, out, err = cli("convert", runs["cnn"], "--fully-convolutional", "--input", "40x28",
                         "--image", img, "--out", tmp_path / "o")
    assert code == 0, err
    assert "at 40x28 (scene): output 4 x 8 x 5" in out  # features 10x7 -> 8x5
    assert (tmp_path / "o" / "scores-40x28-scene.safetensors").is_file()


def test_convert_errors_are_one_line(cli: Cli, runs: dict[str, Path]) -> None:
    one_line_error(*cli("convert", runs["cnn"])[::2], "--fully-convolutional")
    one_line_error(*cli("convert", runs["mlp"], "--fully-convolutional")[::2],
                   "no convolutional layer")
    one_line_error(*cli("convert", runs["cnn"], "--fully-convolutional", "--input",
                        "8")[::2], "too small")
    one_line_error(*cli("convert", runs["cnn"], "--fully-convolutional", "--input",
                        "big")[::2], "--input 'big'")
