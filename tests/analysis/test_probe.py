"""Operator probes reproduce the textbook verdicts, with measured errors and tolerances."""

from __future__ import annotations

import pytest

from convlab.analysis.common import AnalysisError, resolve_model
from convlab.analysis.probe import (
    OPERATOR_NAMES,
    ProbeReport,
    layer_units,
    make_operator,
    probe_named,
    probe_prefix,
    resolve_layer,
    shift_image,
)

# (linear, affine, equivariant to shift 1, to shift 2, invariant, per-channel), circular
# shifts; None: the property does not apply (the output is not a feature map).
TEXTBOOK = {
    "conv": (True, True, True, True, False, False),
    "bias": (False, True, True, True, False, True),  # affine, not linear
    "relu": (False, False, True, True, False, True),
    "tanh": (False, False, True, True, False, True),
    "identity": (True, True, True, True, False, True),
    "maxpool": (False, False, False, True, False, True),  # only multiples of the stride
    "avgpool": (True, True, False, True, False, True),
    "subsample": (True, True, False, True, False, True),
    "fc": (True, True, False, False, False, False),  # no weight sharing
    "batchnorm": (False, True, True, True, False, True),  # affine per channel
    "gap": (True, True, None, None, True, True),  # shift-invariant
    "flatten": (True, True, None, None, False, None),
}


def holds(r: ProbeReport, prop: str) -> bool | None:
    return r.get(prop).holds


@pytest.fixture(scope="module")
def circular() -> dict[str, ProbeReport]:
    reports = probe_named(list(TEXTBOOK), shifts=[1, 2])
    return {r.name: r for r in reports}


@pytest.mark.parametrize("name", list(TEXTBOOK))
def test_textbook_verdicts(circular: dict[str, ProbeReport], name: str) -> None:
    r = circular[name]
    got = (holds(r, "linear"), holds(r, "affine"), holds(r, "equivariant (shift 1)"),
           holds(r, "equivariant (shift 2)"), holds(r, "invariant (shift 1)"),
           holds(r, "per-channel"))
    assert got == TEXTBOOK[name]
    for v in r.verdicts:  # a verdict always carries its measurement and tolerance
        assert v.tol == 1e-9
        if v.holds is not None:
            assert v.error is not None and (v.error <= v.tol) == v.holds
            assert v.error < 1e-12 or v.error > 1e-3  # clean separation in float64


def test_summaries_read_like_the_textbook(circular: dict[str, ProbeReport]) -> None:
    assert circular["conv"].summary.startswith("linear; shift-equivariant")
    assert circular["bias"].summary.startswith("affine, not linear; shift-equivariant")
    assert "equivariant only to shifts by multiples of 2" in circular["maxpool"].summary
    assert "not shift-equivariant" in circular["fc"].summary
    assert "shift-invariant" in circular["gap"].summary
    assert circular["batchnorm"].summary.endswith("per-channel")


def test_details_state_the_boundary_handling(circular: dict[str, ProbeReport]) -> None:
    v = circular["maxpool"].get("equivariant (shift 2)")
    assert v.detail == "circular shift by (2, 2); output shifted by 1; whole map"
    v1 = circular["maxpool"].get("equivariant (shift 1)")
    assert "not a multiple of the jump 2" in v1.detail


def test_zero_padded_conv_with_zero_shifts_compares_the_interior() -> None:
    (r,) = probe_named(["conv"], (2, 12, 12), boundary="zero", shifts=[1])
    v = r.get("equivariant (shift 1)")
    # a 3x3 field: unit o sees pixels o-1..o+1, which must lie in [1, 11]: o in 2..10
    assert v.holds and "rows 2..10, columns 2..10" in v.detail
    assert make_operator("conv", boundary="zero").module.padding_mode == "zeros"


def test_every_named_operator_runs() -> None:
    assert len(probe_named([], (2, 8, 8))) == len(OPERATOR_NAMES)
    with pytest.raises(AnalysisError, match="unknown operator 'nope'"):
        make_operator("nope")


def test_model_prefixes() -> None:
    r = resolve_model("pw1")
    units = layer_units(r.model)
    assert units[:4] == ["stage1.body.conv1", "stage1.body.act1", "stage1.post.pool",
                         "stage2.body.conv1"]
    conv = probe_prefix(r.model, r.in_shape, 1)
    # a conv with bias: affine, and equivariant away from its zero padding
    assert conv.summary.startswith("affine, not linear; shift-equivariant")
    pool = probe_prefix(r.model, r.in_shape, "stage1.post.pool", boundary="zero")
    assert pool.jump == 2
    assert not holds(pool, "equivariant (shift 1)") and holds(pool, "equivariant (shift 2)")
    head = probe_prefix(r.model, r.in_shape, len(units))
    assert holds(head, "equivariant (shift 1)") is None  # class scores: no map to shift


def test_resolve_layer_errors() -> None:
    model = resolve_model("lenet5").model
    assert resolve_layer(model, 3) == "stage1.post.pool"
    with pytest.raises(AnalysisError, match="expected 1..12"):
        resolve_layer(model, 13)
    with pytest.raises(AnalysisError, match="unknown layer 'stage7'"):
        resolve_layer(model, "stage7")


def test_shifts() -> None:
    import torch

    x = torch.arange(9.0).view(1, 1, 3, 3)
    assert shift_image(x, 1, "circular")[0, 0].tolist() == [[8, 6, 7], [2, 0, 1], [5, 3, 4]]
    assert shift_image(x, 1, "zero")[0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 3, 4]]
    assert shift_image(x, -1, "zero")[0, 0].tolist() == [[4, 5, 0], [7, 8, 0], [0, 0, 0]]


def test_reports_fit_80_columns() -> None:
    from rich.console import Console

    from convlab.analysis.probe import probe_named, render_reports

    reports = probe_named(["conv", "maxpool"], (3, 16, 16), "circular", None, 1e-9)
    console = Console(record=True, width=80)
    console.print(render_reports(reports, 80))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "maxpool: non-linear; equivariant only to shifts by multiples of 2" in text
    assert "  equivariant (shift 1) fails" in text and "holds 0.00e+00" in text
    wide = Console(record=True, width=200)
    wide.print(render_reports(reports))
    assert "┃ operator" in wide.export_text()  # the full table when there is room
