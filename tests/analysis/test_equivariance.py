"""The equivariance experiment on images, its figures, and loading trained weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from convlab.analysis.common import AnalysisError, load_weights, resolve_model
from convlab.analysis.equivariance import (
    EquivarianceResult,
    Transform,
    equivariance_experiment,
    save_figures,
    synthetic_image,
)


def tiny(kernel: torch.Tensor | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    if kernel is not None:
        with torch.no_grad():
            model[0].weight.copy_(kernel.expand(2, 1, 3, 3))
    return model


def errors(result: EquivarianceResult) -> dict[str, tuple[float | None, float | None]]:
    return {r.layer: (r.error, r.interior) for r in result.layers}


def test_shift_by_a_multiple_of_the_stride_is_undone_exactly() -> None:
    x = synthetic_image((1, 16, 16))[None]
    res = equivariance_experiment(tiny(), x, Transform("shift", 2))
    e = errors(res)
    assert list(e) == ["0", "1", "2"]
    # conv and ReLU (jump 1): shifted back by 2; pool (jump 2): by 1 -- exact away from
    # the border, where zero padding meets the wrapped-around pixels
    assert all(interior is not None and interior < 1e-12 for _, interior in e.values())
    assert [r.jump for r in res.layers] == [1, 1, 2]
    assert res.layers[2].note == "back by 1"


def test_shift_by_one_breaks_the_pooling_layer_only() -> None:
    x = synthetic_image((1, 16, 16))[None]
    e = errors(equivariance_experiment(tiny(), x, Transform("shift", 1)))
    assert e["0"][1] < 1e-12 and e["1"][1] < 1e-12
    assert e["2"][1] > 0.05  # 1 pixel is half a pooling cell: no whole-unit shift undoes it


def test_rotation_needs_a_symmetric_kernel() -> None:
    x = synthetic_image((1, 16, 16))[None]
    box = torch.ones(3, 3) / 9  # invariant under rot90
    sym = errors(equivariance_experiment(tiny(box), x, Transform("rotate", 90)))
    assert all(err < 1e-12 for err, _ in sym.values())  # 16 is even: pool cells map onto cells
    generic = errors(equivariance_experiment(tiny(), x, Transform("rotate", 90)))
    assert generic["0"][0] > 0.1
    # a free angle: bilinear resampling, compared inside a central disk
    free = equivariance_experiment(tiny(box), x, Transform("rotate", 30))
    assert free.layers[0].interior is not None and free.layers[0].interior < 0.5
    assert Transform("rotate", 30).describe() == "rotation by 30 degrees (bilinear, zeros " \
                                                 "outside)"


def test_figures_and_table(tmp_path: Path) -> None:
    x = synthetic_image((3, 12, 12))[None]
    model = resolve_model("cnn", (3, 12, 12)).model
    res = equivariance_experiment(model, x, Transform("shift", 2, "zero"), layers=3)
    paths = save_figures(res, tmp_path / "figs", channels=2)
    names = sorted(p.name for p in paths)
    assert names == ["01_stage1.body.conv1.png", "02_stage1.body.act1.png",
                     "03_stage1.post.pool.png", "errors.csv", "input.png"]
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "figs" / "errors.csv").read_text().splitlines()
    assert lines[0] == "layer,shape,jump,rf,rel_error,rel_error_interior,note"
    assert lines[1].startswith("stage1.body.conv1,32x12x12,1,3,")  # cnn: 32 channels
    assert not list((tmp_path / "figs").glob(".*"))  # no temporary files left behind


def test_synthetic_image_is_deterministic_and_asymmetric() -> None:
    img = synthetic_image((1, 20, 20))
    assert torch.equal(img, synthetic_image((1, 20, 20)))
    assert img.min() == 0 and img.max() == 1
    assert not torch.equal(img, torch.rot90(img, 1, (1, 2)))


def test_load_weights(tmp_path: Path) -> None:
    a, b = tiny(), tiny(torch.ones(3, 3))
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in a.state_dict().items()}, str(path))
    load_weights(b, path)
    assert torch.equal(a[0].weight, b[0].weight)
    with pytest.raises(AnalysisError, match="does not fit this model"):
        load_weights(nn.Sequential(nn.Identity(), nn.Linear(2, 2)), path)
    with pytest.raises(AnalysisError, match=r"0.weight has shape \(2, 1, 3, 3\)"):
        load_weights(nn.Sequential(nn.Linear(2, 2)), path)
    with pytest.raises(AnalysisError, match="file not found"):
        load_weights(b, tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(AnalysisError, match="not a safetensors file"):
        load_weights(b, bad)
