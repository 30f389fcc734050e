"""Numerical probes of operator properties: linearity, shift-equivariance, invariance.

Each property is a measured relative error against a tolerance, never an assertion by
type, so the same probe applies to a named textbook operator and to any prefix of a
real model. All probes run in float64 so that "holds" means an error near 1e-15 and a
tolerance of 1e-9 separates it cleanly from "fails" (errors of order 0.1 to 1).

Properties, for an operator f and random inputs x, y (Goodfellow et al., "Deep
Learning", ch. 9.2 on equivariance)::

    linear        f(a x + b y) = a f(x) + b f(y)         a = 1.7, b = -0.6
    affine        the same with a + b = 1                a = 1.7, b = -0.7
    equivariant   f(T_s x) = T_{s/J} f(x)                J = the jump (product of strides)
    invariant     f(T_s x) = f(x)
    per-channel   output channel c depends on input channel c only

Shifts ``T_s`` move the image by ``s`` pixels down and right. Boundary handling is
stated with every verdict: *circular* shifts (``torch.roll``) are compared on the whole
map for the named operators (the named ``conv`` pads circularly in this mode, so it
wraps around like the shift); *zero* shifts (content moves, zeros enter), and circular
shifts through a model's zero-padded layers, are compared only on the output units
whose receptive field (analytic, see ``receptive_field``) lies inside image rows and
columns ``[s, n - 1]``: the units that see genuine shifted pixels and no padding.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from convlab.analysis.common import AnalysisError
from convlab.analysis.receptive_field import Field, first_tensor, output_field

Boundary = Literal["circular", "zero"]
TOL = 1e-9
LIN_A, LIN_B = 1.7, -0.6  # a + b != 1: tests linearity proper
AFF_A, AFF_B = 1.7, -0.7  # a + b == 1: an affine map passes, a non-linear one does not


# ------------------------------------------------------------------ operators


class Bias(nn.Module):
    """x + b_c: a per-channel constant, the affine part of a conv layer on its own."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return x + self.bias[None, :, None, None]


class Subsample(nn.Module):
    """Keep one fixed pixel per s x s block (the top-left): strided sub-sampling."""

    def __init__(self, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/s, W/s)
        return x[:, :, :: self.stride, :: self.stride]


class FullyConnected(nn.Module):
    """A linear map of the whole C*H*W image onto a C*H*W image (no weight sharing)."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape
        n = math.prod(shape)
        self.fc = nn.Linear(n, n, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)).view(-1, *self.shape)


@dataclass(frozen=True)
class Operator:
    """A module to probe, how it was made, and whether it wraps around at the border."""

    name: str
    module: nn.Module
    description: str
    circular: bool = False  # compare circular shifts on the whole map, not the interior


OPERATOR_NAMES = ("conv", "bias", "relu", "leaky_relu", "tanh", "sigmoid", "silu", "gelu",
                  "identity", "maxpool", "avgpool", "subsample", "fc", "batchnorm", "gap",
                  "flatten")


def make_operator(
    name: str, in_shape: tuple[int, int, int] = (3, 16, 16), boundary: Boundary = "circular",
    seed: int = 0,
) -> Operator:
    """A textbook operator with random parameters, in float64 and eval mode.

    ``conv`` (3x3, no bias) pads circularly in circular mode, so that the probe measures
    the operator rather than its border; pooling and sub-sampling use 2x2 blocks.
    """
    from convlab.models.layers import ACTIVATIONS

    torch.manual_seed(seed)
    c = in_shape[0]
    circ = boundary == "circular"
    pointwise = {**ACTIVATIONS, "sigmoid": nn.Sigmoid}
    if name == "conv":
        mode = "circular" if circ else "zeros"
        m: nn.Module = nn.Conv2d(c, c, 3, padding=1, bias=False, padding_mode=mode)
        desc = f"3x3 conv {c}->{c} channels, no bias, padding 1 ({mode})"
    elif name == "bias":
        m, desc = Bias(c), "x + b_c, one constant per channel"
    elif name in pointwise:
        m, desc = pointwise[name](), f"element-wise {name}"
    elif name == "maxpool":
        m, desc = nn.MaxPool2d(2), "2x2 max pooling, stride 2"
    elif name == "avgpool":
        m, desc = nn.AvgPool2d(2), "2x2 average pooling, stride 2"
    elif name == "subsample":
        m, desc = Subsample(2), "keep the top-left pixel of each 2x2 block (stride 2)"
    elif name == "fc":
        m = FullyConnected(in_shape)
        desc = f"fully connected {math.prod(in_shape)}->{math.prod(in_shape)}, no bias"
    elif name == "batchnorm":
        bn = nn.BatchNorm2d(c)
        with torch.no_grad():
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
        m, desc = bn, "batch norm in eval mode: (x - mean_c) / sqrt(var_c + eps) * g_c + b_c"
    elif name == "gap":
        m, desc = nn.AdaptiveAvgPool2d(1), "global average pooling (C, H, W) -> (C, 1, 1)"
    elif name == "flatten":
        m, desc = nn.Flatten(), "flatten (C, H, W) -> C*H*W"
    else:
        raise AnalysisError(f"unknown operator {name!r}; expected one of: "
                            f"{', '.join(OPERATOR_NAMES)}")
    # Under circular shifts every named operator is compared on the whole map: each one
    # either wraps around itself (circular conv, pointwise ops, pools on a divisible map)
    # or, like fc, has no border to blame for a mismatch.
    return Operator(name, m.double().eval(), desc, circ)


# ------------------------------------------------------------------ model prefixes


def layer_units(model: nn.Module) -> list[str]:
    """The layers of a model in forward order, as the units of a prefix.

    Sequential containers (and ``cnn`` stages without a residual branch, which run
    body then post) are opened up; any other composite module (a residual stage, a
    ResNet block) is one unit, since its inside does not run as a chain.
    """
    from convlab.models.cnn import Stage

    out: list[str] = []

    def visit(prefix: str, m: nn.Module) -> None:
        for name, child in m.named_children():
            full = f"{prefix}{name}"
            opens = isinstance(child, nn.Sequential) or (
                isinstance(child, Stage) and child.skip is None
            )
            if opens and any(True for _ in child.children()):
                visit(full + ".", child)
            elif not opens:
                out.append(full)

    visit("", model)
    return out


class _Stop(Exception):
    def __init__(self, output: Any) -> None:
        super().__init__("stop")
        self.output = output


class LayerPrefix(nn.Module):
    """The model from its input up to and including the output of one named layer.

    Runs the whole model's ``forward`` and stops at that layer (a hook raises), so it
    works for any model, not only ``nn.Sequential`` ones.
    """

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.target = model.get_submodule(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def hook(_m: nn.Module, _i: Any, o: Any) -> None:
            raise _Stop(first_tensor(o))

        handle = self.target.register_forward_hook(hook)
        try:
            self.model(x)
        except _Stop as stop:
            return stop.output
        finally:
            handle.remove()
        raise AnalysisError(f"layer {self.layer} did not run in the forward pass")


def resolve_layer(model: nn.Module, layers: int | str) -> str:
    """``3`` -> the third unit of :func:`layer_units`; a name -> itself, checked."""
    units = layer_units(model)
    if isinstance(layers, int) or str(layers).isdigit():
        n = int(layers)
        if not 1 <= n <= len(units):
            raise AnalysisError(f"--layers {n}: the model has {len(units)} layers "
                                f"({', '.join(units)}); expected 1..{len(units)}")
        return units[n - 1]
    names = [n for n, _ in model.named_modules() if n]
    if layers not in names:
        raise AnalysisError(f"unknown layer {layers!r}; expected a number 1..{len(units)} or "
                            f"one of: {', '.join(units)}")
    return str(layers)


def model_prefix(model: nn.Module, layers: int | str) -> LayerPrefix:
    """A float64, eval-mode copy of ``model`` cut after ``layers`` (count or name)."""
    name = resolve_layer(model, layers)
    twin = copy.deepcopy(model).double().eval()
    return LayerPrefix(twin, name)


# ------------------------------------------------------------------ probes


@dataclass(frozen=True)
class Verdict:
    """One measured property: holds when ``error <= tol``; ``None`` when it cannot apply."""

    property: str
    holds: bool | None
    error: float | None
    tol: float
    detail: str


@dataclass(frozen=True)
class ProbeReport:
    name: str
    description: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, ...]
    jump: int
    verdicts: list[Verdict]

    def get(self, prop: str) -> Verdict:
        return next(v for v in self.verdicts if v.property == prop)

    @property
    def summary(self) -> str:
        """A textbook sentence: 'affine, not linear; shift-equivariant; not invariant'."""
        lin, aff = self.get("linear"), self.get("affine")
        parts = ["linear" if lin.holds else "affine, not linear" if aff.holds
                 else "non-linear"]
        eq = [v for v in self.verdicts if v.property.startswith("equivariant")]
        if all(v.holds is None for v in eq):
            parts.append(f"equivariance n/a ({eq[0].detail.split(':')[0]})")
        else:
            ok = [v for v in eq if v.holds]
            shifts = [int(v.property.split("shift ")[1].rstrip(")")) for v in ok]
            if ok and len(ok) == len(eq):
                parts.append("shift-equivariant")
            elif ok:
                parts.append(f"equivariant only to shifts by multiples of {self.jump} "
                             f"(held for shift {', '.join(map(str, shifts))})")
            else:
                parts.append("not shift-equivariant")
        inv = self.get("invariant (shift 1)")
        parts.append("shift-invariant" if inv.holds else "not shift-invariant")
        pc = self.get("per-channel")
        if pc.holds:
            parts.append("per-channel")
        return "; ".join(parts)


def rel_error(diff: torch.Tensor, ref: torch.Tensor) -> float:
    return float(diff.norm() / ref.norm().clamp_min(1e-300))


def shift_image(x: torch.Tensor, s: int, boundary: Boundary) -> torch.Tensor:
    """Move content s pixels down and right: wrapped around, or with zeros entering."""
    if boundary == "circular":
        return torch.roll(x, (s, s), dims=(-2, -1))
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    if s >= 0:
        out[..., s:, s:] = x[..., : h - s, : w - s]
    else:
        out[..., : h + s, : w + s] = x[..., -s:, -s:]
    return out


def _call(f: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return first_tensor(f(x))  # type: ignore[return-value]


def probe_operator(
    f: nn.Module, in_shape: tuple[int, int, int], name: str = "", description: str = "",
    boundary: Boundary = "circular", shifts: list[int] | None = None, circular_safe: bool = False,
    tol: float = TOL, seed: int = 0,
) -> ProbeReport:
    """Measure every property of ``f`` (a float64 module) on random inputs of ``in_shape``.

    ``shifts`` default to 1 and the jump J (or 1 and 3 when J = 1), so a stride-2 layer
    shows equivariance to a shift of 2 and not of 1. ``circular_safe`` says the operator
    itself wraps around, so circular shifts are compared on the whole map.
    """
    f = f.eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, *in_shape, generator=gen, dtype=torch.float64)
    y = torch.randn(2, *in_shape, generator=gen, dtype=torch.float64)
    fx, fy = _call(f, x), _call(f, y)
    field = output_field(f, in_shape)
    jump = field.jump[0] if field is not None else 1
    verdicts: list[Verdict] = []
    for prop, a, b in (("linear", LIN_A, LIN_B), ("affine", AFF_A, AFF_B)):
        lhs = _call(f, a * x + b * y)
        rhs = a * fx + b * fy
        err = rel_error(lhs - rhs, rhs)
        verdicts.append(Verdict(prop, err <= tol, err, tol,
                                f"f({a}x {'+' if b >= 0 else '-'} {abs(b)}y) vs "
                                f"{a}f(x) {'+' if b >= 0 else '-'} {abs(b)}f(y)"))
    spatial = fx.dim() == 4 and fx.shape[-2] * fx.shape[-1] > 1
    shifts = shifts or ([1, jump] if jump > 1 else [1, 3])
    for s in shifts:
        verdicts.append(_equivariance(f, x, fx, s, jump, field, boundary, circular_safe,
                                      spatial, tol))
    verdicts.append(_invariance(f, x, fx, boundary, tol))
    verdicts.append(_per_channel(f, x, fx, tol, gen))
    return ProbeReport(name, description, in_shape, tuple(fx.shape[1:]), jump, verdicts)


def valid_region(
    field: Field | None, s: int, in_hw: tuple[int, int], out_hw: tuple[int, int]
) -> tuple[slice, slice] | None:
    """Output units whose field lies inside the image rows/columns [s, n - 1].

    Those, and only those, see genuine shifted content in f(T_s x) and no padding; their
    counterparts in f(x) see rows [0, n - 1 - s], also genuine. Comparing there makes
    the test fair for zero-filled shifts and for zero-padded layers under circular ones.
    """
    if field is None:
        return None
    out = []
    for a in (0, 1):
        lo_px, hi_px = max(s, 0), in_hw[a] - 1 + min(s, 0)
        half = (field.size[a] - 1) / 2
        ok = [o for o in range(out_hw[a])
              if field.start[a] + o * field.jump[a] - half >= lo_px
              and field.start[a] + o * field.jump[a] + half <= hi_px]
        out.append(slice(ok[0], ok[-1] + 1) if ok else slice(0, 0))
    return out[0], out[1]


def _equivariance(
    f: nn.Module, x: torch.Tensor, fx: torch.Tensor, s: int, jump: int, field: Field | None,
    boundary: Boundary, circular_safe: bool, spatial: bool, tol: float,
) -> Verdict:
    prop = f"equivariant (shift {s})"
    if not spatial:
        return Verdict(prop, None, None, tol, "output is not a feature map: no shift to compare")
    whole = boundary == "circular" and circular_safe
    region = None if whole else valid_region(field, s, tuple(x.shape[-2:]), tuple(fx.shape[-2:]))
    if region is None:
        where = "whole map" if whole else "whole map (receptive field unknown)"
    else:
        rows, cols = region
        if rows.stop <= rows.start or cols.stop <= cols.start:
            return Verdict(prop, None, None, tol,
                           "no output unit sees only genuine (unpadded, shifted) pixels: "
                           "use a larger input")
        where = (f"units whose field avoids the border: rows {rows.start}..{rows.stop - 1}, "
                 f"columns {cols.start}..{cols.stop - 1}")

    def crop(t: torch.Tensor) -> torch.Tensor:
        return t if region is None else t[..., region[0], region[1]]

    lhs = _call(f, shift_image(x, s, boundary))
    cands = [s // jump] if s % jump == 0 else sorted({s // jump, -(-s // jump)})
    errs = [rel_error(crop(lhs - shift_image(fx, t, boundary)), crop(shift_image(fx, t, boundary)))
            for t in cands]
    err = min(errs)
    if s % jump == 0:
        detail = f"{boundary} shift by ({s}, {s}); output shifted by {s // jump}; {where}"
    else:  # no whole-unit output shift can match: report the better of the two nearest
        detail = (f"{boundary} shift by ({s}, {s}) is not a multiple of the jump {jump}; "
                  f"best of output shifts {'/'.join(map(str, cands))}; {where}")
    return Verdict(prop, err <= tol, err, tol, detail)


def _invariance(
    f: nn.Module, x: torch.Tensor, fx: torch.Tensor, boundary: Boundary, tol: float
) -> Verdict:
    lhs = _call(f, shift_image(x, 1, boundary))
    if lhs.shape != fx.shape:
        return Verdict("invariant (shift 1)", False, None, tol, "output shape changes")
    err = rel_error(lhs - fx, fx)
    return Verdict("invariant (shift 1)", err <= tol, err, tol,
                   f"f({boundary} shift of x by (1, 1)) vs f(x), whole output")


def _per_channel(
    f: nn.Module, x: torch.Tensor, fx: torch.Tensor, tol: float, gen: torch.Generator
) -> Verdict:
    prop = "per-channel"
    if fx.dim() != 4 or fx.shape[1] != x.shape[1]:
        return Verdict(prop, None, None, tol, "output channels do not match input channels")
    if x.shape[1] == 1:
        return Verdict(prop, None, None, tol, "a single channel")
    dx = torch.zeros_like(x)
    dx[:, 0] = torch.randn(x[:, 0].shape, generator=gen, dtype=x.dtype)
    change = _call(f, x + dx) - fx
    err = rel_error(change[:, 1:], change[:, :1])
    return Verdict(prop, err <= tol, err, tol,
                   "perturb input channel 0; change in output channels 1.. vs channel 0")


def probe_named(
    names: list[str], in_shape: tuple[int, int, int] = (3, 16, 16),
    boundary: Boundary = "circular", shifts: list[int] | None = None, tol: float = TOL,
    seed: int = 0,
) -> list[ProbeReport]:
    """Probe named textbook operators (all of them for an empty list)."""
    out = []
    for n in names or list(OPERATOR_NAMES):
        op = make_operator(n, in_shape, boundary, seed)
        out.append(probe_operator(op.module, in_shape, op.name, op.description, boundary,
                                  shifts, op.circular, tol, seed))
    return out


def probe_prefix(
    model: nn.Module, in_shape: tuple[int, int, int], layers: int | str, label: str = "",
    boundary: Boundary = "circular", shifts: list[int] | None = None, tol: float = TOL,
    seed: int = 0,
) -> ProbeReport:
    """Probe the model up to ``layers`` (a count of :func:`layer_units` or a layer name)."""
    prefix = model_prefix(model, layers)
    desc = f"{label or 'model'} up to {prefix.layer}"
    return probe_operator(prefix, in_shape, prefix.layer, desc, boundary, shifts, False, tol,
                          seed)


# ------------------------------------------------------------------ rendering


def render_reports(reports: list[ProbeReport], width: int | None = None) -> Any:
    """A rich table: one row per operator and property, with error and tolerance; on a
    terminal narrower than the table needs, each operator as its verdict line and one
    line per property, details wrapped under their own column (never mid-number)."""
    from rich.table import Table

    if width is not None and width < 140:
        return _render_narrow(reports, width)
    t = Table("operator", "property", "verdict", "error", "tol", "how")
    for r in reports:
        for i, v in enumerate(r.verdicts):
            verdict = ("n/a" if v.holds is None else
                       "[green]holds[/green]" if v.holds else "[red]fails[/red]")
            err = "-" if v.error is None else f"{v.error:.2e}"
            t.add_row(r.name if i == 0 else "", v.property, verdict, err, f"{v.tol:.0e}",
                      v.detail)
        t.add_row("", "[bold]verdict[/bold]", "", "", "", f"[bold]{r.summary}[/bold]",
                  end_section=True)
    return t


def _render_narrow(reports: list[ProbeReport], width: int) -> Any:
    import textwrap

    from rich.console import Group
    from rich.text import Text

    lines: list[Text] = []
    for r in reports:
        tols = sorted({f"{v.tol:.0e}" for v in r.verdicts})
        head = textwrap.wrap(f"{r.name}: {r.summary} (tolerance {', '.join(tols)})",
                             width, subsequent_indent="    ")
        lines += [Text(h, style="bold") for h in head]
        name_w = max(len(v.property) for v in r.verdicts)
        indent = 2 + name_w + 1 + 5 + 1 + 8 + 2
        for v in r.verdicts:
            word = "n/a" if v.holds is None else "holds" if v.holds else "fails"
            err = "-" if v.error is None else f"{v.error:.2e}"
            wrapped = textwrap.wrap(v.detail, max(width - indent, 20)) or [""]
            line = Text(f"  {v.property:<{name_w}} ")
            line.append(f"{word:<5}", style="green" if v.holds else "red" if v.holds is False
                        else "")
            line.append(f" {err:>8}  {wrapped[0]}")
            lines.append(line)
            lines += [Text(" " * indent + more) for more in wrapped[1:]]
        lines.append(Text(""))
    return Group(*lines[:-1])
