"""The equivariance experiment on images: transform, run, undo, compare, draw.

For a shift ``T`` by ``k`` pixels (or a rotation by an angle) and the layers of a model
``F_1 .. F_N``, each layer's feature maps of the transformed image are transformed back
and compared with the feature maps of the original::

    error_l = || T_l^{-1} F_l(T x) - F_l(x) || / || F_l(x) ||

where ``T_l`` shifts by ``k / J_l`` units (``J_l`` the layer's jump, the product of the
strides so far) or rotates by the same angle. Convolutions and point-wise layers give
an error of zero for shifts (on units away from the border); pooling only for shifts by
multiples of its stride; rotations by a generic kernel are not undone at all, which is
the point of the experiment (Goodfellow et al., "Deep Learning", 9.2; Cohen & Welling,
"Group Equivariant CNNs", 2016).

The function takes any ``nn.Module`` and a batch of images, so a trained model from a
run folder (its ``model.safetensors``, see :func:`common.load_weights`) plugs in as is.
Figures are drawn with matplotlib's Agg canvas (no display, no global pyplot state).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from convlab.analysis.common import AnalysisError
from convlab.analysis.probe import (
    Boundary,
    layer_units,
    rel_error,
    resolve_layer,
    shift_image,
    valid_region,
)
from convlab.analysis.receptive_field import Field, first_tensor, receptive_fields


@dataclass(frozen=True)
class Transform:
    """A shift by ``amount`` pixels (down and right) or a rotation by ``amount`` degrees."""

    kind: Literal["shift", "rotate"]
    amount: float
    boundary: Boundary = "circular"  # shifts only: wrap around or let zeros in

    def describe(self) -> str:
        if self.kind == "shift":
            return f"{self.boundary} shift by ({int(self.amount)}, {int(self.amount)}) pixels"
        kind = "exact rot90" if self.quarter_turns is not None else "bilinear, zeros outside"
        return f"rotation by {self.amount:g} degrees ({kind})"

    @property
    def quarter_turns(self) -> int | None:
        q = self.amount / 90
        return int(q) % 4 if self.kind == "rotate" and q == int(q) else None

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Transform images (B, C, H, W)."""
        if self.kind == "shift":
            return shift_image(x, int(self.amount), self.boundary)
        return _rotate(x, self.amount, self.quarter_turns)

    def undo(self, f: torch.Tensor, jump: int) -> tuple[torch.Tensor, str]:
        """Transform feature maps (B, C, h, w) back; the note says how."""
        if self.kind == "shift":
            k = int(self.amount)
            t = round(k / jump)
            # short: the table must fit 80 columns
            note = f"back by {t}" + ("" if k % jump == 0 else " ~")  # ~: see render_table
            return shift_image(f, -t, self.boundary), note
        return _rotate(f, -self.amount, None if self.quarter_turns is None
                       else (-self.quarter_turns) % 4), f"rotated back by {-self.amount:g}"


def _rotate(x: torch.Tensor, angle: float, quarter_turns: int | None) -> torch.Tensor:
    if quarter_turns is not None:  # counter-clockwise, like torchvision's rotate
        return torch.rot90(x, quarter_turns, dims=(-2, -1))
    from torchvision.transforms.functional import InterpolationMode, rotate

    return rotate(x, angle, interpolation=InterpolationMode.BILINEAR, fill=0.0)


@dataclass(frozen=True)
class LayerEquivariance:
    """One row of the per-layer table."""

    layer: str
    shape: tuple[int, ...]
    jump: int | None
    rf: int | None
    error: float | None  # whole map
    interior: float | None  # units that see no border (shifts) / inside the disk (rotations)
    note: str

    @property
    def feature_map(self) -> bool:
        """A (C, h, w) map the transform was undone on (not a vector, not a 1x1 map,
        whose rows compare the outputs as they are: invariance)."""
        return is_feature_map(self.shape)


def is_feature_map(shape: tuple[int, ...]) -> bool:
    """``shape`` (C, h, w) without the batch: a map with some extent to transform."""
    return len(shape) == 3 and shape[-2:] != (1, 1)


@dataclass
class EquivarianceResult:
    transform: Transform
    image: torch.Tensor  # (C, H, W) the first image
    transformed: torch.Tensor  # (C, H, W)
    layers: list[LayerEquivariance]
    maps: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # layer -> (F(x)[0], T^-1 F(Tx)[0]), each (C, h, w), for the figures


def _capture(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of the named layers, stopping the forward pass after the last of them."""
    out: dict[str, torch.Tensor] = {}

    class Done(Exception):
        pass

    hooks = []
    for n in names:
        def hook(_m: nn.Module, _i: Any, o: Any, n: str = n) -> None:
            t = first_tensor(o)
            if t is not None and n not in out:
                out[n] = t
            if len(out) == len(names):
                raise Done

        hooks.append(model.get_submodule(n).register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    except Done:
        pass
    finally:
        for h in hooks:
            h.remove()
    return out


def equivariance_experiment(
    model: nn.Module, images: torch.Tensor, transform: Transform, layers: int | str | None = None,
) -> EquivarianceResult:
    """Compare F_l(x) with T_l^{-1} F_l(T x) for the first ``layers`` units of ``model``.

    ``images`` is a batch (B, C, H, W); ``layers`` a count of :func:`probe.layer_units`
    or the name of the last layer to include (default: every unit).
    """
    if images.dim() != 4:
        raise AnalysisError(f"images must be a batch (B, C, H, W), got shape "
                            f"{tuple(images.shape)}")
    units = layer_units(model)
    last = resolve_layer(model, layers if layers is not None else len(units))
    names = units[: units.index(last) + 1] if last in units else [last]
    twin = copy.deepcopy(model).double().eval()
    x = images.double()
    tx = transform.apply(x)
    fields: dict[str, Field | None] = receptive_fields(twin, tuple(x.shape[1:]))
    fa, fb = _capture(twin, names, x), _capture(twin, names, tx)
    rows, maps = [], {}
    for n in names:
        a, b = fa.get(n), fb.get(n)
        f = fields.get(n)
        jump = f.jump[0] if f is not None else None
        rf = max(f.size) if f is not None else None
        if a is None or b is None:
            rows.append(LayerEquivariance(n, (), jump, rf, None, None, "did not run"))
            continue
        if not is_feature_map(tuple(a.shape[1:])):
            err = rel_error(b - a, a)
            rows.append(LayerEquivariance(n, tuple(a.shape[1:]), jump, rf, err, None,
                                          "invariance"))
            continue
        undone, note = transform.undo(b, jump or 1)
        err = rel_error(undone - a, a)
        interior = _interior_error(transform, a, b, f, tuple(x.shape[-2:]))
        rows.append(LayerEquivariance(n, tuple(a.shape[1:]), jump, rf, err, interior, note))
        maps[n] = (a[0].float(), undone[0].float())
    return EquivarianceResult(transform, x[0].float(), tx[0].float(), rows, maps)


def _interior_error(
    t: Transform, a: torch.Tensor, b: torch.Tensor, f: Field | None, in_hw: tuple[int, int]
) -> float | None:
    """The error away from the border: where neither padding nor lost pixels reach."""
    if f is None:
        return None
    jump = f.jump[0]
    if t.kind == "shift":
        k = int(t.amount)
        region = valid_region(f, k, in_hw, tuple(a.shape[-2:]))
        if region is None or region[0].stop <= region[0].start or region[1].stop <= region[1].start:
            return None
        ref = shift_image(a, round(k / jump), t.boundary)[..., region[0], region[1]]
        return rel_error(b[..., region[0], region[1]] - ref, ref)
    h, w = a.shape[-2:]  # rotations: a disk that stays inside the map both ways round
    undone, _ = t.undo(b, jump)
    radius = min(h, w) / 2 - math.ceil(max(f.size) / jump / 2) - 1
    if radius <= 0:
        return None
    yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2,
                            indexing="ij")
    mask = (yy**2 + xx**2) <= radius**2
    return rel_error((undone - a)[..., mask], a[..., mask])


# ------------------------------------------------------------------ inputs


def synthetic_image(shape: tuple[int, int, int]) -> torch.Tensor:
    """A deterministic test picture (C, H, W) in [0, 1]: a square, a bar and a disk.

    Off-centre and asymmetric on purpose, so that shifts and rotations are visible.
    """
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    img = torch.zeros(h, w)
    img[(yy >= 0.15 * h) & (yy < 0.4 * h) & (xx >= 0.15 * w) & (xx < 0.4 * w)] = 1.0  # square
    img[(abs(yy - xx * h / w) < 0.06 * h) & (yy > 0.5 * h)] = 0.7  # diagonal bar, lower half
    cy, cx, r = 0.7 * h, 0.3 * w, 0.12 * min(h, w)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = 0.5  # disk
    out = img.expand(c, h, w).clone()
    for i in range(1, c):  # colour channels differ a little, so channels are distinguishable
        out[i] = out[i] * (1 - 0.2 * i / c)
    return out


def load_image(path: str | Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """An image file as (C, H, W) in [0, 1], converted to C channels and resized to H x W."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB").resize((w, h))
            data = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()) / 255.0
    except (OSError, UnidentifiedImageError) as e:
        raise AnalysisError(f"--image {path}: cannot read the image ({e})") from None
    img = data.view(h, w, -1).permute(2, 0, 1)
    if img.shape[0] != c:
        raise AnalysisError(f"--image {path}: the model takes {c} channels; expected 1 or 3")
    return img


# ------------------------------------------------------------------ figures


def _save(fig: Any, path: Path) -> None:
    """Write to a temporary name in the same folder, then rename: never half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    os.replace(tmp, path)


def _figure(rows: int, cols: int) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.2 * cols, 2.2 * rows))
    FigureCanvasAgg(fig)
    return fig


def _show(ax: Any, img: torch.Tensor, title: str, cmap: str = "gray") -> None:
    arr = img.detach().cpu()
    if arr.dim() == 3:
        arr = arr[0] if arr.shape[0] == 1 else arr.permute(1, 2, 0).clamp(0, 1)
    ax.imshow(arr.numpy(), cmap=cmap)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def save_figures(
    result: EquivarianceResult, out_dir: str | Path, channels: int = 4
) -> list[Path]:
    """``input.png`` and one ``NN_<layer>.png`` per layer: F(x), T^-1 F(Tx), |difference|.

    Also ``errors.csv`` with the per-layer table. Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    fig = _figure(1, 2)
    axes = fig.subplots(1, 2)
    _show(axes[0], result.image, "image x")
    _show(axes[1], result.transformed, f"T x: {result.transform.describe()}")
    paths.append(out / "input.png")
    _save(fig, paths[-1])
    for i, (name, (a, undone)) in enumerate(result.maps.items(), 1):
        k = min(channels, a.shape[0])
        fig = _figure(3, k)
        axes = fig.subplots(3, k, squeeze=False)
        diff = (undone - a).abs()
        for c in range(k):
            _show(axes[0][c], a[c], f"F(x) ch {c}", "viridis")
            _show(axes[1][c], undone[c], f"T^-1 F(Tx) ch {c}", "viridis")
            _show(axes[2][c], diff[c], f"|diff| ch {c} (max {float(diff[c].max()):.2g})",
                  "magma")
        fig.suptitle(f"{name}: {result.transform.describe()}", fontsize=9)
        paths.append(out / f"{i:02d}_{_safe(name)}.png")
        _save(fig, paths[-1])
    table = out / "errors.csv"
    tmp = table.with_name(".errors.csv.tmp")
    tmp.write_text(render_csv(result), encoding="utf-8")
    os.replace(tmp, table)
    paths.append(table)
    return paths


def _num(v: float | int | None, spec: str = ".3e") -> str:
    return "" if v is None else format(v, spec) if isinstance(v, float) else str(v)


def render_csv(result: EquivarianceResult) -> str:
    lines = ["layer,shape,jump,rf,rel_error,rel_error_interior,note"]
    for r in result.layers:
        lines.append(",".join([r.layer, "x".join(map(str, r.shape)), _num(r.jump), _num(r.rf),
                               _num(r.error), _num(r.interior), f'"{r.note}"']))
    return "\n".join(lines) + "\n"


def render_table(result: EquivarianceResult) -> Any:
    from rich import box
    from rich.table import Table

    # compact (no inner rules, 3 significant digits) so that it fits 80 columns
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
              title=f"equivariance to {result.transform.describe()}",
              caption="~: approximate, the shift is not a multiple of the layer's jump; "
                      "invariance: not a feature map, compared as is")
    for name in ("layer", "output", "jump", "rf", "rel. error", "interior", "undo"):
        t.add_column(name, no_wrap=name in ("layer", "output"))
    for r in result.layers:
        t.add_row(r.layer, "x".join(map(str, r.shape)), _num(r.jump), _num(r.rf),
                  _num(r.error, ".2e"), _num(r.interior, ".2e"), r.note)
    return t
