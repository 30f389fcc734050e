"""Receptive fields: the analytic recurrence and the gradient measurement must agree."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlab.analysis.common import AnalysisError, resolve_model
from convlab.analysis.receptive_field import (
    Field,
    compare_fields,
    empirical_field,
    output_field,
    receptive_fields,
    stage_layers,
)
from convlab.models import list_models


@pytest.mark.parametrize("name", list_models())
def test_analytic_equals_empirical_for_every_registered_model(name: str) -> None:
    shape = (3, 32, 32) if name.startswith("resnet") else (1, 28, 28)
    r = resolve_model(name, shape)
    checks = compare_fields(r.model, shape, stage_layers(r.model))
    assert checks, "no layer was compared"
    bad = [(c.layer, c.analytic, c.empirical) for c in checks if not c.agree]
    assert not bad


RESIDUAL_EVEN_DILATED = [
    "stages=[{channels: 4, residual: true, stride: 2, convs: 2},"
    " {channels: 4, kernel: 4, pool: avg},"
    " {channels: 6, dilation: 3, pool: none, batch_norm: true}]",
]


def test_every_leaf_of_a_residual_even_kernel_dilated_cnn_on_a_rectangle() -> None:
    # A residual stage with a strided 1x1 projection, an even kernel (asymmetric ZeroPad2d),
    # dilation, average and max pooling: every leaf, input taller than wide and large
    # enough that the central unit's field fits inside the image (r = 73 at the end:
    # 9 after stage 1 (j 4), 9 + 3*4 + 1*4 = 25 after stage 2 (j 8), 25 + 2*3*8 = 73).
    r = resolve_model("cnn", (2, 100, 90), overrides=RESIDUAL_EVEN_DILATED)
    checks = compare_fields(r.model, (2, 100, 90))  # every leaf with a spatial output
    by_name = {c.layer: c for c in checks}
    assert len(checks) > 20 and by_name["stage3"].field.size == (73, 73)
    assert all(c.exact and not c.clipped for c in checks if c.layer.startswith("stage")), [
        (c.layer, c.analytic, c.empirical) for c in checks if not c.exact]
    assert by_name["head"].clipped and by_name["head"].exact  # the FC sees the whole image


def test_clipped_field_contains_the_measured_one() -> None:
    # On 40x36 the last stage's 5x4 map is smaller than the dilated kernel's reach (taps
    # 3 apart): its outer taps read zero padding, so the gradient support is smaller than
    # the analytic box clipped to the image; it must lie inside it.
    r = resolve_model("cnn", (2, 40, 36), overrides=RESIDUAL_EVEN_DILATED)
    checks = compare_fields(r.model, (2, 40, 36))
    last = next(c for c in checks if c.layer == "stage3")
    assert last.clipped and not last.exact and last.agree
    assert last.empirical == ((9, 33), (9, 33))  # the middle tap's field: stage 2's 25
    assert all(c.agree for c in checks)


def test_pw1_recurrence_by_hand() -> None:
    fields = receptive_fields(resolve_model("pw1").model, (1, 28, 28))
    # r_out = r_in + (k-1)*d*j_in, j_out = j_in*s (Araujo et al. 2019)
    # conv5: 1 + 4*1 = 5 (j 1); pool2: 5 + 1*1 = 6 (j 2); conv5: 6 + 4*2 = 14;
    # pool2: 14 + 1*2 = 16 (j 4); conv5: 16 + 4*4 = 32; pool2: 32 + 1*4 = 36 (j 8)
    expected = {
        "stage1.body.conv1": (5, 1), "stage1": (6, 2), "stage2.body.conv1": (14, 2),
        "stage2": (16, 4), "stage3.body.conv1": (32, 4), "stage3": (36, 8),
    }
    for name, (r, j) in expected.items():
        f = fields[name]
        assert f is not None and f.size == (r, r) and f.jump == (j, j), name
    # conv5 with padding 2 keeps unit 0 centred on pixel 0: start = 0 + (4/2 - 2)*1 = 0;
    # pool 2x2 centres it at 0.5: start = 0 + (1/2 - 0)*1
    assert fields["stage1.body.conv1"].start == (0.0, 0.0)
    assert fields["stage1"].start == (0.5, 0.5)


def test_dilated_cnn_sees_31_pixels() -> None:
    f = receptive_fields(resolve_model("dilated-cnn").model, (1, 28, 28))["stage4"]
    # 3x3 convs with d = 1, 2, 4, 8 at j = 1: 1 + 2*1 + 2*2 + 2*4 + 2*8 = 31
    assert f is not None and f.size == (31, 31) and f.jump == (1, 1)


def test_box_and_clipping() -> None:
    # a 2x2 kernel, no padding: unit 0 sees pixels 0..1, its centre at 0.5
    f = output_field(nn.Conv2d(1, 1, 2), (1, 6, 6))
    assert f == Field((2, 2), (1, 1), (0.5, 0.5), (5, 5))
    assert f.box(0, 0) == ((0, 1), (0, 1)) and f.box(4, 2) == ((4, 5), (2, 3))
    # a 5x5 conv padded by 2: unit (0, 0) reaches 2 pixels into the padding on each side
    g = output_field(nn.Conv2d(1, 1, 5, padding=2), (1, 6, 6))
    assert g is not None
    assert g.box(0, 0) == ((-2, 2), (-2, 2))
    assert g.clipped_box(0, 0, (6, 6)) == ((0, 2), (0, 2))
    emp = empirical_field(nn.Sequential(nn.Conv2d(1, 1, 5, padding=2)), (1, 6, 6), "0", (0, 0))
    assert (emp.rows, emp.cols) == ((0, 2), (0, 2))


class Branches(nn.Module):
    """Functional code: two branches concatenated, slicing, F.max_pool2d, F.pad."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(1, 2, 5, padding=2)
        self.c = nn.Conv2d(4, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.a(x), self.b(x)], dim=1)  # union: r = 5
        y = F.max_pool2d(y, 2)  # 5 + 1 = 6, j 2
        y = y[..., ::2, ::2]  # subsample: j 4, r unchanged
        y = F.pad(y, (1, 1, 1, 1))
        return self.c(y)  # 6 + 2*4 = 14


def test_functional_ops_are_tracked() -> None:
    model = Branches()
    fields = receptive_fields(model, (1, 32, 32))
    f = fields["c"]
    assert f is not None and f.size == (14, 14) and f.jump == (4, 4)
    checks = compare_fields(model, (1, 32, 32), ["c"])
    assert checks[0].agree, (checks[0].analytic, checks[0].empirical)


def test_unknown_resizing_op_gives_unknown_field() -> None:
    class Up(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(F.interpolate(x, scale_factor=2))

    assert receptive_fields(Up(), (1, 8, 8))["conv"] is None  # unknown, not wrong


def test_unknown_layer_name() -> None:
    with pytest.raises(AnalysisError, match="unknown layer 'nope'"):
        empirical_field(resolve_model("lenet5").model, (1, 28, 28), "nope")
