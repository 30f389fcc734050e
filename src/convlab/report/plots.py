"""The report's figures, as pure functions: plain lists and dicts in, image files out.

Each function takes data and one or more output paths; the suffix of each path
(``.png`` or ``.svg``) picks the format, so one drawing can be saved as both without
drawing twice. Figures are made with :class:`matplotlib.figure.Figure` directly, never
through ``pyplot``: no global figure state, no GUI backend (Agg renders PNG, the SVG
backend SVG), safe in threads and in tests. SVG output is deterministic (fixed hash
salt, no date) so a report made twice from the same runs is byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Outputs = str | PathLike[str] | Sequence[str | PathLike[str]]
# split -> {"epoch": [...], "loss": [...], "top1": [...]}
CurvesArg = Mapping[str, Mapping[str, Sequence[float]]]

FORMATS = ("png", "svg")
SPLIT_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#d62728"}
SPLIT_STYLES = {"train": "--", "val": ":", "test": "-"}
DPI = 110



def _t(text: str) -> str:
    """A user string (run label, setting, layer name) as literal text: matplotlib reads
    text between two ``$`` as TeX, which garbles ``a$b$c`` and raises on bad TeX."""
    return text.replace("$", r"\$")


def _paths(out: Outputs) -> list[Path]:
    paths = [Path(out)] if isinstance(out, str | PathLike) else [Path(p) for p in out]
    if not paths:
        raise ValueError("no output path given")
    for p in paths:
        if p.suffix.lstrip(".").lower() not in FORMATS:
            raise ValueError(f"{p}: expected a .png or .svg file name")
    return paths


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


def save(fig: Figure, out: Outputs) -> list[Path]:
    """Write ``fig`` to every path in ``out`` (format from the suffix); return them."""
    import matplotlib

    written = []
    with matplotlib.rc_context({"svg.hashsalt": "convlab", "svg.fonttype": "path"}):
        for p in _paths(out):
            p.parent.mkdir(parents=True, exist_ok=True)
            fmt = p.suffix.lstrip(".").lower()
            meta: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
            fig.savefig(p, format=fmt, metadata=meta)
            written.append(p)
    return written


def _epochs(c: Mapping[str, Sequence[float]], n: int) -> list[float]:
    ep = list(c.get("epoch", []))
    return ep if len(ep) == n else list(range(1, n + 1))


def _integer_ticks(ax: Axes) -> None:
    """Epochs are whole numbers: no tick at epoch 1.5."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _percent_axis(ax: Axes) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0))


# ------------------------------------------------------------------ learning curves


def learning_curves(curves: CurvesArg, out: Outputs, title: str = "") -> list[Path]:
    """One run: loss (left) and top-1 accuracy (right) per epoch for each split."""
    fig, (ax_loss, ax_acc) = _figure(9, 3.6, ncols=2)
    for split, c in curves.items():
        color = SPLIT_COLORS.get(split)
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "top1")):
            ys = list(c.get(metric, []))
            if ys:
                ax.plot(_epochs(c, len(ys)), ys, marker="o", ms=3, color=color,
                        ls=SPLIT_STYLES.get(split, "-"), label=_t(split))
    _finish_curves(ax_loss, ax_acc, title)
    return save(fig, out)


def _finish_curves(ax_loss: Axes, ax_acc: Axes, title: str) -> None:
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="top-1 accuracy")
    _percent_axis(ax_acc)
    for ax in (ax_loss, ax_acc):
        _integer_ticks(ax)
        if ax.has_data():
            ax.legend(fontsize=8)
    if title:
        ax_loss.figure.suptitle(_t(title))


def overlaid_curves(runs: Mapping[str, CurvesArg], out: Outputs,
                    splits: Sequence[str] = ("train", "test"), title: str = "") -> list[Path]:
    """Several runs: one colour per run, one line style per split (train dashed, val
    dotted, test solid), loss and top-1 panels as in :func:`learning_curves`."""
    from matplotlib import colormaps

    fig, (ax_loss, ax_acc) = _figure(10, 4.2, ncols=2)
    cmap = colormaps["tab10" if len(runs) <= 10 else "viridis"]
    for i, (label, curves) in enumerate(runs.items()):
        color = cmap(i if len(runs) <= 10 else i / max(len(runs) - 1, 1))
        for split in splits:
            c = curves.get(split)
            if not c:
                continue
            for ax, metric in ((ax_loss, "loss"), (ax_acc, "top1")):
                ys = list(c.get(metric, []))
                if ys:
                    ax.plot(_epochs(c, len(ys)), ys, color=color, ls=SPLIT_STYLES.get(split, "-"),
                            lw=1.4, label=_t(f"{label} ({split})"))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="top-1 accuracy")
    _percent_axis(ax_acc)
    for ax in (ax_loss, ax_acc):
        _integer_ticks(ax)
    if ax_loss.has_data():
        style = " / ".join(f"{s} {_style_word(s)}" for s in splits)
        handles, labels = ax_loss.get_legend_handles_labels()
        per_row = max(1, 110 // (max(map(len, labels)) + 6))  # long labels: fewer per row
        fig.legend(handles, labels, loc="outside lower center",
                   ncols=min(per_row, len(labels)), fontsize=7,
                   title=f"line style: {style}", title_fontsize=7)
    if title:
        fig.suptitle(_t(title))
    return save(fig, out)


def _style_word(split: str) -> str:
    return {"--": "dashed", ":": "dotted", "-": "solid"}[SPLIT_STYLES.get(split, "-")]


# ------------------------------------------------------------------ sweeps and ladders


def use_log_x(x: Sequence[float]) -> bool:
    """Log scale when all values are positive and span at least a factor of 20
    (parameter counts, learning rates)."""
    pos = [v for v in x if v > 0]
    return len(pos) == len(x) and len(pos) > 1 and max(pos) / min(pos) >= 20


def metric_vs_setting(
    x: Sequence[float], series: Mapping[str, Sequence[float | None]], out: Outputs,
    xlabel: str = "parameters", ylabel: str = "loss", log_x: bool | None = None,
    mark_min: str | None = None, title: str = "",
) -> list[Path]:
    """One line per series against a swept setting, e.g. ``{"train loss": [...],
    "test loss": [...]}`` against parameter count: the under/overfitting picture.

    Points are sorted by x; ``log_x=None`` decides by :func:`use_log_x`; ``mark_min``
    names a series whose minimum gets a marker (the best model).
    """
    fig, (ax,) = _figure(6, 3.8)
    order = sorted(range(len(x)), key=lambda i: x[i])
    for name, ys in series.items():
        pts = [(float(x[i]), float(y)) for i in order
               if (y := ys[i]) is not None and math.isfinite(y)]
        if not pts:
            continue
        color = next((c for s, c in SPLIT_COLORS.items() if name.startswith(s)), None)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, color=color,
                ls=next((st for s, st in SPLIT_STYLES.items() if name.startswith(s)), "-"),
                label=_t(name))
        if name == mark_min:
            bx, by = min(pts, key=lambda p: p[1])
            ax.scatter([bx], [by], s=120, facecolors="none", edgecolors="black", zorder=5,
                       label=_t(f"lowest {name}"))
    if log_x if log_x is not None else use_log_x(x):
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        from convlab.report.findings import human_count

        ax.set_xscale("log")  # ticks at 1, 2, 5 x 10^k, written 20k / 1.2M, no minor labels
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human_count(v)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel=_t(xlabel), ylabel=_t(ylabel))
    if ylabel.startswith("top"):
        _percent_axis(ax)
    if ax.has_data():
        ax.legend(fontsize=8)
    if title:
        ax.set_title(_t(title))
    return save(fig, out)


def ablation_bars(labels: Sequence[str], values: Sequence[float | None], out: Outputs,
                  ylabel: str = "final test top-1", percent: bool = True,
                  title: str = "") -> list[Path]:
    """One bar per run in the given order (an ablation ladder), value printed on top;
    a run without the value gets an empty slot, so the order stays readable."""
    fig, (ax,) = _figure(max(4.5, 0.8 * len(labels) + 1.5), 4.0)
    pos = list(range(len(labels)))
    heights = [v if v is not None else 0.0 for v in values]
    bars = ax.bar(pos, heights, color="#4c72b0")
    for b, v in zip(bars, values, strict=True):
        if v is not None:
            ax.annotate(f"{100 * v:.1f}%" if percent else f"{v:.3g}",
                        (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
    lines = [_t(lab).replace(", ", "\n") for lab in labels]  # one setting per line
    slanted = max((len(x) for lab in lines for x in lab.split("\n")), default=0) > 14
    ax.set_xticks(pos, lines, rotation=30 if slanted else 0,
                  ha="right" if slanted else "center", fontsize=8)
    ax.set(ylabel=_t(ylabel))
    present = [v for v in values if v is not None]
    if percent:
        _percent_axis(ax)
        if present:  # zoom in on the differences, not on the distance from zero
            lo, hi = min(present), max(present)
            pad = max(0.02, (hi - lo) * 0.3)
            ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) + pad / 3)
            _hide_ticks_above(ax, 1.0)  # the headroom for the labels is not a 101% tick
    ax.grid(False, axis="x")
    if title:
        ax.set_title(_t(title))
    return save(fig, out)


def _hide_ticks_above(ax: Axes, limit: float) -> None:
    ax.set_yticks([t for t in ax.get_yticks() if t <= limit + 1e-9])


# ------------------------------------------------------------------ gradients


def gradient_norms(steps: Sequence[float], norms: Mapping[str, Sequence[float]], out: Outputs,
                   title: str = "", max_layers: int = 12) -> list[Path]:
    """Total (thick, black) and per-layer gradient L2 norms against the step, log y.

    With more than ``max_layers`` layers only the first and last ones and an even
    selection between are drawn: sixty thin lines show nothing.
    """
    fig, (ax,) = _figure(7, 4.0)
    layers = [k for k in norms if k != "total"]
    if len(layers) > max_layers:
        idx = sorted({round(i * (len(layers) - 1) / (max_layers - 1)) for i in range(max_layers)})
        layers = [layers[i] for i in idx]
    for name in layers:
        ys = list(norms[name])
        ax.plot(steps[: len(ys)], _positive(ys), lw=1, alpha=0.8, label=_t(name))
    if "total" in norms:
        ys = list(norms["total"])
        ax.plot(steps[: len(ys)], _positive(ys), lw=2.2, color="black", label="total")
    if ax.has_data():
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncols=2 if len(layers) > 6 else 1)
    ax.set(xlabel="step", ylabel="gradient L2 norm")
    if title:
        ax.set_title(_t(title))
    return save(fig, out)


def _positive(ys: Sequence[float]) -> list[float]:
    """Log axes cannot show 0 (a layer with no gradient that step): leave a gap."""
    return [y if y > 0 else math.nan for y in ys]
