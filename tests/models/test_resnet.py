"""Transfer learning: local "pretrained" weights, head replacement, freezing, per-group
learning rates, the resize path, offline ImageNet weights and bad weight files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import tiny_config
from convlab import run
from convlab.config import load_config
from convlab.errors import ModelError
from convlab.models import build_model


def _fake_pretrained(tmp_path: Path, suffix: str = ".pth", classes: int = 1000) -> Path:
    """A randomly initialised torchvision resnet18 state dict standing in for ImageNet's."""
    from torchvision.models import resnet18

    torch.manual_seed(123)
    sd = resnet18(num_classes=classes).state_dict()
    path = tmp_path / f"fake-imagenet{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path


def _model(**settings: object) -> torch.nn.Module:
    cfg = load_config({"model": {"name": "resnet18", **settings}})
    return build_model(cfg.model, (3, 32, 32), 10)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_load_and_head_is_replaced(tmp_path: Path, suffix: str) -> None:
    path = _fake_pretrained(tmp_path, suffix)
    model = _model(weights=str(path))
    source = torch.load(path, weights_only=True) if suffix == ".pth" else load_file(str(path))
    assert torch.equal(model.conv1.weight, source["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, source["layer4.1.bn2.running_var"])
    assert model.fc.out_features == 10  # the 1000-class ImageNet head was replaced
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_pretrained_model_standardizes_its_input_and_takes_grey(tmp_path: Path) -> None:
    model = _model(weights=str(_fake_pretrained(tmp_path))).eval()
    grey = torch.rand(2, 1, 32, 32)
    assert torch.allclose(model(grey), model(grey.expand(-1, 3, -1, -1)))
    # the ImageNet statistics are buffers outside the state dict (torchvision's keys)
    assert "rgb_mean" not in model.state_dict()
    cfg = load_config({"model": {"name": "resnet18", "weights": str(_fake_pretrained(tmp_path))}})
    from convlab.data.pipeline import effective_normalize
    from convlab.models import normalizes_own_input

    assert normalizes_own_input(cfg.model) and effective_normalize("auto", True) == "none"


def linear_probe_config(weights: Path) -> dict:
    """One epoch of a linear probe of resnet18 (these weights) on tiny RGB images."""
    return tiny_config(
        model={"name": "resnet18", "weights": str(weights), "freeze": "backbone"},
        data={"dataset": "synthetic", "synthetic": {"shape": [3, 32, 32], "classes": 3,
                                                    "train_size": 16, "test_size": 8}},
        train={"epochs": 1, "batch_size": 8, "threads": 2},
    )


def test_freeze_backbone_is_a_linear_probe(tmp_path: Path, runs_dir: Path) -> None:
    weights = _fake_pretrained(tmp_path, ".safetensors")
    cfg = linear_probe_config(weights)
    r = run(cfg, runs_dir=runs_dir)
    after = load_file(r.weights_path)
    before = load_file(str(weights))
    for k, v in before.items():
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked"):
            assert torch.equal(after[k], v), k  # parameters AND BN statistics unchanged
    assert not torch.equal(after["fc.weight"], torch.zeros_like(after["fc.weight"]))


def test_frozen_parameters_are_not_in_the_optimizer() -> None:
    from convlab.train.optim import build_optimizer

    model = _model(freeze="layer2", backbone_lr=1e-4)
    groups = model.param_groups(1e-2)
    names = {g["name"]: g for g in groups}
    assert names["head"]["lr"] == 1e-2 and names["backbone"]["lr"] == 1e-4
    in_opt = {id(p) for g in groups for p in g["params"]}
    assert all(id(p) not in in_opt for p in model.layer2.parameters())
    assert all(id(p) in in_opt for p in model.layer3.parameters())
    opt = build_optimizer(groups, load_config({"optim": {"name": "sgd", "lr": 1e-2}}).optim)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-4]
    model.train()
    assert not model.layer2.training and model.layer3.training


def test_small_stem_variant_keeps_resolution() -> None:
    model = build_model(load_config({"model": "resnet18-small"}).model, (3, 32, 32), 10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    x = torch.rand(1, 3, 32, 32)
    assert model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))).shape[-1] == 32


def test_resize_path_feeds_the_model_the_resized_images(runs_dir: Path) -> None:
    cfg = tiny_config(
        model={"name": "resnet18-small"},
        data={"dataset": "synthetic", "resize": 40, "synthetic": {
            "shape": [1, 16, 16], "classes": 3, "train_size": 8, "test_size": 4}},
        train={"epochs": 1, "batch_size": 4, "threads": 2},
    )
    r = run(cfg, runs_dir=runs_dir)
    assert r.summary["input_shape"] == [1, 40, 40] and r.summary["status"] == "completed"


def test_imagenet_offline_says_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url: str, dst: str, **kw: object) -> None:
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ModelError) as info:
        _model(weights="imagenet")
    msg = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg


def test_imagenet_from_hub_cache(tmp_path: Path, monkeypatch) -> None:
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    src = _fake_pretrained(tmp_path)
    (hub / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(src.read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    model = _model(weights="imagenet")
    assert torch.equal(model.conv1.weight, torch.load(src, weights_only=True)["conv1.weight"])


def test_bad_weight_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="weights file not found"):
        _model(weights=str(tmp_path / "missing.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(ModelError, match="not a readable state dict"):
        _model(weights=str(corrupt))
    from torchvision.models import resnet34

    other = tmp_path / "resnet34.pth"
    torch.save(resnet34().state_dict(), other)
    with pytest.raises(ModelError, match=r"resnet34\.pth: weights do not fit .*unexpected"):
        _model(weights=str(other))
    evil = tmp_path / "evil.pth"

    class Boom:
        def __reduce__(self):  # would run code if unpickled without weights_only
            return (print, ("pwned",))

    torch.save({"conv1.weight": Boom()}, evil)
    with pytest.raises(ModelError, match="not a readable state dict"):
        _model(weights=str(evil))


def test_bad_freeze_value_is_refused_with_the_config() -> None:
    from convlab.errors import ConfigError

    with pytest.raises(ConfigError, match="model: freeze: .*expected none, backbone or one of"):
        load_config({"model": {"name": "resnet18", "freeze": "layer9"}})


def test_a_pretrained_run_reopens_without_its_original_weights(
    tmp_path: Path, runs_dir: Path
) -> None:
    """A run's own weights replace the pretrained ones, so reopening it reads neither the
    hub nor the original file, and keeps the input standardization they implied."""
    weights = _fake_pretrained(tmp_path, ".safetensors")
    cfg = linear_probe_config(weights)
    r = run(cfg, runs_dir=runs_dir)
    weights.unlink()
    model = r.load_model()
    assert getattr(model, "input_norm", False) and hasattr(model, "rgb_mean")
    saved = load_file(r.weights_path)
    assert torch.equal(model.fc.weight, saved["fc.weight"])
