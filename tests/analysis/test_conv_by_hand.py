"""Convolution by hand: worked examples, and agreement with torch.nn.functional.conv2d."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from convlab.analysis.common import AnalysisError
from convlab.analysis.conv_by_hand import (
    NAMED_KERNELS,
    conv_by_hand,
    flip_kernel,
    format_term,
    parse_matrix,
    render,
)

IMAGE = "1 2 0; 0 1 3; 2 1 0"
KERNEL = "1 0; 0 -1"


def ints(m: list[list[Fraction]]) -> list[list[int]]:
    return [[int(v) for v in row] for row in m]


def test_cross_correlation_by_hand() -> None:
    hc = conv_by_hand(parse_matrix(IMAGE), parse_matrix(KERNEL))
    # y[i,j] = x[i,j]*1 + x[i,j+1]*0 + x[i+1,j]*0 + x[i+1,j+1]*(-1)
    # y[0,0] = 1*1 + 2*0 + 0*0 + 1*(-1) = 0      y[0,1] = 2*1 + 0*0 + 1*0 + 3*(-1) = -1
    # y[1,0] = 0*1 + 1*0 + 2*0 + 1*(-1) = -1     y[1,1] = 1*1 + 3*0 + 1*0 + 0*(-1) = 1
    assert ints(hc.result) == [[0, -1], [-1, 1]]
    assert format_term(hc.outputs[0]) == "y[0,0] = 1*1 + 2*0 + 0*0 + 1*(-1) = 0"
    assert format_term(hc.outputs[1]) == "y[0,1] = 2*1 + 0*0 + 1*0 + 3*(-1) = -1"


def test_flip_gives_convolution_proper() -> None:
    # the kernel rotated by 180 degrees is [[-1, 0], [0, 1]]: every sign above flips
    hc = conv_by_hand(parse_matrix(IMAGE), parse_matrix(KERNEL), flip=True)
    assert ints(hc.applied) == [[-1, 0], [0, 1]]
    assert ints(hc.result) == [[0, 1], [1, -1]]
    assert "kernel flipped (as applied)" in render(hc)


def test_box_filter_with_padding_exact_fractions() -> None:
    hc = conv_by_hand(parse_matrix("1 2 3; 4 5 6; 7 8 9"), parse_matrix("box3"), padding=1)
    assert len(hc.padded) == 5 and hc.padded[0] == [0] * 5 and hc.padded[1][1:4] == [1, 2, 3]
    # centre: (1 + 2 + ... + 9) / 9 = 45 / 9 = 5; corner: (1 + 2 + 4 + 5) / 9 = 12/9 = 4/3
    assert hc.result[1][1] == 5 and hc.result[0][0] == Fraction(4, 3)
    text = render(hc)
    assert "y[1,1] = 1*(1/9) + 2*(1/9)" in text and "= 4/3" in text
    assert "(3 + 2*1 - 3) // 1 + 1 = 3 rows" in text


def test_stride_and_padding_by_hand() -> None:
    img = parse_matrix("1 2 3 4; 5 6 7 8; 9 10 11 12; 13 14 15 16")
    hc = conv_by_hand(img, parse_matrix("1 1; 1 1"), padding=1, stride=2)
    # 4 + 2*1 - 2 = 4, 4 // 2 + 1 = 3; windows start at padded rows/cols 0, 2, 4
    # y[0,0] = 0+0+0+1 = 1; y[0,1] = 0+0+2+3 = 5; y[1,1] = 6+7+10+11 = 34; y[2,2] = 16
    assert ints(hc.result) == [[1, 5, 4], [14, 34, 20], [13, 29, 16]]


def test_matches_torch_conv2d() -> None:
    gen = torch.Generator().manual_seed(0)
    for (h, w), (kh, kw), p, s, flip in itertools.product(
        [(4, 5), (6, 6)], [(2, 3), (3, 3)], [0, 1, 2], [1, 2], [False, True]
    ):
        x = torch.randint(-3, 4, (h, w), generator=gen).double()
        k = torch.randint(-2, 3, (kh, kw), generator=gen).double()
        hc = conv_by_hand([[Fraction(int(v)) for v in row] for row in x.tolist()],
                          [[Fraction(int(v)) for v in row] for row in k.tolist()], p, s, flip)
        applied = torch.flip(k, dims=(0, 1)) if flip else k  # convolution = flipped kernel
        want = F.conv2d(x[None, None], applied[None, None], stride=s, padding=p)[0, 0]
        got = torch.tensor([[float(v) for v in row] for row in hc.result], dtype=torch.float64)
        assert torch.equal(got, want), ((h, w), (kh, kw), p, s, flip)


def test_named_kernels() -> None:
    assert set(NAMED_KERNELS) == {"sobel_x", "sobel_y", "box3", "gaussian3", "laplacian"}
    assert sum(sum(row) for row in NAMED_KERNELS["gaussian3"]) == 1  # (1+2+1)^2 / 16
    assert sum(sum(row) for row in NAMED_KERNELS["laplacian"]) == 0
    assert ints(parse_matrix("sobel_y")) == [list(r) for r in zip(*ints(parse_matrix("sobel_x")),
                                                                  strict=True)]
    assert flip_kernel(parse_matrix("laplacian")) == parse_matrix("laplacian")  # symmetric
    # a horizontal ramp: sobel_x (cross-correlation) sees +8 per unit step in the centre
    hc = conv_by_hand(parse_matrix("0 1 2; 0 1 2; 0 1 2"), parse_matrix("SOBEL_X"))
    assert ints(hc.result) == [[8]]  # (-1)*0 + 1*2 + (-2)*0 + 2*2 + (-1)*0 + 1*2 = 8


def test_input_formats(tmp_path: Path) -> None:
    want = [[1, 0, 2], [3, 2, 0]]
    assert ints(parse_matrix("1 0 2; 3 2 0")) == want
    assert ints(parse_matrix("1,0,2\n3,2,0")) == want
    assert ints(parse_matrix("[[1, 0, 2], [3, 2, 0]]")) == want
    f = tmp_path / "m.txt"
    f.write_text("1 0 2\n3 2 0\n")
    assert ints(parse_matrix(str(f))) == want
    assert parse_matrix("0.5 1/3") == [[Fraction(1, 2), Fraction(1, 3)]]


@pytest.mark.parametrize(("text", "message"), [
    ("1 2; 3", "row 2 has 1 entries but row 1 has 2"),
    ("1 x; 2 3", "row 1, entry 2: 'x' is not a number"),
    ("", "empty matrix"),
    ("sobelx", "not a named kernel"),
    ("1 nan", "'nan' is not a number"),
])
def test_malformed_matrices(text: str, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        parse_matrix(text)


def test_kernel_too_large() -> None:
    with pytest.raises(AnalysisError, match="does not fit in the 2x2 padded image"):
        conv_by_hand(parse_matrix("1 2; 3 4"), parse_matrix("box3"))


def test_dilation_matches_torch_conv2d() -> None:
    gen = torch.Generator().manual_seed(3)
    for d, s, p, k in itertools.product((1, 2, 3), (1, 2), (0, 1, 2), (2, 3)):
        if d * (k - 1) + 1 > 7 + 2 * p:
            continue
        x = torch.randint(-4, 5, (7, 7), generator=gen)
        w = torch.randint(-3, 4, (k, k), generator=gen)
        hc = conv_by_hand(_fr(x), _fr(w), padding=p, stride=s, dilation=d)
        want = F.conv2d(x[None, None].double(), w[None, None].double(), stride=s, padding=p,
                        dilation=d)[0, 0]
        assert torch.equal(torch.tensor([[float(v) for v in r] for r in hc.result]), want)
    hc = conv_by_hand(_fr(torch.arange(25).view(5, 5)), _fr(torch.eye(2)), dilation=2)
    assert format_term(hc.outputs[0]) == "y[0,0] = 0*1 + 2*0 + 10*0 + 12*1 = 12"
    assert "dilation 2" in render(hc) and "2*(2 - 1) - 1" in render(hc)
    with pytest.raises(AnalysisError, match="dilation 3 spreads it over 7x7"):
        conv_by_hand(_fr(torch.ones(5, 5)), _fr(torch.ones(3, 3)), dilation=3)


def _fr(t: torch.Tensor) -> list[list[Fraction]]:
    return [[Fraction(int(v)) for v in row] for row in t.tolist()]
