"""summarize(): per-layer shapes, parameters, receptive fields and MACs, checked by hand."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from rich.console import Console
from torch import nn

from convlab.analysis.common import AnalysisError, resolve_model
from convlab.analysis.summary import (
    COLUMNS,
    LayerRow,
    ModelSummary,
    render_csv,
    render_json,
    render_markdown,
    render_table,
    summarize,
)
from convlab.models import list_models


def rows_by_name(s: ModelSummary) -> dict[str, LayerRow]:
    return {r.name: r for r in s.rows}


def test_lenet5_every_number_by_hand() -> None:
    r = resolve_model("lenet5")  # 1x28x28, 10 classes
    s = summarize(r.model, r.in_shape)
    rows = rows_by_name(s)
    c1 = rows["stage1.body.conv1"]
    # 6 filters of 1x5x5: 6*1*5*5 = 150 weights, 6 biases; padding 2 keeps 28:
    # 28 + 2*2 - 5 = 27, 27 // 1 + 1 = 28
    assert (c1.weights, c1.biases, c1.params, c1.out_shape) == (150, 6, 156, (6, 28, 28))
    assert c1.macs == 6 * 28 * 28 * 25 == 117_600  # each output: 1*5*5 MACs
    assert c1.rf == (5, 5) and c1.jump == (1, 1)
    # an FC layer from 1*28*28 = 784 inputs to 6*28*28 = 4704 outputs: 784*4704 + 4704
    assert (c1.fc_weights, c1.fc_biases) == (784 * 4704, 4704)
    assert c1.fc_params == 784 * 4704 + 4704 == 3_692_640
    p1 = rows["stage1.post.pool"]
    # r = 5 + (2-1)*1 = 6, j = 1*2 = 2; 28 / 2 = 14
    assert (p1.out_shape, p1.rf, p1.jump, p1.params) == ((6, 14, 14), (6, 6), (2, 2), 0)
    c2 = rows["stage2.body.conv1"]
    # valid padding: 14 - 5 + 1 = 10; 16*6*5*5 = 2400 weights; r = 6 + 4*2 = 14
    assert (c2.out_shape, c2.weights, c2.biases, c2.rf) == ((16, 10, 10), 2400, 16, (14, 14))
    assert c2.macs == 16 * 10 * 10 * 6 * 25 == 240_000
    p2 = rows["stage2.post.pool"]
    assert (p2.out_shape, p2.rf, p2.jump) == ((16, 5, 5), (16, 16), (4, 4))  # 14 + 1*2
    assert rows["head.flatten"].out_shape == (400,)  # 16*5*5
    assert rows["head.fc1"].params == 400 * 120 + 120 == 48_120
    assert rows["head.fc2"].params == 120 * 84 + 84 == 10_164
    assert rows["head.fc_out"].params == 84 * 10 + 10 == 850
    # a linear layer sees the whole 5x5 map: r = 16 + (5-1)*4 = 32 (beyond the 28 pixels)
    assert rows["head.fc1"].rf == (32, 32)
    assert s.params == 156 + 2416 + 48_120 + 10_164 + 850 == 61_706
    assert (s.trainable, s.frozen) == (61_706, 0)
    assert s.macs == 117_600 + 240_000 + 48_000 + 10_080 + 840 == 416_520
    assert rows["stage1.body.act1"].macs == 0 and rows["stage1.body.act1"].params == 0


def test_frozen_parameters_and_a_module_called_twice() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)  # 2*2*3*3 + 2 = 38
            self.fc = nn.Linear(2 * 4 * 4, 3)  # 32*3 + 3 = 99
            self.fc.weight.requires_grad_(False)  # 96 frozen

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(self.conv(x)).flatten(1))

    s = summarize(Twice(), (2, 4, 4))
    assert [r.name for r in s.rows] == ["conv", "conv", "fc"]
    assert [r.params for r in s.rows] == [38, 0, 99]  # the second call is not counted again
    assert s.rows[1].shared and not s.rows[0].shared
    # two 3x3 convs in a row: r = 1 + 2 + 2 = 5
    assert s.rows[1].rf == (5, 5)
    assert (s.params, s.trainable, s.frozen) == (137, 41, 96)
    # MACs count both calls: 2 * (2*4*4 outputs * 2*3*3) + 3*32
    assert s.macs == 2 * (32 * 18) + 96


def test_torchvision_resnet18_counts_and_receptive_field() -> None:
    from torchvision.models import resnet18

    s = summarize(resnet18(), (3, 64, 64))
    assert s.params == 11_689_512  # torchvision's documented count
    rows = rows_by_name(s)
    # conv1 7x7/2: r = 7, j = 2; maxpool 3x3/2: 7 + 2*2 = 11, j = 4
    assert rows["maxpool"].rf == (11, 11) and rows["maxpool"].jump == (4, 4)
    # layer1: four 3x3 convs at j = 4: 11 + 4*2*4 = 43
    assert rows["layer1.1.relu"].rf == (43, 43)
    # layer2: 3x3/2 then three 3x3 at j = 8: 43 + 2*4 + 3*2*8 = 99; layer3: 99 + 2*8 +
    # 3*2*16 = 211; layer4: 211 + 2*16 + 3*2*32 = 435 (the residual branch is smaller)
    assert rows["layer2.1.relu"].rf == (99, 99)
    assert rows["layer3.1.relu"].rf == (211, 211)
    assert rows["layer4.1.relu"].rf == (435, 435) and rows["layer4.1.relu"].jump == (32, 32)
    assert rows["fc"].params == 512 * 1000 + 1000


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_summarizes_and_totals_match(name: str) -> None:
    shape = (3, 32, 32) if name.startswith("resnet") else (1, 28, 28)
    r = resolve_model(name, shape)
    s = summarize(r.model, shape)
    assert s.params == sum(p.numel() for p in r.model.parameters())
    assert sum(row.params for row in s.rows) == s.params
    assert all(row.rf is not None for row in s.rows)  # every layer's field is understood
    assert s.rows[-1].out_shape == (10,)


def test_renderers() -> None:
    r = resolve_model("mlp-256x2")
    s = summarize(r.model, r.in_shape, r.label)
    md = render_markdown(s)
    assert md.splitlines()[2].startswith("| name | type | output |")
    assert "| fc1 | Linear | 256 | 200,704 | 256 | 200,960 |" in md  # 784*256 = 200,704
    rows = list(csv.DictReader(io.StringIO(render_csv(s))))
    assert [row["name"] for row in rows] == ["flatten", "fc1", "act1", "fc2", "act2", "fc_out"]
    assert sum(int(row["params"]) for row in rows) == 269_322
    data = json.loads(render_json(s))
    # 784*256+256 + 256*256+256 + 256*10+10
    assert data["totals"]["params"] == 269_322 == 200_960 + 65_792 + 2_570
    console = Console(record=True, width=200)
    console.print(render_table(s))
    assert "269,322" in console.export_text()


def test_unknown_model_and_bad_shape() -> None:
    with pytest.raises(AnalysisError, match="neither a registered model"):
        resolve_model("nope")
    from convlab.analysis.common import parse_shape

    with pytest.raises(AnalysisError, match="CxHxW"):
        parse_shape("28x28")


def test_fc_equivalent_of_a_conv_without_bias_has_no_biases() -> None:
    """x*y*z * x'*y'*z' weights can be read off directly; no biases after bias=False."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Conv2d(4, 2, 3))
    rows = summarize(model, (3, 8, 8)).rows
    assert (rows[0].fc_weights, rows[0].fc_biases) == (3 * 8 * 8 * 4 * 6 * 6, 0)
    assert (rows[1].fc_weights, rows[1].fc_biases) == (4 * 6 * 6 * 2 * 4 * 4, 2 * 4 * 4)
    assert render_csv(summarize(model, (3, 8, 8))).splitlines()[0].endswith(
        "fc_weights,fc_biases")


def test_table_fits_80_columns_dropping_whole_columns() -> None:
    from convlab.analysis.summary import table_columns

    r = resolve_model("lenet5")
    s = summarize(r.model, r.in_shape, "model lenet5")
    cols = table_columns(s, 80)
    assert cols[:3] == ["name", "type", "output"] and "params" in cols and "macs" in cols
    assert "fc_weights" not in cols and table_columns(s, None) == list(COLUMNS)
    console = Console(record=True, width=80)
    console.print(render_table(s, 80))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "stage2.body.conv1" in text and "240,000" in text and "…" not in text
    assert "MACs per image 416,520" in text and "not shown at this width: weights" in text
