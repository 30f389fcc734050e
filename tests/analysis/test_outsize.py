"""Output-size arithmetic: one layer, chains, 'same' padding, the inverse problem."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from convlab.analysis.common import AnalysisError, parse_hw
from convlab.analysis.outsize import (
    LayerSpec,
    out_size,
    parse_chain,
    parse_layer,
    run_chain,
    same_padding,
    solve,
)


def test_one_layer_by_hand() -> None:
    assert out_size(28, 5, 1, 2) == 28  # 28 + 2*2 - 5 = 27, 27 // 1 + 1 = 28
    assert out_size(28, 5) == 24  # 28 - 5 = 23, 23 // 1 + 1 = 24
    assert out_size(32, 3, 2, 1) == 16  # 32 + 2 - 3 = 31, 31 // 2 + 1 = 16
    assert out_size(14, 3, 1, 0, 2) == 10  # span 2*(3-1)+1 = 5: 14 - 5 = 9, 9 + 1 = 10
    assert out_size(7, 2, 2) == 3  # 7 - 2 = 5, 5 // 2 + 1 = 3 (the floor drops a row)
    with pytest.raises(AnalysisError, match="spans 7 pixels"):
        out_size(5, 4, dilation=2)  # span 2*3+1 = 7 > 5


def test_matches_pytorch_on_a_grid() -> None:
    for n, k, s, p, d in itertools.product((7, 8, 13), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2),
                                           (1, 2)):
        if d * (k - 1) + 1 > n + 2 * p:
            continue
        got = nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, n, n)).shape[-1]
        assert out_size(n, k, s, p, d) == got, (n, k, s, p, d)


def test_same_padding_odd_even_and_strided() -> None:
    assert same_padding(28, 3) == (1, 1)  # total d(k-1) = 2
    assert same_padding(28, 5, dilation=2) == (4, 4)  # total 2*4 = 8
    assert same_padding(28, 4) == (1, 2)  # total 3: the odd pixel goes after
    # stride 2: ceil(28/2) = 14 outputs need (14-1)*2 + 3 - 28 = 1 pixel of padding
    assert same_padding(28, 3, 2) == (0, 1)
    chain = run_chain((28, 28), parse_chain("conv k4 psame"))
    assert chain.out_hw == (28, 28) and chain.steps[0].pad == ((1, 2), (1, 2))
    assert "asymmetric padding (1 before, 2 after on rows and columns)" in chain.notes[0]


def test_a_chain_with_a_warning_and_receptive_fields() -> None:
    result = run_chain((27, 27), parse_chain("conv k5; pool k2 s2; conv k3 d2"))
    # conv5: 27 - 5 + 1 = 23; pool: (23 - 2) // 2 + 1 = 11, 21 / 2 = 10.5 drops 1 row;
    # conv3 d2: span 5, 11 - 5 + 1 = 7
    assert [s.out_hw for s in result.steps] == [(23, 23), (11, 11), (7, 7)]
    assert result.steps[1].discarded == (1, 1)
    assert len(result.warnings) == 1
    assert "layer 2 (pool k2 s2)" in result.warnings[0]
    assert "(23 - 2) / 2 = 10.5 is not an integer" in result.warnings[0]
    assert "drops the last 1 of 23 padded rows and columns" in result.warnings[0]
    # receptive field: 5; 5 + 1*1 = 6 (j 2); 6 + 2*2*2 = 14
    assert [s.field.size[0] for s in result.steps] == [5, 6, 14]
    assert [s.field.jump[0] for s in result.steps] == [1, 2, 2]


def test_rectangular_input_and_kernel() -> None:
    result = run_chain((28, 32), parse_chain("conv k3x5 p1x2; avgpool k2; pad p1"))
    # rows: 28 + 2 - 3 + 1 = 28, columns: 32 + 4 - 5 + 1 = 32; pool: 14x16; pad: 16x18
    assert [s.out_hw for s in result.steps] == [(28, 32), (14, 16), (16, 18)]
    assert not result.warnings
    assert parse_hw("28x32") == (28, 32) and parse_hw("28") == (28, 28)


def test_impossible_layer_is_named() -> None:
    with pytest.raises(AnalysisError, match=r"layer 3 \(conv k3\): the kernel spans 3 rows"):
        run_chain((6, 6), parse_chain("conv k3; conv k3; conv k3"))  # 6 -> 4 -> 2 -> ?
    with pytest.raises(AnalysisError, match="more than half the kernel"):
        run_chain((8, 8), parse_chain("pool k2 p2"))


@pytest.mark.parametrize(("text", "message"), [
    ("blub k3", "unknown kind 'blub'"),
    ("conv k3 x5", "cannot read 'x5'"),
    ("pool s2", "needs a kernel size"),
    ("conv k0", "must be >= 1"),
    ("conv ksame", "only the padding"),
    ("pad", "needs an amount"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        parse_layer(text)


def test_parse_defaults() -> None:
    assert parse_layer("pool k3").strides == (3, 3)  # pooling: stride = kernel
    assert parse_layer("conv k3").strides == (1, 1)
    assert parse_layer("conv k=5 s=2 p=same").padding == "same"
    assert parse_chain("conv k3;\n pool k2;") == [parse_layer("conv k3", 1),
                                                  parse_layer("pool k2", 2)]
    assert LayerSpec("conv", (3, 5), None, (1, 2)).describe() == "conv k3x5 p1x2"


def test_inverse_by_hand() -> None:
    sols, bounds = solve(28, 14, "stride", kernel=2)
    assert [s.value for s in sols] == [2] and sols[0].exact  # (28 - 2) // 2 + 1 = 14
    assert bounds == "stride 1..27"
    sols, _ = solve(28, 24, "kernel")
    assert [s.value for s in sols] == [5]  # 28 - k + 1 = 24
    sols, _ = solve(28, 28, "padding", kernel=5)
    assert [s.value for s in sols] == [2]  # 28 + 2p - 5 + 1 = 28
    # (28 - k) // 2 + 1 = 14  <=>  28 - k in {26, 27}  <=>  k in {1, 2}; k = 1 drops a pixel
    sols, _ = solve(28, 14, "kernel", stride=2)
    assert [(s.value, s.discarded) for s in sols] == [(1, 1), (2, 0)]
    # pooling: the stride follows the kernel, (28 - k) // k + 1 = 14  <=>  k = 2
    assert [s.value for s in solve(28, 14, "kernel", pool=True)[0]] == [2]
    # dilation: span d*(3-1)+1, 28 - span + 1 = 20  <=>  span 9  <=>  d = 4
    assert [s.value for s in solve(28, 20, "dilation", kernel=3)[0]] == [4]
    assert solve(28, 30, "kernel")[0] == []  # growing needs padding: no kernel does it


def test_inverse_needs_the_kernel() -> None:
    with pytest.raises(AnalysisError, match="needs the kernel"):
        solve(28, 14, "stride")
    with pytest.raises(AnalysisError, match="cannot solve for 'channels'"):
        solve(28, 14, "channels")  # type: ignore[arg-type]


def test_padding_search_reaches_every_output() -> None:
    """Padding beyond d(k-1) is legal in Conv2d and grows the output: 10 -> 14 needs p=3."""
    sols, bounds = solve(10, 14, "padding", kernel=3)
    assert [s.value for s in sols] == [3] and bounds == "padding 0..3"
    conv = nn.Conv2d(1, 1, 3, padding=3)
    assert conv(torch.zeros(1, 1, 10, 10)).shape[-1] == 14
    for n, k, s, want in itertools.product((5, 9, 16), (1, 2, 3, 5), (1, 2, 3), range(1, 25)):
        found = [x.value for x in solve(n, want, "padding", kernel=k, stride=s)[0]]
        by_torch = [p for p in range(0, 40) if n + 2 * p >= k and
                    nn.Conv2d(1, 1, k, s, p)(torch.zeros(1, 1, n, n)).shape[-1] == want]
        assert found == by_torch, (n, k, s, want)


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
def test_ceil_mode_pooling_matches_torch(kind: str) -> None:
    cls = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
    for n, k, s, p in itertools.product(range(3, 12), (2, 3), (1, 2, 3), (0, 1)):
        if 2 * p > k or k > n + 2 * p:
            continue
        layer = parse_layer(f"{kind} k{k} s{s} p{p} ceil")
        assert layer.ceil and layer.describe().endswith("ceil")
        got = run_chain((n, n), [layer]).out_hw
        want = cls(k, s, p, ceil_mode=True)(torch.zeros(1, 1, n, n)).shape[-2:]
        assert got == tuple(want), (n, k, s, p)
    steps = run_chain((24, 24), parse_chain("pool k3 s2 ceil")).steps
    assert steps[0].out_hw == (12, 12) and "hangs 1 pixel past" in steps[0].notes[0]


def test_chain_refuses_what_torch_has_not() -> None:
    with pytest.raises(AnalysisError, match="average pooling has no dilation"):
        parse_layer("avgpool k2 d2")
    with pytest.raises(AnalysisError, match="applies to pooling only"):
        parse_layer("conv k3 ceil")
    assert parse_layer("maxpool k2 d2").dilation == (2, 2)  # MaxPool2d has a dilation
