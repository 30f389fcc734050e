"""Figures of a trained run: Grad-CAM, confusion matrix, confident errors, the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from conftest import tiny_config
from convlab.analysis import viz as V
from convlab.analysis.common import AnalysisError

Cli = Callable[..., tuple[int, str, str]]  # the `cli` fixture of conftest.py





def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert all(n in err for n in needles), err


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained CNN (flatten head), gradient norms tracked: ~1 s."""
    import convlab

    cfg = tiny_config(train={"epochs": 1, "threads": 1, "track_grad_norms": 2},
                      optim={"name": "adam", "lr": 0.003})
    return convlab.run(cfg, runs_dir=tmp_path_factory.mktemp("viz"), quiet=True).path


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny resnet18-small on 3x12x12 images, no gradient norms: ~2 s."""
    import convlab

    cfg = tiny_config(
        name="res", model={"name": "resnet18-small"},
        data={"synthetic": {"shape": [3, 12, 12], "classes": 4, "train_size": 32,
                            "test_size": 16}},
        train={"epochs": 1, "threads": 1, "batch_size": 32},
    )
    return convlab.run(cfg, runs_dir=tmp_path_factory.mktemp("vizres"), quiet=True).path


# ------------------------------------------------------------------ Grad-CAM


class TwoRegions(nn.Module):
    """Class 0 sees only the top-left quarter of the image, class 1 only the bottom-right:
    the input is masked into two channels, then a fixed box blur, ReLU, global average
    pooling and an identity classifier."""

    def __init__(self, size: int = 16) -> None:
        super().__init__()
        h = size // 2
        mask = torch.zeros(2, size, size)
        mask[0, :h, :h] = 1  # region R: class 0
        mask[1, h:, h:] = 1  # region S: class 1
        self.register_buffer("mask", mask)
        self.conv = nn.Conv2d(2, 2, 3, padding=1, groups=2, bias=False)
        self.act = nn.ReLU()
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 9)
            self.fc.weight.copy_(torch.eye(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) -> (B, 2)
        a = self.act(self.conv(x * self.mask))  # (B, 2, H, W)
        return self.fc(a.mean((2, 3)))


def test_grad_cam_concentrates_where_the_class_score_comes_from() -> None:
    model = TwoRegions(16).eval()
    x = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0)) + 0.5
    for cls, (rows, cols) in ((0, (slice(0, 8), slice(0, 8))),
                              (1, (slice(8, 16), slice(8, 16)))):
        cam = V.grad_cam(model, x, cls, "act")
        assert cam.heat.shape == (16, 16) and cam.target == cls
        assert bool((cam.heat >= 0).all()) and float(cam.heat.max()) == pytest.approx(1.0)
        inside = float(cam.heat[rows, cols].sum()) / float(cam.heat.sum())
        assert inside > 0.9, (cls, inside)  # the blur lets a 1-pixel rim leak out


def test_grad_cam_defaults_to_the_predicted_class_and_the_last_conv_layer() -> None:
    model = TwoRegions(16).eval()
    x = torch.zeros(1, 16, 16)
    x[:, 8:, 8:] = 1.0  # only class 1's region is lit: it wins
    cam = V.grad_cam(model, x)
    assert cam.target == 1 and cam.layer == "act"
    assert cam.probs.sum().item() == pytest.approx(1.0)


def test_grad_cam_equals_cam_for_a_gap_linear_head() -> None:
    """With global average pooling and a linear classifier, alpha_k = w_ck / (h w), so
    Grad-CAM is the class activation map of Zhou et al. (2016) divided by h w."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    x = torch.randn(1, 10, 10)
    cam = V.grad_cam(model, x, 2, "1")
    with torch.no_grad():
        a = model[1](model[0](x[None]))[0]  # (6, 10, 10)
        expected = torch.relu(torch.einsum("k,khw->hw", model[4].weight[2], a)) / 100
    torch.testing.assert_close(cam.cam, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(cam.weights, model[4].weight[2].detach() / 100)


def test_grad_cam_refuses_a_vector_layer_and_a_bad_class() -> None:
    model = TwoRegions(8).eval()
    with pytest.raises(AnalysisError, match="feature maps"):
        V.grad_cam(model, torch.rand(1, 8, 8), 0, "fc")
    with pytest.raises(AnalysisError, match="expected 0..1"):
        V.grad_cam(model, torch.rand(1, 8, 8), 5, "act")


# ------------------------------------------------------------------ predictions


def test_confusion_matrix_counts_pairs() -> None:
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 5, (200,), generator=g)
    preds = torch.randint(0, 5, (200,), generator=g)
    cm = V.confusion_matrix(labels, preds, 5)
    assert cm.shape == (5, 5) and int(cm.sum()) == 200
    for t in range(5):
        for p in range(5):
            assert int(cm[t, p]) == sum(1 for a, b in zip(labels, preds, strict=True)
                                        if a == t and b == p)


def test_confident_errors_picks_the_surest_wrong_ones_first() -> None:
    probs = torch.tensor([
        [0.98, 0.01, 0.01],  # right, very confident: never an error
        [0.10, 0.85, 0.05],  # wrong, 0.85
        [0.40, 0.35, 0.25],  # wrong, 0.40
        [0.05, 0.05, 0.90],  # wrong, 0.90
        [0.20, 0.70, 0.10],  # right
        [0.30, 0.10, 0.60],  # wrong, 0.60
    ])
    labels = torch.tensor([0, 0, 2, 1, 1, 1])
    assert V.confident_errors(probs, labels, 3).tolist() == [3, 1, 5]
    assert V.confident_errors(probs, labels, 10).tolist() == [3, 1, 5, 2]
    assert V.confident_errors(probs, probs.argmax(1), 5).tolist() == []


# ------------------------------------------------------------------ layers and filters


def test_feature_layers_of_the_builders() -> None:
    from convlab.analysis.common import resolve_model

    cnn = resolve_model("cnn", (1, 12, 12), 4).model
    assert V.feature_layer(cnn, "first") == "stage1.body.act1"
    assert V.feature_layer(cnn, "last") == "stage2.body.act1"
    res = resolve_model("cnn", (1, 12, 12), 4,
                        ["stages=[{channels: 4, residual: true}]"]).model
    assert V.feature_layer(res, "last") == "stage1.out_act"  # after the add, before pooling
    resnet = resolve_model("resnet18", (3, 32, 32), 4).model
    assert V.feature_layer(resnet, "last") == "layer4"
    assert V.feature_layer(resnet, "first") == "relu"
    assert V.first_conv(resnet)[0] == "conv1"
    with pytest.raises(AnalysisError, match="no convolutional layer"):
        V.feature_layer(resolve_model("mlp", (1, 12, 12), 4).model)


def test_unknown_layers_get_the_closest_names_or_the_list() -> None:
    from convlab.analysis.common import resolve_model

    cnn = resolve_model("cnn", (1, 12, 12), 4).model
    with pytest.raises(AnalysisError, match=r"closest: stage2\.body\.act1"):
        V.check_layer(cnn, "stage2.body.act")
    with pytest.raises(AnalysisError, match=r"layers: stage1\.body\.conv1, .*head\.fc_out"):
        V.check_layer(cnn, "zzz")


def test_filter_images_are_scaled_per_filter() -> None:
    w = torch.randn(8, 3, 5, 5)
    rgb = V.filter_images(w)
    assert rgb.shape == (8, 5, 5, 3) and float(rgb.min()) == 0.0 and float(rgb.max()) == 1.0
    grey = V.filter_images(torch.randn(4, 1, 3, 3))
    assert grey.shape == (4, 3, 3)
    assert all(float(f.max()) == 1.0 and float(f.min()) == 0.0 for f in grey)


# ------------------------------------------------------------------ a trained run


def test_default_figures_land_in_the_run_folder(cli: Cli, cnn_run: Path) -> None:
    code, out, err = cli("viz", cnn_run)
    assert code == 0, err
    paths = [Path(p) for p in out.split()]
    assert [p.name for p in paths] == ["filters.png", "confusion.png", "errors.png"]
    for p in paths:
        assert p.parent == cnn_run / "figures"
        assert_png(p)


def test_every_figure_with_all(cli: Cli, cnn_run: Path, tmp_path: Path) -> None:
    code, out, err = cli("viz", cnn_run, "--all", "--index", "3", "--out", tmp_path)
    assert code == 0, err
    names = sorted(Path(p).name for p in out.split())
    assert names == sorted([
        "filters.png", "activations-stage1.body.act1-test3.png",
        "overlay-stage2.body.act1-test3.png", "confusion.png", "errors.png",
        "grad_norms.png", next(n for n in names if n.startswith("gradcam-")),
    ])
    for p in out.split():
        assert_png(Path(p))


def test_confusion_matrix_of_the_run_matches_independent_predictions(cnn_run: Path) -> None:
    """Predictions through the viz pipeline equal ones computed by hand from the saved
    weights and normalizer, and their accuracy is the one the run recorded."""
    from safetensors.torch import load_file

    import convlab

    ctx = V.open_run(cnn_run)
    probs = V.predict_test(ctx)
    cm = V.confusion_matrix(ctx.test.labels, probs.argmax(1), ctx.num_classes)
    assert int(cm.sum()) == len(ctx.test) == 64

    run = convlab.load_run(cnn_run)
    model = run.load_model()
    norm = load_file(str(cnn_run / "normalizer.safetensors"))  # channel: mean, std
    x = (ctx.test.images.float() / 255 - norm["mean"].view(1, -1, 1, 1)) \
        / norm["std"].view(1, -1, 1, 1)
    with torch.no_grad():
        preds = model(x).argmax(1)
    by_hand = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(ctx.test.labels.tolist(), preds.tolist(), strict=True):
        by_hand[t, p] += 1
    assert torch.equal(cm, by_hand)
    assert float(cm.diag().sum()) / 64 == pytest.approx(run.summary["final"]["test.top1"])


def test_image_file_and_a_vector_layer(cli: Cli, cnn_run: Path, tmp_path: Path) -> None:
    img = tmp_path / "photo.png"
    Image.new("RGB", (30, 20), (200, 30, 30)).save(img)  # colour, wrong size: converted
    code, out, err = cli("viz", cnn_run, "--image", img, "--layer", "head.fc_out",
                         "--gradcam", "--class", "class_2", "--out", tmp_path / "f")
    assert code == 0, err
    names = [Path(p).name for p in out.split()]
    assert names == ["activations-head.fc_out-photo.png", "gradcam-class_2-photo.png"]
    for p in out.split():
        assert_png(Path(p))


def test_resnet_runs(cli: Cli, resnet_run: Path, tmp_path: Path) -> None:
    code, out, err = cli("viz", resnet_run, "--all", "--out", tmp_path)
    assert code == 0, err
    assert "skipped grad-norms" in err and "track_grad_norms" in err
    names = {Path(p).name for p in out.split()}
    assert {"filters.png", "overlay-layer4-test0.png", "activations-relu-test0.png",
            "confusion.png", "errors.png"} <= names
    code, out, err = cli("viz", resnet_run, "--layer", "layer4", "--gradcam",
                         "--cam-layer", "layer3", "--out", tmp_path)
    assert code == 0, err
    for p in out.split():
        assert_png(Path(p))


def test_error_paths_are_one_line(cli: Cli, cnn_run: Path, resnet_run: Path,
                                  tmp_path: Path) -> None:
    one_line_error(*cli("viz", cnn_run, "--layer", "stage2.body.actt")[::2],
                   "closest: stage2.body.act1")
    one_line_error(*cli("viz", resnet_run, "--layer", "nope")[::2], "layers: conv1")
    one_line_error(*cli("viz", resnet_run, "--grad-norms")[::2], "train.track_grad_norms")
    one_line_error(*cli("viz", cnn_run, "--activations", "--index", "64")[::2], "0..63")
    one_line_error(*cli("viz", cnn_run, "--class", "dog")[::2], "class_0")
    one_line_error(*cli("viz", cnn_run, "--image", tmp_path / "none.png",
                        "--activations")[::2], "none.png")
    one_line_error(*cli("viz", tmp_path)[::2], "not a run folder")
