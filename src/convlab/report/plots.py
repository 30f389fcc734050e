"""The report's figures, as pure functions: plain lists and dicts in, image files out.

Each function takes data and one or more output paths; the suffix of each path
(``.png`` or ``.svg``) picks the format, so one drawing can be saved as both without
drawing twice. Figures are made with :class:`matplotlib.figure.Figure` directly, never
through ``pyplot``: no global figure state, no GUI backend (Agg renders PNG, the SVG
backend SVG), safe in threads and in tests. SVG output is deterministic (fixed hash
salt, no date) so a report made twice from the same runs is byte-identical.

One visual language in every figure: train, validation and test always have the same
line style and marker (train dashed with circles, validation dotted with squares, test
solid with triangles); one run's figures colour the splits, several runs' figures colour
the runs. Lines with few points get a marker on each, so a 1-epoch curve is a visible
point, not an invisible line of length zero; axes are fitted to the data; legends of
figures with many lines sit outside the plot area.

Every PNG carries, in a ``convlab-plot-areas`` text chunk, where its plot areas (and
the legends inside them) are, as figure fractions: a test can then check from the
rendered page that each plot area holds something drawn.
"""

from __future__ import annotations

import json
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
# steps.csv train-metric columns: {"step": [...], "at_epoch": [...], "train_loss": [...]}
StepsArg = Mapping[str, Sequence[float]]

FORMATS = ("png", "svg")
SPLIT_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#d62728"}
SPLIT_STYLES = {"train": "--", "val": ":", "test": "-"}
SPLIT_MARKERS = {"train": "o", "val": "s", "test": "^"}
SPLIT_WORDS = {"train": "train", "val": "validation", "test": "test"}
MARKER_MAX = 30  # a line of up to this many points marks each point
DPI = 110
AREAS_KEY = "convlab-plot-areas"


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


def plot_areas(fig: Figure) -> list[dict[str, Any]]:
    """Each plot area of ``fig`` (colour bars left out) as ``{"box": [x0, y0, w, h],
    "skip": [legend boxes inside it]}``, in figure fractions from the bottom left.
    Lays the figure out first: the positions are the saved ones."""
    fig.draw_without_rendering()
    to_fig = fig.transFigure.inverted()
    out = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>" or not ax.get_visible():
            continue
        legend = ax.get_legend()
        skip = []
        if legend is not None:
            b = legend.get_window_extent().transformed(to_fig)
            skip.append([round(v, 4) for v in (b.x0, b.y0, b.width, b.height)])
        out.append({"box": [round(v, 4) for v in ax.get_position().bounds], "skip": skip})
    return out


def save(fig: Figure, out: Outputs) -> list[Path]:
    """Write ``fig`` to every path in ``out`` (format from the suffix); return them."""
    import matplotlib

    written = []
    areas = json.dumps(plot_areas(fig))
    with matplotlib.rc_context({"svg.hashsalt": "convlab", "svg.fonttype": "path"}):
        for p in _paths(out):
            p.parent.mkdir(parents=True, exist_ok=True)
            fmt = p.suffix.lstrip(".").lower()
            meta: dict[str, Any] = {"Date": None} if fmt == "svg" else {AREAS_KEY: areas}
            fig.savefig(p, format=fmt, metadata=meta)
            written.append(p)
    return written


def _epochs(c: Mapping[str, Sequence[float]], n: int) -> list[float]:
    ep = list(c.get("epoch", []))
    return ep if len(ep) == n else list(range(1, n + 1))


def _percent_axis(ax: Axes, decimals: int | None = None) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=decimals))


def _fit_x(ax: Axes, xs: Sequence[float]) -> None:
    """x limits that fit the data with a margin (one point: a unit-wide window around
    it, not matplotlib's 0.945-1.050), whole-number ticks when the span is 3 or more."""
    from matplotlib.ticker import MaxNLocator

    finite = [x for x in xs if math.isfinite(x)]
    if not finite:
        return
    lo, hi = min(finite), max(finite)
    if hi - lo < 1e-9:
        ax.set_xlim(lo - 0.5, hi + 0.5)
        ax.set_xticks([lo])
        return
    pad = 0.04 * (hi - lo)
    ax.set_xlim(lo - pad, hi + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=hi - lo >= 3, nbins=8,
                                           steps=[1, 2, 2.5, 5, 10]))


def _marks(n: int, split: str, size: float = 4.0) -> dict[str, Any]:
    """Marker arguments: one marker per point for short lines, none for long ones."""
    if n > MARKER_MAX:
        return {}
    return {"marker": SPLIT_MARKERS.get(split, "o"), "ms": size}


def series_colors(n: int) -> list[Any]:
    """``n`` distinguishable colours: tab10 up to 10, tab20 up to 20 (pairs of hues,
    dark and light), beyond that evenly spaced hues of a cyclic map."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["hsv"](i / n) for i in range(n)]


def _steps_per_epoch(steps: StepsArg) -> float | None:
    s, e = list(steps.get("step", [])), list(steps.get("at_epoch", []))
    pairs = [(a, b) for a, b in zip(s, e, strict=False) if b > 0]
    return pairs[-1][0] / pairs[-1][1] if pairs else None


def _step_axis(ax: Axes, steps: StepsArg | None) -> None:
    """A second x axis on top counting optimizer steps, for a per-step curve."""
    spe = _steps_per_epoch(steps or {})
    if spe:
        top = ax.secondary_xaxis("top", functions=(lambda e: e * spe, lambda s: s / spe))
        top.set_xlabel("step", fontsize=8)
        top.tick_params(labelsize=7)


# ------------------------------------------------------------------ learning curves


def learning_curves(curves: CurvesArg, out: Outputs, title: str = "",
                    steps: StepsArg | None = None) -> list[Path]:
    """One run: loss (left) and top-1 accuracy (right) against the epoch for each split.

    ``steps`` (steps.csv train metrics) adds the train loss and accuracy of each log
    interval as a thin line at its fractional epoch: the shape of a 1-epoch run, and
    the noise around a longer run's epoch means. Beside it, a split measured only a
    couple of times is drawn as points: a straight line from epoch 0 to epoch 1 would
    claim a path that was never measured.
    """
    fig, (ax_loss, ax_acc) = _figure(9.5, 3.8, ncols=2)
    xs: list[float] = []
    if steps and steps.get("train_loss"):
        at = list(steps.get("at_epoch", []))
        for ax, metric in ((ax_loss, "train_loss"), (ax_acc, "train_top1")):
            ys = list(steps.get(metric, []))
            if ys and len(at) == len(ys):
                bx, by = binned(at, ys)
                ax.plot(bx, by, color=SPLIT_COLORS["train"], lw=1.0, alpha=0.55,
                        **_marks(len(by), "train", 2.5), label="train, per log interval")
                xs += at
    for split, c in curves.items():
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "top1")):
            ys = list(c.get(metric, []))
            if ys:
                ex = _epochs(c, len(ys))
                ls = "none" if steps and len(ys) <= 3 else SPLIT_STYLES.get(split, "-")
                ax.plot(ex, ys, color=SPLIT_COLORS.get(split), ls=ls,
                        lw=1.6, **_marks(len(ys), split, 6.0),
                        label=_t(SPLIT_WORDS.get(split, split)))
                xs += ex
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "top-1 accuracy")):
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        _fit_x(ax, xs)
        if steps:
            _step_axis(ax, steps)
        if ax.has_data():
            ax.legend(fontsize=8)
    _loss_scale(ax_loss)
    _percent_axis(ax_acc)
    if title:
        fig.suptitle(_t(title))
    return save(fig, out)


def overlaid_curves(runs: Mapping[str, CurvesArg], out: Outputs,
                    splits: Sequence[str] = ("train", "val", "test"), title: str = "",
                    steps: Mapping[str, StepsArg] | None = None) -> list[Path]:
    """Several runs: one colour per run, one line style and marker per split, loss and
    top-1 panels as in :func:`learning_curves`. The legend, outside the panels, names
    the runs by colour and the splits by style once each (not runs x splits entries).

    ``steps`` (label -> steps.csv train metrics) adds each run's per-interval train
    curve as a thin solid line: the main picture of 1- or 2-epoch runs.
    """
    from matplotlib.lines import Line2D

    fig, (ax_loss, ax_acc) = _figure(10, 4.4, ncols=2)
    colors = series_colors(len(runs))
    xs: list[float] = []
    drawn: set[str] = set()
    with_steps = False
    for color, (label, curves) in zip(colors, runs.items(), strict=True):
        st = (steps or {}).get(label) or {}
        at = list(st.get("at_epoch", []))
        for ax, metric in ((ax_loss, "train_loss"), (ax_acc, "train_top1")):
            ys = list(st.get(metric, []))
            if ys and len(ys) == len(at):
                bx, by = binned(at, ys)
                ax.plot(bx, by, color=color, lw=1.0, alpha=0.7, **_marks(len(by), "train", 2.5))
                xs += at
                with_steps = True
        for split in splits:
            c = curves.get(split)
            if not c:
                continue
            for ax, metric in ((ax_loss, "loss"), (ax_acc, "top1")):
                ys = list(c.get(metric, []))
                if ys:
                    ex = _epochs(c, len(ys))
                    ls = "none" if st and len(ys) <= 3 else SPLIT_STYLES.get(split, "-")
                    ax.plot(ex, ys, color=color, ls=ls, lw=1.4, **_marks(len(ys), split, 5.5))
                    xs += ex
                    drawn.add(split)
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "top-1 accuracy")):
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        _fit_x(ax, xs)
    _loss_scale(ax_loss)
    _percent_axis(ax_acc)
    handles = [Line2D([], [], color=c, lw=2.5, label=_t(lab))
               for c, lab in zip(colors, runs, strict=True)]
    handles += [Line2D([], [], color="#444", ls=SPLIT_STYLES.get(s, "-"),
                       marker=SPLIT_MARKERS.get(s, "o"), ms=4, label=SPLIT_WORDS.get(s, s))
                for s in splits if s in drawn]
    if with_steps:
        handles.append(Line2D([], [], color="#444", lw=1.0, alpha=0.7,
                              label="train, per log interval"))
    if handles:
        longest = max(len(h.get_label()) for h in handles)
        per_row = max(1, min(len(handles), 120 // (longest + 6)))
        fig.legend(handles=handles, loc="outside lower center", ncols=per_row, fontsize=7)
    if title:
        fig.suptitle(_t(title))
    return save(fig, out)


def step_curves(runs: Mapping[str, StepsArg], out: Outputs, title: str = "") -> list[Path]:
    """Train loss and top-1 of each log interval against the optimizer step, one colour
    per run (one run: the train colour); dotted vertical lines mark the epoch ends."""
    fig, (ax_loss, ax_acc) = _figure(10 if len(runs) > 1 else 9.5, 3.8, ncols=2)
    colors = [SPLIT_COLORS["train"]] if len(runs) == 1 else series_colors(len(runs))
    xs: list[float] = []
    ends: set[float] = set()
    for color, (label, st) in zip(colors, runs.items(), strict=True):
        sx = list(st.get("step", []))
        for ax, metric in ((ax_loss, "train_loss"), (ax_acc, "train_top1")):
            ys = list(st.get(metric, []))
            if ys and len(ys) == len(sx):
                bx, by = binned(sx, ys, 200)
                ax.plot(bx, by, color=color, lw=1.1, **_marks(len(by), "train", 3.0),
                        label=_t(label) if len(runs) > 1 else "train, per log interval")
                xs += sx
        at = list(st.get("at_epoch", []))
        ends |= {s for s, e in zip(sx, at, strict=False) if float(e).is_integer() and e > 0}
    for ax, metric in ((ax_loss, "train loss"), (ax_acc, "train top-1 accuracy")):
        ax.set(xlabel="step", ylabel=metric, title=f"{metric}, per log interval")
        _fit_x(ax, xs)
    _loss_scale(ax_loss)  # before the epoch lines: they are no data
    for ax in (ax_loss, ax_acc):
        for e in sorted(ends)[:-1] if len(ends) <= 40 else []:
            ax.axvline(e, color="#999", lw=0.6, ls=":")
    _percent_axis(ax_acc)
    if len(runs) > 1 and ax_loss.has_data():
        handles, labels = ax_loss.get_legend_handles_labels()
        per_row = max(1, min(len(labels), 120 // (max(map(len, labels)) + 6)))
        fig.legend(handles, labels, loc="outside lower center", ncols=per_row, fontsize=7)
    elif ax_loss.has_data():
        ax_loss.legend(fontsize=8)
    if title:
        fig.suptitle(_t(title))
    return save(fig, out)


# ------------------------------------------------------------------ sweeps and ladders


def use_log_x(x: Sequence[float]) -> bool:
    """Log scale when all values are positive and span at least a factor of 20
    (parameter counts, learning rates)."""
    pos = [v for v in x if v > 0]
    return len(pos) == len(x) and len(pos) > 1 and max(pos) / min(pos) >= 20


def tick_label(v: float) -> str:
    """A compact tick label: 20k, 1.2M, 0.05, 3e-4 (never 0.00030000000000000003)."""
    from convlab.report.findings import human_count

    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return human_count(v)
    if abs(v) >= 0.01:
        return f"{v:.3g}"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def log_ticks(values: Sequence[float], max_ticks: int = 8) -> list[float]:
    """Ticks for a log axis: the plotted values themselves when there are few and they
    are far enough apart not to collide (a twelfth of the span), else powers of ten,
    thinned to at most ``max_ticks``."""
    vs = sorted({float(v) for v in values if v > 0})
    if not vs:
        return []
    lo, hi = math.log10(vs[0]), math.log10(vs[-1])
    span = max(hi - lo, 1e-9)
    logs = [math.log10(v) for v in vs]
    if len(vs) <= max_ticks and all(b - a >= span / 12 for a, b in zip(logs, logs[1:],
                                                                        strict=False)):
        return vs
    first, last = math.floor(lo), math.ceil(hi)
    every = max(1, math.ceil((last - first + 1) / max_ticks))
    return [10.0 ** k for k in range(first, last + 1, every)]


def mean_by_x(pts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points sharing an x (repeats, seeds) -> one point at their mean, sorted by x: a
    line through several values at one x would be a vertical zig-zag."""
    groups: dict[float, list[float]] = {}
    for px, py in pts:
        groups.setdefault(px, []).append(py)
    return [(k, sum(v) / len(v)) for k, v in sorted(groups.items())]


def binned(xs: Sequence[float], ys: Sequence[float], max_points: int = 60
           ) -> tuple[list[float], list[float]]:
    """Consecutive points averaged in equal bins so that at most ``max_points`` remain:
    the per-interval accuracy of a batch of 2 is 0, 50 or 100%, and 1,000 such points
    are a solid block, not a curve. Fewer points pass through unchanged."""
    n = len(ys)
    if n <= max_points:
        return list(xs), list(ys)
    size = math.ceil(n / max_points)
    bx = [sum(xs[i:i + size]) / len(xs[i:i + size]) for i in range(0, n, size)]
    by = [sum(ys[i:i + size]) / len(ys[i:i + size]) for i in range(0, n, size)]
    return bx, by


def metric_vs_setting(
    x: Sequence[float], series: Mapping[str, Sequence[float | None]], out: Outputs,
    xlabel: str = "parameters", ylabel: str = "loss", log_x: bool | None = None,
    mark_min: str | None = None, title: str = "",
) -> list[Path]:
    """One line per series against a swept setting, e.g. ``{"train loss": [...],
    "test loss": [...]}`` against parameter count: the under/overfitting picture.

    Points are sorted by x; ``log_x=None`` decides by :func:`use_log_x`; ``mark_min``
    names a series whose minimum gets a marker (the best model). Log-axis ticks sit
    at the swept values when they fit (:func:`log_ticks`), written compactly.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    fig, (ax,) = _figure(6.4, 3.9)
    order = sorted(range(len(x)), key=lambda i: x[i])
    for name, ys in series.items():
        pts = [(float(x[i]), float(y)) for i in order
               if (y := ys[i]) is not None and math.isfinite(y)]
        if not pts:
            continue
        split = next((s for s in SPLIT_COLORS if name.startswith(s)), "")
        color = SPLIT_COLORS.get(split)
        means = mean_by_x(pts)
        repeated = len(means) < len(pts)
        ax.plot([p[0] for p in means], [p[1] for p in means], marker=SPLIT_MARKERS.get(split, "o"),
                ms=5, color=color, ls=SPLIT_STYLES.get(split, "-"),
                label=_t(f"{name} (mean)" if repeated else name))
        if repeated:  # runs that share a value (seeds, other settings): each as a dot
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, color=color, alpha=0.45,
                       marker=SPLIT_MARKERS.get(split, "o"), linewidths=0)
        if name == mark_min:
            bx, by = min(means, key=lambda p: p[1])
            ax.scatter([bx], [by], s=140, facecolors="none", edgecolors="black", zorder=5,
                       label=_t(f"lowest {name}"))
    if log_x if log_x is not None else use_log_x(x):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(log_ticks(x)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: tick_label(v)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        pos = [v for v in x if v > 0]
        if pos:
            ax.set_xlim(min(pos) / 1.5, max(pos) * 1.5)
    else:
        vals = sorted({float(v) for v in x})
        _fit_x(ax, vals)
        if len(vals) <= 8:
            ax.set_xticks(vals, [tick_label(v) for v in vals])
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
    """One bar per run in the given order (an ablation ladder), value written on each.

    The y axis starts at zero, so a bar twice as tall is twice the accuracy; the
    written values tell the small differences apart. A run without the value gets an
    empty slot marked "n/a", so the order stays readable.
    """
    fig, (ax,) = _figure(max(4.5, 0.85 * len(labels) + 1.5), 4.0)
    pos = list(range(len(labels)))
    heights = [v if v is not None else 0.0 for v in values]
    bars = ax.bar(pos, heights, color="#4c72b0")
    for b, v in zip(bars, values, strict=True):
        text = "n/a" if v is None else f"{100 * v:.1f}%" if percent else f"{v:.3g}"
        ax.annotate(text, (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    lines = [_t(lab).replace(", ", "\n") for lab in labels]  # one setting per line
    slanted = max((len(x) for lab in lines for x in lab.split("\n")), default=0) > 14
    ax.set_xticks(pos, lines, rotation=30 if slanted else 0,
                  ha="right" if slanted else "center", fontsize=8)
    ax.set(ylabel=_t(ylabel))
    present = [v for v in values if v is not None]
    top = max([*present, 0.0])
    if percent:
        _percent_axis(ax, decimals=0)
        ax.set_ylim(0.0, max(min(1.0, top) * 1.1, 0.05) if top <= 1 else top * 1.1)
        _hide_ticks_above(ax, 1.0)  # the headroom for the labels is not a 105% tick
    else:
        ax.set_ylim(min(0.0, *present) if present else 0.0, (top or 1.0) * 1.12)
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
    selection between are drawn (sixty thin lines show nothing), each in its own
    colour; the legend sits beside the plot, not over it. Few recorded steps get a
    marker each: one recorded step is a point, not an empty plot.
    """
    layers = [k for k in norms if k != "total"]
    shown = len(layers)
    if len(layers) > max_layers:
        idx = sorted({round(i * (len(layers) - 1) / (max_layers - 1)) for i in range(max_layers)})
        layers = [layers[i] for i in idx]
    fig, (ax,) = _figure(8.2 if layers else 6.5, 4.0)
    for color, name in zip(series_colors(len(layers)), layers, strict=True):
        ys = list(norms[name])
        ax.plot(steps[: len(ys)], _positive(ys), lw=1, alpha=0.9, color=color,
                **_marks(len(ys), "train", 3.0), ls="-", label=_t(name))
    if "total" in norms:
        ys = list(norms["total"])
        ax.plot(steps[: len(ys)], _positive(ys), lw=2.2, color="black", ls="-",
                **_marks(len(ys), "train", 4.0), label="total")
    if ax.has_data():
        _log_y(ax, [v for k in [*layers, "total"] if k in norms for v in norms[k]])
        note = f" ({len(layers)} of {shown} layers)" if shown > len(layers) else ""
        fig.legend(loc="outside right upper", fontsize=7, title=f"layer{note}",
                   title_fontsize=7)
    ax.set(xlabel="step", ylabel="gradient L2 norm")
    _fit_x(ax, [float(s) for s in steps])
    if title:
        ax.set_title(_t(title))
    return save(fig, out)


def _log_y(ax: Axes, values: Sequence[float]) -> None:
    """A log y axis whose labels cannot collide: 1-2-5 ticks over up to three decades,
    powers of ten (thinned to about six) over more, no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    decades = math.log10(max(pos) / min(pos)) if pos else 0.0
    subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=7))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: tick_label(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())


LOG_LOSS_RATIO = 100.0  # a loss panel spanning this factor or more gets a log y axis


def _loss_scale(ax: Axes) -> None:
    """A loss that falls by two orders of magnitude (2.3 to 0.001) is a flat line at the
    bottom of a linear axis: show it on a log axis, and say so in the label."""
    ys = [float(v) for line in ax.get_lines() for v in line.get_ydata()]
    pos = [v for v in ys if v > 0 and math.isfinite(v)]
    if pos and len(pos) == len([v for v in ys if math.isfinite(v)]) \
            and max(pos) / min(pos) >= LOG_LOSS_RATIO:
        _log_y(ax, pos)
        ax.set_ylabel(f"{ax.get_ylabel()} (log scale)")


def _positive(ys: Sequence[float]) -> list[float]:
    """Log axes cannot show 0 (a layer with no gradient that step): leave a gap."""
    return [y if y > 0 else math.nan for y in ys]
