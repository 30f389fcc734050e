"""Parameter-budget matching along one free dimension, checked against counts by hand."""

from __future__ import annotations

import pytest

from convlab.analysis.budget import apply_vary, count_params, match_params
from convlab.analysis.common import resolve_model
from convlab.models.budget import BudgetError as AnalysisError

MNIST = (1, 28, 28)
# mlp-256x2: 784*256 + 256 + 256*256 + 256 + 256*10 + 10
TARGET = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10


def test_target_by_hand() -> None:
    assert TARGET == 269_322
    r = resolve_model("mlp-256x2")
    assert count_params(r.model_name, r.settings, MNIST, 10) == TARGET


def test_width_of_a_two_hidden_layer_mlp() -> None:
    best, *rest = match_params({"name": "mlp", "hidden": [100, 100]}, "hidden_width",
                               TARGET, MNIST, 10)
    assert (best.value, best.params, best.diff) == (256, 269_322, 0)
    # width 255: 784*255 + 255 + 255*255 + 255 + 255*10 + 10 = 268,015
    near = {c.value: c.params for c in rest}
    assert near[255] == 268_015 and near[257] == 270_631


def test_depth_of_a_deep_narrow_mlp() -> None:
    # width 64, D hidden layers: 784*64+64 + (D-1)*(64*64+64) + 64*10+10
    #   = 50,240 + (D-1)*4,160 + 650
    # D = 53: 267,210 (-2,112); D = 54: 271,370 (+2,048): 54 is closer
    cands = match_params({"name": "mlp", "hidden": [64]}, "depth", TARGET, MNIST, 10)
    assert cands[0].value == 54 and cands[0].params == 50_240 + 53 * 4_160 + 650
    assert cands[0].diff == 2_048 and round(cands[0].rel_diff, 5) == round(2_048 / TARGET, 5)
    assert cands[1].value == 53 and cands[1].diff == -2_112


def test_cnn_kernel_is_enumerated() -> None:
    # pw1 on 3x32x32: conv 3*32*25+32 = 2,432; 32*64*25+64 = 51,264; 64*64*25+64 = 102,464;
    # fc 64*4*4*1000+1000 = 1,025,000; 1000*10+10 = 10,010; total 1,191,170 with k = 5
    cands = match_params({"name": "pw1"}, "stages.0.kernel", 1_191_170, (3, 32, 32), 10,
                         candidates=range(1, 10))
    assert cands[0].value == 5 and cands[0].diff == 0


def test_channels_of_all_stages_scale_together() -> None:
    s = apply_vary("pw1", resolve_model("pw1").settings, "stages.*.channels", 16)
    assert [st["channels"] for st in s["stages"]] == [16, 32, 32]  # 32:64:64 kept
    best = match_params({"name": "pw1"}, "stages.*.channels", TARGET, MNIST, 10)[0]
    assert abs(best.rel_diff) < 0.01


def test_cnn_depth_repeats_the_last_stage() -> None:
    s = apply_vary("cnn", resolve_model("cnn").settings, "depth", 3)
    assert [st["channels"] for st in s["stages"]] == [32, 64, 64]
    # 28 -> 14 -> 7 -> 3 -> 1 -> (a fifth pool cannot run): too deep builds are skipped
    cands = match_params({"name": "cnn"}, "depth", 100_000, MNIST, 10)
    assert max(c.value for c in cands) == 4


@pytest.mark.parametrize(("base", "vary", "message"), [
    ({"name": "mlp"}, "nope", "no setting 'nope'"),
    ({"name": "mlp"}, "activation", "not an integer"),
    ({"name": "cnn"}, "hidden_width", "needs an MLP"),
    ({"name": "cnn"}, "stages.5.kernel", "has 2 items"),
])
def test_bad_keys(base: dict, vary: str, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        match_params(base, vary, 1000, MNIST, 10, candidates=range(1, 4))
