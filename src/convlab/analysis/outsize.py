"""Output sizes of conv and pooling layers, forward along a chain and inverse.

The one formula (the ``nn.Conv2d`` / ``nn.MaxPool2d`` docs; Dumoulin & Visin, "A guide
to convolution arithmetic", 2016), per axis, for input ``n``, kernel ``k``, stride
``s``, padding ``p`` on each side and dilation ``d``::

    n_out = floor((n + 2p - d(k - 1) - 1) / s) + 1

A dilated kernel spans ``d(k - 1) + 1`` pixels; it must fit in the padded input. When
the division is not exact the floor silently drops the last ``(n + 2p - d(k-1) - 1) mod
s`` rows or columns: legal, but usually a sign of a mis-sized network, so the chain
reports it as a warning.

Chain syntax (one layer per ``;``-separated item, tokens in any order after the kind)::

    conv k5 p2; pool k2 s2; conv k3 d2 psame; avgpool k3x2; pad p1

    kinds   conv | pool (= maxpool) | maxpool | avgpool | pad
    kN      kernel N (or kHxW for a rectangular kernel)        default 1 (conv), required (pool)
    sN      stride (or sHxW)                                   default 1 (conv), k (pool)
    pN      zero padding on each side (or pHxW), psame, pvalid default 0
    dN      dilation (or dHxW); conv and max pooling only      default 1
    ceil    pooling only: ``ceil_mode=True`` (round the output size up)

With ``ceil`` a pooling layer rounds up instead of down, so the last window may hang
over the edge; PyTorch then drops a window that would start in the right padding::

    n_out = ceil((n + 2p - d(k - 1) - 1) / s) + 1,  minus 1 if (n_out - 1) s >= n + p
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from convlab.analysis.common import AnalysisError
from convlab.analysis.receptive_field import Field, input_field, window_field

Pair = tuple[int, int]
Kind = Literal["conv", "maxpool", "avgpool", "pad"]
KINDS: dict[str, Kind] = {"conv": "conv", "pool": "maxpool", "maxpool": "maxpool",
                          "avgpool": "avgpool", "pad": "pad"}
AXES = ("rows", "columns")


@dataclass(frozen=True)
class LayerSpec:
    """One conv / pool / pad layer. ``stride=None`` means 1 for conv, ``kernel`` for pools."""

    kind: Kind = "conv"
    kernel: Pair = (1, 1)
    stride: Pair | None = None
    padding: Pair | Literal["same", "valid"] = (0, 0)
    dilation: Pair = (1, 1)
    text: str = ""  # as written, for messages
    ceil: bool = False  # pooling with ceil_mode=True

    @property
    def strides(self) -> Pair:
        if self.stride is not None:
            return self.stride
        return self.kernel if self.kind in ("maxpool", "avgpool") else (1, 1)

    def describe(self) -> str:
        if self.text:
            return self.text
        parts = [self.kind, f"k{_pt(self.kernel)}"]
        if self.stride is not None:
            parts.append(f"s{_pt(self.stride)}")
        if self.padding != (0, 0):
            p = self.padding
            parts.append(f"p{p}" if isinstance(p, str) else f"p{_pt(p)}")
        if self.dilation != (1, 1):
            parts.append(f"d{_pt(self.dilation)}")
        if self.ceil:
            parts.append("ceil")
        return " ".join(parts)


def _pt(p: Pair) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


_TOKEN = re.compile(r"^([kspd])=?(\d+(?:x\d+)?|same|valid)$")


def parse_layer(text: str, index: int = 1) -> LayerSpec:
    """``"conv k5 p2"`` -> LayerSpec; see the module docstring for the syntax."""
    words = text.strip().lower().split()
    where = f"layer {index} ({text.strip()!r})"
    if not words:
        raise AnalysisError(f"layer {index} is empty; expected e.g. 'conv k3 p1' or 'pool k2'")
    if words[0] not in KINDS:
        raise AnalysisError(f"{where}: unknown kind {words[0]!r}; expected one of: "
                            f"{', '.join(KINDS)}")
    kind = KINDS[words[0]]
    vals: dict[str, Pair | str] = {}
    ceil = False
    for w in words[1:]:
        if w == "ceil":
            if kind not in ("maxpool", "avgpool"):
                raise AnalysisError(f"{where}: 'ceil' (ceil_mode) applies to pooling only")
            ceil = True
            continue
        m = _TOKEN.match(w)
        if not m:
            raise AnalysisError(f"{where}: cannot read {w!r}; expected kN, sN, pN, psame, "
                                f"pvalid, dN (N or HxW) or ceil")
        key, raw = m.groups()
        if raw in ("same", "valid"):
            if key != "p":
                raise AnalysisError(f"{where}: {w!r}: only the padding can be 'same' or 'valid'")
            vals[key] = raw
            continue
        nums = tuple(int(v) for v in raw.split("x"))
        pair = (nums[0], nums[-1])
        if key != "p" and min(pair) < 1:
            raise AnalysisError(f"{where}: {w!r}: kernel, stride and dilation must be >= 1")
        vals[key] = pair
    if kind in ("maxpool", "avgpool") and "k" not in vals:
        raise AnalysisError(f"{where}: a pooling layer needs a kernel size, e.g. 'pool k2'")
    if kind == "pad" and ("p" not in vals or isinstance(vals["p"], str)):
        raise AnalysisError(f"{where}: a pad layer needs an amount, e.g. 'pad p2'")
    if kind == "avgpool" and vals.get("d", (1, 1)) != (1, 1):
        raise AnalysisError(f"{where}: average pooling has no dilation (nn.AvgPool2d takes "
                            f"none); use maxpool or conv for a dilated window")
    if kind in ("maxpool", "avgpool") and vals.get("p") in ("same", "valid") and ceil:
        raise AnalysisError(f"{where}: give 'ceil' with a numeric padding, not p{vals['p']}")
    return LayerSpec(kind, vals.get("k", (1, 1)), vals.get("s"),  # type: ignore[arg-type]
                     vals.get("p", (0, 0)), vals.get("d", (1, 1)),  # type: ignore[arg-type]
                     text.strip(), ceil)


def parse_chain(text: str) -> list[LayerSpec]:
    """``"conv k5 p2; pool k2 s2"`` -> two layers (``;`` or newlines separate them)."""
    items = [t for t in re.split(r"[;\n]", text) if t.strip()]
    if not items:
        raise AnalysisError("--chain is empty; expected e.g. 'conv k5 p2; pool k2 s2'")
    return [parse_layer(t, i) for i, t in enumerate(items, 1)]


# ------------------------------------------------------------------ forward


def out_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((n + 2p - d(k-1) - 1) / s) + 1, refusing a kernel wider than the padded input."""
    span = dilation * (kernel - 1) + 1
    if span > n + 2 * padding:
        raise AnalysisError(
            f"kernel {kernel} (dilation {dilation}) spans {span} pixels, more than the padded "
            f"input {n} + 2*{padding} = {n + 2 * padding}"
        )
    return (n + 2 * padding - span) // stride + 1


def same_padding(n: int, kernel: int, stride: int = 1, dilation: int = 1) -> Pair:
    """(before, after) zero padding that gives ceil(n / s) outputs ("same", TensorFlow).

    Total padding (ceil(n/s) - 1)*s + d(k-1) + 1 - n; odd totals (even kernels at
    stride 1) put the extra pixel after, as TensorFlow and ``padding='same'`` do.
    """
    want = math.ceil(n / stride)
    total = max((want - 1) * stride + dilation * (kernel - 1) + 1 - n, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Step:
    """One layer of a chain: sizes, the padding actually used, what the floor dropped."""

    index: int
    layer: LayerSpec
    in_hw: Pair
    pad: tuple[Pair, Pair]  # ((top, bottom), (left, right))
    out_hw: Pair
    discarded: Pair  # rows, columns dropped by the floor
    field: Field  # receptive field and jump at this layer's output
    notes: tuple[str, ...] = ()  # warnings and notes about this layer


@dataclass(frozen=True)
class ChainResult:
    """The steps, plus warnings (the floor dropped pixels) and notes (padding advice)."""

    input_hw: Pair
    steps: list[Step]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def out_hw(self) -> Pair:
        return self.steps[-1].out_hw if self.steps else self.input_hw


def _axis(
    n: int, k: int, s: int, pb: int, pa: int, d: int, where: str, axis: str,
    ceil: bool = False,
) -> tuple[int, int]:
    """(n_out, pixels dropped by the floor) for one axis with padding (before, after).

    With ``ceil`` (pooling's ceil_mode) nothing is dropped: the second number is then how
    far the last window hangs over the padded input, as a negative count.
    """
    span = d * (k - 1) + 1
    padded = n + pb + pa
    if span > padded:
        raise AnalysisError(
            f"{where}: the kernel spans {span} {axis} (d*(k-1)+1 = {d}*{k - 1}+1) but the "
            f"padded input has only {padded} ({n} + {pb} + {pa})"
        )
    if not ceil:
        return (padded - span) // s + 1, (padded - span) % s
    out = -(-(padded - span) // s) + 1
    if (out - 1) * s >= n + pb:  # PyTorch: no window may start in the right padding
        out -= 1
    return out, min(0, padded - ((out - 1) * s + span))


def run_chain(input_hw: Pair, layers: list[LayerSpec]) -> ChainResult:
    """Push an (H, W) input through ``layers``; warn wherever the floor drops pixels."""
    hw, f = input_hw, input_field(input_hw)
    steps: list[Step] = []
    warnings: list[str] = []
    all_notes: list[str] = []
    for i, layer in enumerate(layers, 1):
        where = f"layer {i} ({layer.describe()})"
        k, s, d = layer.kernel, layer.strides, layer.dilation
        if layer.kind == "pad":
            p = layer.padding
            assert not isinstance(p, str)
            pads = ((p[0], p[0]), (p[1], p[1]))
            out = (hw[0] + 2 * p[0], hw[1] + 2 * p[1])
            steps.append(Step(i, layer, hw, pads, out, (0, 0),
                              Field(f.size, f.jump, (f.start[0] - p[0] * f.jump[0],
                                                     f.start[1] - p[1] * f.jump[1]), out)))
            f, hw = steps[-1].field, out
            continue
        if layer.padding == "same":
            pads = tuple(same_padding(hw[a], k[a], s[a], d[a]) for a in (0, 1))
            uneven = [a for a in (0, 1) if pads[a][0] != pads[a][1]]
            if uneven:
                if len(uneven) == 2 and pads[0] == pads[1]:
                    said = f"{pads[0][0]} before, {pads[0][1]} after on rows and columns"
                else:
                    said = " and ".join(f"{pads[a][0]} before, {pads[a][1]} after on the "
                                        f"{AXES[a]}" for a in uneven)
                all_notes.append(
                    f"{where}: 'same' needs asymmetric padding ({said}); Conv2d pads both "
                    f"sides equally, so pad with ZeroPad2d first (or padding='same', stride 1)"
                )
        elif layer.padding == "valid":
            pads = ((0, 0), (0, 0))
        else:
            pads = tuple((layer.padding[a], layer.padding[a]) for a in (0, 1))
        if layer.kind != "conv":
            for a in (0, 1):
                if max(pads[a]) * 2 > k[a]:
                    raise AnalysisError(
                        f"{where}: pooling padding {max(pads[a])} is more than half the kernel "
                        f"{k[a]}; PyTorch refuses it (pad <= k/2)"
                    )
        sizes = [_axis(hw[a], k[a], s[a], pads[a][0], pads[a][1], d[a], where, AXES[a],
                       layer.ceil) for a in (0, 1)]
        out = (sizes[0][0], sizes[1][0])
        dropped = (max(sizes[0][1], 0), max(sizes[1][1], 0))
        over = (-min(sizes[0][1], 0), -min(sizes[1][1], 0))
        same_axes = hw[0] == hw[1] and k[0] == k[1] and s[0] == s[1] and d[0] == d[1] \
            and pads[0] == pads[1]
        for a in (0,) if same_axes else (0, 1):
            if dropped[a]:
                span = d[a] * (k[a] - 1) + 1
                padded = hw[a] + sum(pads[a])
                axis = "rows and columns" if same_axes else AXES[a]
                warnings.append(
                    f"{where}: ({padded} - {span}) / {s[a]} = {(padded - span) / s[a]:g} is not "
                    f"an integer: the floor drops the last {dropped[a]} of {padded} padded "
                    f"{axis}"
                )
            if over[a]:
                axis = "rows and columns" if same_axes else AXES[a]
                all_notes.append(
                    f"{where}: ceil mode: the last window on the {axis} hangs {over[a]} "
                    f"pixel{'s' if over[a] > 1 else ''} past the padded input (it pools "
                    f"only the pixels inside)"
                )
        f = window_field(f, k, s, (pads[0][0], pads[1][0]), d, out)
        mine = tuple(n for n in warnings + all_notes if n.startswith(where))
        steps.append(Step(i, layer, hw, pads, out, dropped, f, mine))  # type: ignore[arg-type]
        hw = out
    return ChainResult(input_hw, steps, warnings, all_notes)


# ------------------------------------------------------------------ inverse

Unknown = Literal["kernel", "stride", "padding", "dilation"]


@dataclass(frozen=True)
class Solution:
    """One integer setting of the unknown that maps ``n_in`` to ``n_out``."""

    value: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    discarded: int  # pixels dropped by the floor; 0 means the windows tile exactly

    @property
    def exact(self) -> bool:
        return self.discarded == 0


def solve(
    n_in: int, n_out: int, unknown: Unknown, *, kernel: int | None = None,
    stride: int | None = None, padding: int = 0, dilation: int = 1, pool: bool = False,
) -> tuple[list[Solution], str]:
    """Every integer value of ``unknown`` giving ``n_in -> n_out``, and the bounds searched.

    Bounds (beyond them no value can reach ``n_out``): kernel 1..n+2p; stride
    1..n+2p-d(k-1) (any larger stride also gives 1 output); padding 0 up to the largest
    p whose output is still <= n_out, i.e. (n_out*s + d(k-1) - n) / 2 for conv (the
    output grows with p; PyTorch accepts any padding), 0..k/2 for pooling (PyTorch);
    dilation 1..(n+2p-1)/(k-1). ``stride=None`` means 1 for conv, ``kernel`` for pooling.
    """
    if n_in < 1 or n_out < 1:
        raise AnalysisError(f"sizes must be positive, got input {n_in} and output {n_out}")

    if unknown not in ("kernel", "stride", "padding", "dilation"):
        raise AnalysisError(f"cannot solve for {unknown!r}; expected kernel, stride, padding "
                            f"or dilation")
    if unknown != "kernel" and kernel is None:
        raise AnalysisError(f"solving for the {unknown} needs the kernel size (--kernel)")
    k = kernel or 1
    if unknown == "kernel":
        hi = n_in + 2 * padding
    elif unknown == "stride":
        hi = max(n_in + 2 * padding - dilation * (k - 1), 1)
    elif unknown == "padding":
        s_known = stride if stride is not None else (k if pool else 1)
        reach = max((n_out * s_known + dilation * (k - 1) - n_in) // 2, 0)
        hi = min(k // 2, reach) if pool else reach
    else:
        if k == 1:
            raise AnalysisError("dilation has no effect with kernel 1; give a kernel > 1")
        hi = max((n_in + 2 * padding - 1) // (k - 1), 1)
    lo = 0 if unknown == "padding" else 1
    bounds = f"{unknown} {lo}..{hi}"
    found = []
    for v in range(lo, hi + 1):
        k_, p_, d_ = (v if unknown == "kernel" else k), padding, dilation
        if unknown == "padding":
            p_ = v
        elif unknown == "dilation":
            d_ = v
        s_ = v if unknown == "stride" else (stride if stride is not None else (k_ if pool else 1))
        span = d_ * (k_ - 1) + 1
        if span > n_in + 2 * p_ or (pool and 2 * p_ > k_):
            continue
        if (n_in + 2 * p_ - span) // s_ + 1 == n_out:
            found.append(Solution(v, k_, s_, p_, d_, (n_in + 2 * p_ - span) % s_))
    return found, bounds
