"""How a run shows itself: a short ``repr``, an HTML card for notebooks (status, key
metrics, a small curve), its metrics as a pandas DataFrame and its curves as a matplotlib
Figure. :class:`convlab.runs.Run` delegates here.

Pure functions of a run's summary and metric rows, apart from the imports: pandas and
matplotlib are imported when asked for, so listing runs stays fast. Nothing here reads
the report package (it sits above runs).
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from convlab.errors import ConvlabError

SPLIT_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}


class ExtraMissing(ConvlabError):
    """An optional package (an extra of convlab) that a notebook helper needs."""


def need(module: str, what: str, extra: str = "notebook") -> Any:
    """Import ``module`` or say, in one line, which pip command provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExtraMissing(f"{what} needs {module.split('.')[0]}: "
                           f"pip install 'convlab[{extra}]'") from None


# ------------------------------------------------------------------ plain values


def pct(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.2f}%"


def key_metrics(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The few numbers worth a glance: held-out top-1 and loss, final train loss."""
    final = summary.get("final") or {}
    out = [(k, pct(final[k])) for k in ("test.top1", "val.top1") if final.get(k) is not None]
    out += [(k, f"{float(final[k]):.4f}") for k in ("test.loss", "train.loss")
            if final.get(k) is not None]
    return out


def epochs_text(summary: Mapping[str, Any]) -> str:
    return f"{summary.get('epochs_done', 0)}/{summary.get('epochs', '?')} epochs"


def short_repr(name: str, summary: Mapping[str, Any]) -> str:
    """``Run('mnist-quick/20261201-...', completed, 1/1 epochs, test.top1 98.91%)``."""
    parts = [repr(name), str(summary.get("status", "running")), epochs_text(summary)]
    metrics = key_metrics(summary)
    if metrics:
        parts.append(f"{metrics[0][0]} {metrics[0][1]}")
    return f"Run({', '.join(parts)})"


def curves(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, list[tuple[float, float]]]:
    """``split -> [(epoch, value)]`` for one metric of metrics.csv rows (blanks skipped)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        v = r.get(metric)
        if v in (None, "") or not math.isfinite(float(v)):
            continue
        out.setdefault(str(r["split"]), []).append((float(r["epoch"]), float(v)))
    return {s: sorted(p) for s, p in out.items()}


# ------------------------------------------------------------------ HTML


def sparkline_svg(series: Mapping[str, Sequence[tuple[float, float]]], title: str,
                  width: int = 220, height: int = 64, pad: int = 6) -> str:
    """A tiny inline SVG of a few curves on shared axes (no matplotlib: a run's card
    must render instantly, and a notebook of many runs stays small)."""
    points = [p for s in series.values() for p in s]
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 2 * pad) / (x1 - x0 or 1.0)
    sy = (height - 2 * pad - 10) / (y1 - y0 or 1.0)
    shapes = []
    for split, pts in series.items():
        color = SPLIT_COLORS.get(split, "#7f7f7f")
        coords = " ".join(f"{pad + (x - x0) * sx:.1f},{height - pad - (y - y0) * sy:.1f}"
                          for x, y in pts)
        if len(pts) == 1:
            cx, cy = coords.split(",")
            shapes.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
        else:
            shapes.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                          f'points="{coords}"><title>{html.escape(split)}</title></polyline>')
    legend = " ".join(f'<tspan fill="{SPLIT_COLORS.get(s, "#7f7f7f")}">{html.escape(s)}'
                      f'</tspan>' for s in series)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'style="background:#fafafa;border:1px solid #ddd;margin-right:6px">'
            f'<text x="{pad}" y="11" font-size="10" fill="#444">{html.escape(title)}: '
            f'{legend}</text>{"".join(shapes)}</svg>')


def run_html(name: str, summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """A run's notebook card: name, status, epochs, parameters, key metrics, two small
    curves (loss and top-1 per split)."""
    status = str(summary.get("status", "running"))
    color = {"completed": "#2ca02c", "running": "#1f77b4"}.get(status, "#d62728")
    cells = [("status", f'<b style="color:{color}">{html.escape(status)}</b>'),
             ("epochs", html.escape(epochs_text(summary)))]
    if summary.get("params") is not None:
        cells.append(("parameters", f"{int(summary['params']):,}"))
    cells += [(k, html.escape(v)) for k, v in key_metrics(summary)]
    if summary.get("wall_s") is not None:
        cells.append(("wall", f"{float(summary['wall_s']):.1f} s"))
    if summary.get("message"):
        cells.append(("message", html.escape(str(summary["message"]))))
    table = "".join(f'<tr><td style="text-align:left;color:#666;padding-right:10px">{k}</td>'
                    f'<td style="text-align:left">{v}</td></tr>' for k, v in cells)
    spark = sparkline_svg(curves(rows, "loss"), "loss") + sparkline_svg(
        curves(rows, "top1"), "top-1")
    return (f'<div class="convlab-run" style="font-family:sans-serif;font-size:13px">'
            f'<div><b>Run</b> <code>{html.escape(name)}</code></div>'
            f'<div style="display:flex;gap:12px;align-items:flex-start;margin-top:4px">'
            f'<table style="border-collapse:collapse">{table}</table><div>{spark}</div>'
            f'</div></div>')


class HtmlPage:
    """A self-contained HTML file (a report) that shows itself inline in a notebook,
    in an iframe so its styles do not leak into the notebook's."""

    def __init__(self, path: str | Path, height: int = 600, **files: Any) -> None:
        self.path = Path(path)
        self.height = height
        self.files = files
        for k, v in files.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"HtmlPage({str(self.path)!r})"

    def _repr_html_(self) -> str:
        page = self.path.read_text(encoding="utf-8")
        return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;'
                f'height:{self.height}px;border:1px solid #ddd"></iframe>')


# ------------------------------------------------------------------ pandas, matplotlib


def to_pandas(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Any:
    """metrics.csv as a DataFrame: one row per epoch and split (blank values as NaN)."""
    pd = need("pandas", "Run.to_pandas()")
    frame = pd.DataFrame([{c: (None if r.get(c) in ("", None) else r.get(c)) for c in columns}
                          for r in rows], columns=list(columns))
    for c in columns:
        if c != "split":
            frame[c] = pd.to_numeric(frame[c])
    return frame


_FIGURE: list[type] = []


def figure_class() -> type:
    """A matplotlib Figure that a notebook shows as a PNG by itself: a Figure made
    without pyplot has no display of its own until pyplot's inline backend is loaded."""
    if not _FIGURE:
        figure = need("matplotlib.figure", "Run.plot()", extra="notebook")

        class RunFigure(figure.Figure):  # type: ignore[misc,name-defined]
            def _repr_png_(self) -> bytes:
                buf = io.BytesIO()
                self.savefig(buf, format="png", dpi=100)
                return buf.getvalue()

        _FIGURE.append(RunFigure)
    return _FIGURE[0]


def plot(name: str, rows: Sequence[Mapping[str, Any]]) -> Any:
    """Loss and top-1 per split against the epoch, as a matplotlib Figure (not through
    pyplot: nothing global is touched, and a notebook shows the returned Figure once)."""
    from matplotlib.ticker import MaxNLocator

    fig = figure_class()(figsize=(9, 3.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric, scale in ((ax_loss, "loss", 1.0), (ax_acc, "top1", 100.0)):
        for split, pts in curves(rows, metric).items():
            ax.plot([p[0] for p in pts], [scale * p[1] for p in pts],
                    marker="o" if len(pts) < 12 else None, label=split,
                    color=SPLIT_COLORS.get(split))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if metric == "loss" else "top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(name, fontsize=10)
    return fig
