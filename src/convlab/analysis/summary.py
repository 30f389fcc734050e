"""A per-layer table of any ``nn.Module``: shapes, parameters, receptive fields, MACs.

:func:`summarize` runs one forward pass of a single zero image with a forward hook on
every leaf module (a module without children) and the :class:`FieldTracker` of
``receptive_field`` running alongside, so it needs nothing from the model but that it
is a module: the ``cnn``/``mlp`` builders and torchvision's ResNets alike. The
renderers at the end turn the pure result into a rich table, Markdown, CSV or JSON.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from math import prod
from typing import Any

import torch
from torch import nn

from convlab.analysis.common import is_leaf
from convlab.analysis.receptive_field import (
    Field,
    FieldTracker,
    field_text,
    first_tensor,
    traced_forward,
)


@dataclass(frozen=True)
class LayerRow:
    """One call of one leaf module (per image, i.e. for a batch of one)."""

    name: str  # dotted module path, e.g. "stage1.body.conv1"
    type: str  # the module class, e.g. "Conv2d"
    out_shape: tuple[int, ...]  # (C, H, W) or (features,)
    weights: int
    biases: int
    params: int  # weights + biases (+ any other own parameters)
    rf: tuple[int, int] | None  # receptive-field size (H, W) at this output; None unknown
    jump: tuple[int, int] | None  # product of the strides so far
    macs: int  # multiply-accumulates for one image
    # conv only: a fully connected map of the same input to the same output needs
    # (x*y*z) * (x'*y'*z') weights, and one bias per output if the conv has biases
    fc_weights: int | None = None
    fc_biases: int | None = None
    shared: bool = False  # a second call of a module whose parameters were counted already

    @property
    def fc_params(self) -> int | None:
        """FC-equivalent weights plus biases (conv only)."""
        return None if self.fc_weights is None else self.fc_weights + (self.fc_biases or 0)


@dataclass(frozen=True)
class ModelSummary:
    """The rows plus totals; totals count every parameter once, even if shared."""

    label: str
    in_shape: tuple[int, int, int]
    rows: list[LayerRow]
    params: int
    trainable: int
    frozen: int
    macs: int
    notes: list[str] = field(default_factory=list)


def _macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates per image: conv (C_in/g)*k_h*k_w per output; linear in_f each."""
    per_image = out[0].numel()
    if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return per_image * (m.in_channels // m.groups) * prod(m.kernel_size)
    if isinstance(m, nn.Linear):
        return per_image * m.in_features
    return 0  # BN, pooling, activations: no multiply-accumulates counted


def summarize(model: nn.Module, in_shape: tuple[int, int, int], label: str = "") -> ModelSummary:
    """Run one image of ``in_shape`` (C, H, W) through ``model`` and describe each leaf.

    Why hooks rather than walking the module tree: the forward pass is the only reliable
    record of order, of repeated calls and of what actually ran (a residual ``skip``,
    an unused module), and it gives every output shape for free.
    """
    rows: list[LayerRow] = []
    seen: set[int] = set()
    tracker = FieldTracker()
    hooks = []
    for name, mod in model.named_modules():
        if not name or not is_leaf(mod):
            continue

        def hook(m: nn.Module, i: Any, o: Any, name: str = name) -> None:
            out, inp = first_tensor(o), first_tensor(i)
            if out is None:
                return
            shared = id(m) in seen
            seen.add(id(m))
            own = [] if shared else list(m.named_parameters(recurse=False))
            weights = sum(p.numel() for n, p in own if n != "bias")
            biases = sum(p.numel() for n, p in own if n == "bias")
            f: Field | None = tracker.field(out)
            fc_w = fc_b = None
            if isinstance(m, nn.Conv2d) and inp is not None:
                fc_w = inp[0].numel() * out[0].numel()
                fc_b = out[0].numel() if m.bias is not None else 0
            rows.append(LayerRow(
                name, type(m).__name__, tuple(int(s) for s in out.shape[1:]), weights, biases,
                weights + biases, f.size if f else None, f.jump if f else None,
                _macs(m, inp, out) if inp is not None else 0, fc_w, fc_b, shared,
            ))

        hooks.append(mod.register_forward_hook(hook))
    traced_forward(model, in_shape, tracker, hooks)
    params = {id(p): p for p in model.parameters()}.values()
    trainable = sum(p.numel() for p in params if p.requires_grad)
    frozen = sum(p.numel() for p in params if not p.requires_grad)
    notes = []
    in_rows = sum(r.params for r in rows)
    if in_rows != trainable + frozen:
        notes.append(f"{trainable + frozen - in_rows:,} parameters belong to no leaf that ran")
    return ModelSummary(label, tuple(in_shape), rows, trainable + frozen, trainable,
                        frozen, sum(r.macs for r in rows), notes)


# ------------------------------------------------------------------ renderers

COLUMNS = ("name", "type", "output", "weights", "biases", "params", "rf", "jump", "macs",
           "fc_weights", "fc_biases")


def _cells(r: LayerRow, sep: bool) -> list[str]:
    n = (lambda v: f"{v:,}") if sep else str
    rf, jump = field_text(_as_field(r))
    return [
        r.name, r.type + (" (reused)" if r.shared else ""), "x".join(map(str, r.out_shape)),
        n(r.weights), n(r.biases), n(r.params), rf, jump, n(r.macs),
        "" if r.fc_weights is None else n(r.fc_weights),
        "" if r.fc_biases is None else n(r.fc_biases),
    ]


def _as_field(r: LayerRow) -> Field | None:
    if r.rf is None or r.jump is None:
        return None
    return Field(r.rf, r.jump, (0.0, 0.0), (0, 0))


def _totals(s: ModelSummary) -> list[str]:
    return [
        f"input {'x'.join(map(str, s.in_shape))}",
        f"parameters {s.params:,} (trainable {s.trainable:,}, frozen {s.frozen:,})",
        f"MACs per image {s.macs:,}",
        *s.notes,
    ]


# the order columns are kept in when a terminal is too narrow for all of them
TABLE_PRIORITY = ("name", "output", "params", "macs", "rf", "jump", "type", "weights",
                  "biases", "fc_weights", "fc_biases")


def table_columns(s: ModelSummary, width: int | None) -> list[str]:
    """The columns that fit ``width`` (all without one), whole ones dropped from the
    least important: a table squeezed to fit would cut every number short."""
    if width is None:
        return list(COLUMNS)
    cells = [_cells(r, sep=True) for r in s.rows]
    need = {c: max([len(c), *(len(row[i]) for row in cells)]) + 3
            for i, c in enumerate(COLUMNS)}
    kept: list[str] = []
    used = 1
    for c in TABLE_PRIORITY:
        if used + need[c] <= width or not kept:
            kept.append(c)
            used += need[c]
    return [c for c in COLUMNS if c in kept]


def render_table(s: ModelSummary, width: int | None = None) -> Any:
    """A ``rich`` Table (print it with a Console) of the columns that fit ``width``;
    the totals and any column left out are said below it, one line each."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cols = table_columns(s, width)
    t = Table(title=s.label or None)
    for c in cols:
        t.add_column(c, justify="left" if c in ("name", "type", "output") else "right",
                     no_wrap=True)
    index = [COLUMNS.index(c) for c in cols]
    for r in s.rows:
        cells = _cells(r, sep=True)
        t.add_row(*(cells[i] for i in index))
    lines = [Text(line) for line in _totals(s)]
    left = [c for c in COLUMNS if c not in cols]
    if left:
        lines += [Text(f"not shown at this width: {', '.join(left)}"),
                  Text("(-f md, csv or json has every column)")]
    return Group(t, *lines)


def render_markdown(s: ModelSummary) -> str:
    """A GitHub-flavoured Markdown table followed by the totals."""
    right = {c: c not in ("name", "type", "output") for c in COLUMNS}
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if right[c] else ":---" for c in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_cells(r, sep=True)) + " |" for r in s.rows]
    title = [f"**{s.label}**", ""] if s.label else []
    return "\n".join(title + lines + [""] + [f"- {t}" for t in _totals(s)]) + "\n"


def render_csv(s: ModelSummary) -> str:
    """One row per layer, plain integers (no separators); totals are left to JSON."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in s.rows:
        w.writerow(_cells(r, sep=False))
    return buf.getvalue()


def to_dict(s: ModelSummary) -> dict[str, Any]:
    return {
        "label": s.label,
        "input": list(s.in_shape),
        "layers": [asdict(r) for r in s.rows],
        "totals": {"params": s.params, "trainable": s.trainable, "frozen": s.frozen,
                   "macs": s.macs},
        "notes": s.notes,
    }


def render_json(s: ModelSummary) -> str:
    return json.dumps(to_dict(s), indent=2) + "\n"
