"""A written report of one run or of several (a sweep, a study): Markdown and HTML.

:func:`build_report` turns :class:`RunData` records into a small document model
(sections of tables, figures, code and one computed sentence each) and draws the
figures; :func:`render_markdown` and :func:`render_html` only format that model, so
the two outputs cannot drift apart. The HTML file is self-contained: figures are
base64 PNG data URIs, the style is inline, and a Content-Security-Policy forbids
scripts and every external fetch, so a report shared as one file shows the same
everywhere and cannot run anything. Every string from a run (labels, settings,
descriptions) is escaped.
"""

from __future__ import annotations

import base64
import html
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import convlab
from convlab.errors import ConvlabError
from convlab.report import findings as fd
from convlab.report.compare import (
    Comparison,
    cells,
    compare_runs,
    flatten,
    markdown_table,
    md_escape,
    right_aligned,
)
from convlab.report.data import SPLITS, ReportError, RunData, load_runs

# ------------------------------------------------------------------ document model


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    right: list[bool]  # right-align this column (numbers)
    caption: str = ""


@dataclass(frozen=True)
class Image:
    """A drawn figure: the PNG is embedded in HTML and linked from Markdown; the SVG
    sits beside it for papers and slides."""

    name: str
    caption: str
    png: Path
    svg: Path | None = None


@dataclass(frozen=True)
class Code:
    text: str
    summary: str = ""  # shown folded under this title in HTML


@dataclass(frozen=True)
class Text:
    text: str


Block = Table | Image | Code | Text


@dataclass(frozen=True)
class Section:
    title: str
    finding: fd.Finding | None = None
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    sections: list[Section]


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    figures: list[Path]


# ------------------------------------------------------------------ building


def build_report(runs: Sequence[RunData], fig_dir: Path, title: str = "") -> Report:
    """The document of ``runs`` (one run or several); figures are drawn into ``fig_dir``."""
    if not runs:
        raise ReportError("no runs to report on")
    fig_dir.mkdir(parents=True, exist_ok=True)
    if len(runs) == 1:
        r = runs[0]
        sections = _single_run_sections(r, fig_dir)
        default_title = f"Run {r.label}"
    else:
        sections = _multi_run_sections(runs, fig_dir)
        default_title = f"{len(runs)} runs: {_common_name(runs)}"
    subtitle = (f"made by convlab {convlab.__version__} on "
                f"{time.strftime('%Y-%m-%d %H:%M')} from {len(runs)} run folder"
                f"{'s' if len(runs) > 1 else ''}")
    return Report(title or default_title, subtitle, sections)


def _common_name(runs: Sequence[RunData]) -> str:
    paths = [r.path for r in runs if r.path]
    if not paths:
        return ", ".join(sorted({r.experiment for r in runs}))
    return Path(os.path.commonpath(paths)).name or "runs"


def _figure(fig_dir: Path, name: str, caption: str, draw: Any, *args: Any,
            **kwargs: Any) -> Image:
    png, svg = fig_dir / f"{name}.png", fig_dir / f"{name}.svg"
    draw(*args, [png, svg], **kwargs)
    return Image(name, caption, png, svg)


def _single_run_sections(r: RunData, fig_dir: Path) -> list[Section]:
    from convlab.report import plots

    sections = [Section("Settings", fd.settings_finding(r.config, r.params),
                        [_provenance(r), _config_code(r.config)])]
    sections.append(_model_section(r, "Model"))
    results = _results_table(r)
    sections.append(Section("Results", fd.final_metrics_finding(r.final),
                            [results] if results.rows else []))
    if r.curves:
        img = _figure(fig_dir, "learning_curves", "Loss and top-1 accuracy per epoch.",
                      plots.learning_curves, r.curves, title=r.label)
        sections.append(Section("Learning curves", fd.learning_curve_finding(r.curves), [img]))
    sections.extend(_grad_section(r, fig_dir))
    return sections


def _multi_run_sections(runs: Sequence[RunData], fig_dir: Path) -> list[Section]:
    from convlab.report import plots

    cmp = compare_runs(runs)
    names = cmp.descriptions()
    sections = [Section(
        "Settings", fd.runs_settings_finding(len(runs), cmp.settings),
        [_config_code(_shared_settings(runs, cmp), "settings shared by all runs")],
    )]
    header, body = cells(cmp)
    split = _eval_split(runs)
    sections.append(Section(
        "Comparison",
        fd.comparison_finding(names, [r.final.get(f"{split}.top1") for r in runs],
                              f"final {fd.split_name(split)} top-1", [r.status for r in runs],
                              [r.final.get("train.top1") for r in runs]),
        [Table(header, body, right_aligned(cmp),
               "Final metrics (last epoch) and the best epoch by validation (else test) top-1; "
               "accuracies in %; only the settings that differ between runs are shown.")],
    ))
    with_curves = [(n, r) for n, r in zip(names, runs, strict=True) if r.curves]
    if with_curves:
        img = _figure(fig_dir, "learning_curves", "Learning curves of every run.",
                      plots.overlaid_curves, {n: r.curves for n, r in with_curves},
                      splits=("train", split))
        sections.append(Section(
            "Learning curves",
            fd.overfitting_finding([n for n, _ in with_curves],
                                   [fd.overfit_of(r.curves) for _, r in with_curves]),
            [img]))
    for i, (axis, xs) in enumerate(sweep_axes(cmp, runs)):
        sections.append(_sweep_section(runs, axis, xs, split, fig_dir, i))
    values = [r.final.get(f"{split}.top1") for r in runs]
    metric = f"final {fd.split_name(split)} top-1"
    if any(v is not None for v in values):
        img = _figure(fig_dir, "ladder", f"{metric.capitalize()} of each run, in run order.",
                      plots.ablation_bars, names, values, ylabel=metric)
        train = [r.final.get("train.top1") for r in runs]
        sections.append(Section("Runs in order", fd.ablation_finding(names, values, metric,
                                                                     train),
                                [img]))
    best = _best_run(runs, split)
    called = names[list(runs).index(best)]
    sections.append(_model_section(best, f"Model of the best run ({called})"))
    for i, (r, n) in enumerate(zip(runs, names, strict=True)):  # every run that tracked them
        sections.extend(_grad_section(r, fig_dir, f" of {n}", f"gradient_norms_{i}"))
    return sections


def _eval_split(runs: Sequence[RunData]) -> str:
    return "test" if any("test.top1" in r.final for r in runs) else "val"


def _best_run(runs: Sequence[RunData], split: str) -> RunData:
    """Highest held-out top-1; ties go to the lower held-out loss."""
    return max(runs, key=lambda r: (r.final.get(f"{split}.top1", float("-inf")),
                                    -r.final.get(f"{split}.loss", float("inf"))))


def sweep_axes(cmp: Comparison, runs: Sequence[RunData]) -> list[tuple[str, list[float]]]:
    """The swept quantities worth a metric-vs-setting plot: the parameter count when it
    varies, and numeric settings with 3+ distinct values that do not simply follow the
    parameter count (channel widths would draw the same picture again)."""
    axes: list[tuple[str, list[float]]] = []
    params = [r.params for r in runs]
    if all(isinstance(p, int) for p in params) and len(set(params)) >= 3:
        axes.append(("parameters", [float(p) for p in params]))  # type: ignore[arg-type]
    for key in cmp.settings:
        vals = cmp.setting_values(key)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            continue
        xs = [float(v) for v in vals]
        if len(set(xs)) < 3:
            continue
        if axes and axes[0][0] == "parameters" and _same_order(xs, axes[0][1]):
            continue
        axes.append((key, xs))
    return axes[:3]


def _same_order(a: Sequence[float], b: Sequence[float]) -> bool:
    def sign(v: float) -> int:
        return (v > 0) - (v < 0)

    return all(sign(a[i] - a[j]) == sign(b[i] - b[j])
               for i in range(len(a)) for j in range(i + 1, len(a)))


def _sweep_section(runs: Sequence[RunData], axis: str, xs: list[float], split: str,
                   fig_dir: Path, i: int) -> Section:
    from convlab.report import plots

    train = [r.final.get("train.loss") for r in runs]
    ev = [r.final.get(f"{split}.loss") for r in runs]
    overfit = [fd.overfit_of(r.curves) for r in runs]
    name = fd.split_name(split)
    img = _figure(fig_dir, f"sweep_{i}_{re.sub(r'[^A-Za-z0-9]+', '_', axis)}",
                  f"Final train and {name} loss against {axis}.", plots.metric_vs_setting,
                  xs, {"train loss": train, f"{split} loss": ev}, xlabel=axis,
                  mark_min=f"{split} loss")
    finding = fd.sweep_finding(xs, train, ev, axis, [o.epoch if o else None for o in overfit],
                               eval_name=name)
    return Section(f"Loss against {axis}", finding, [img])


def _shared_settings(runs: Sequence[RunData], cmp: Comparison) -> dict[str, Any]:
    flat = flatten(runs[0].config)
    return {k: v for k, v in flat.items() if k not in set(cmp.settings)}


def _config_code(config: dict[str, Any], summary: str = "resolved config") -> Code:
    import yaml

    return Code(yaml.safe_dump(config, sort_keys=False, default_flow_style=None,
                               allow_unicode=True), summary)


def _provenance(r: RunData) -> Table:
    s, env = r.summary, r.env
    rows = [
        ("run folder", r.path or r.label),
        ("status", f"{r.status}" + (f": {s['message']}" if s.get("message") else "")),
        ("epochs", f"{s.get('epochs_done', '?')}/{s.get('epochs', '?')}"),
        ("parameters", f"{r.params:,}" if r.params is not None else "-"),
        ("wall time", f"{s['wall_s']:.1f} s" if isinstance(s.get("wall_s"), int | float)
         else "-"),
        ("images/s", f"{s['images_per_s']:,.0f}" if s.get("images_per_s") else "-"),
        ("device", " ".join(str(v) for v in (s.get("device") or env.get("device"),
                                              env.get("device_name")) if v) or "-"),
        ("versions", ", ".join(f"{k} {env[k]}" for k in ("convlab", "torch", "python")
                               if env.get(k)) or "-"),
        ("git", str(env.get("git") or "-")),
        ("data fingerprint", str((env.get("data") or {}).get("fingerprint") or "-")),
    ]
    return Table(["", ""], [list(row) for row in rows], [False, False])


def _results_table(r: RunData) -> Table:
    metrics = [m for m in ("loss", "top1", "top5")
               if any(f"{s}.{m}" in r.final for s in SPLITS)]
    header = ["split"] + [f"final {m}" + (" %" if m != "loss" else "") for m in metrics]
    be = r.best_epoch
    header += [f"best (epoch {be}) {m}" + (" %" if m != "loss" else "") for m in metrics]
    rows = []
    for s in SPLITS:
        if not any(f"{s}.{m}" in r.final for m in metrics):
            continue
        row = [s]
        for src in (r.final, r.best):
            row += [_metric_cell(src.get(f"{s}.{m}"), m) for m in metrics]
        rows.append(row)
    return Table(header, rows, [False] + [True] * (len(header) - 1),
                 "Train metrics are averaged over each epoch's batches while the weights "
                 "change; validation and test metrics are measured after the epoch.")


def _metric_cell(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if metric == "loss" else f"{100 * v:.2f}"


def model_summary(r: RunData) -> Any:
    """``convlab.analysis.summary.summarize`` of the run's architecture, built afresh
    from its config (no weights are loaded: a failed run still has a layer table, and
    pretrained weights are not fetched just to count parameters)."""
    from convlab.analysis.summary import summarize
    from convlab.config import validate_config
    from convlab.models import build_model

    if not r.input_shape or not r.num_classes:
        raise ReportError(f"{r.label}: the summary records no input shape")
    cfg = dict(r.config)
    model = dict(cfg.get("model") or {})
    if model.get("weights", "none") != "none":
        model["weights"] = "none"  # the same architecture, without a download
    cfg["model"] = model
    ec = validate_config(cfg, f"{r.label}: config")
    shape = tuple(int(v) for v in r.input_shape)
    net = build_model(ec.model, shape, int(r.num_classes))  # type: ignore[arg-type]
    return summarize(net, shape, label=str(model.get("name", "")))  # type: ignore[arg-type]


def _model_section(r: RunData, title: str) -> Section:
    try:
        s = model_summary(r)
    except (ConvlabError, ValueError, RuntimeError, KeyError, TypeError, ImportError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return Section(title, fd.Finding(f"The layer table could not be made: {msg}.",
                                         "warning"))
    rows = [[row.name, row.type + (" (reused)" if row.shared else ""),
             "x".join(map(str, row.out_shape)), f"{row.params:,}", f"{row.macs:,}"]
            for row in s.rows]
    table = Table(["layer", "type", "output", "params", "MACs"], rows,
                  [False, False, False, True, True],
                  f"Input {'x'.join(map(str, s.in_shape))}; {s.params:,} parameters "
                  f"({s.trainable:,} trainable); {s.macs:,} multiply-accumulates per image."
                  + "".join(f" {n}." for n in s.notes))
    finding = fd.layers_finding([(row.name, row.type, row.params) for row in s.rows], s.params)
    return Section(title, finding, [table])


def _grad_section(r: RunData, fig_dir: Path, suffix: str = "",
                  name: str = "gradient_norms") -> list[Section]:
    from convlab.report import plots

    if "step" not in r.steps or "total" not in r.steps:
        return []
    norms = {k: v for k, v in r.steps.items() if k not in ("step", "epoch")}
    img = _figure(fig_dir, name, "Gradient L2 norms per step (log scale).",
                  plots.gradient_norms, r.steps["step"], norms)
    return [Section(f"Gradient norms{suffix}", fd.grad_norm_finding(r.steps["step"], norms),
                    [img])]


# ------------------------------------------------------------------ Markdown


def _fence(text: str) -> str:
    ticks = max([len(m) for m in re.findall(r"`+", text)] + [2]) + 1
    return "`" * ticks


def render_markdown(report: Report, base: Path) -> str:
    """Markdown with figures linked relative to ``base`` (the folder of report.md)."""
    out = [f"# {md_escape(report.title)}", "", f"*{md_escape(report.subtitle)}*", ""]
    for sec in report.sections:
        out += [f"## {md_escape(sec.title)}", ""]
        if sec.finding is not None:
            out += [f"> {md_escape(sec.finding.text)}", ""]
        for b in sec.blocks:
            if isinstance(b, Table):
                out.append(markdown_table(b.header, b.rows, b.right))
                if b.caption:
                    out += [f"*{md_escape(b.caption)}*", ""]
            elif isinstance(b, Image):
                rel = Path(os.path.relpath(b.png, base)).as_posix()
                svg = (f" ([SVG]({Path(os.path.relpath(b.svg, base)).as_posix()}))"
                       if b.svg else "")
                out += [f"![{md_escape(b.caption)}]({rel})", "", f"*{md_escape(b.caption)}*{svg}",
                        ""]
            elif isinstance(b, Code):
                fence = _fence(b.text)
                if b.summary:
                    out += [f"{md_escape(b.summary).capitalize()}:", ""]
                out += [f"{fence}yaml", b.text.rstrip("\n"), fence, ""]
            else:
                out += [md_escape(b.text), ""]
    return "\n".join(out).rstrip("\n") + "\n"


# ------------------------------------------------------------------ HTML

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; " \
      "form-action 'none'"

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0; } h2 { border-bottom: 1px solid #ddd;
     padding-bottom: .2em; margin-top: 2em; }
.subtitle { color: #666; margin-top: .2em; }
.finding { background: #eef5fb; border-left: 4px solid #4c72b0; padding: .5em .8em; }
.finding.warning { background: #fdf3e7; border-left-color: #dd8452; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 3px 8px; white-space: nowrap; }
th { background: #f5f5f5; } td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: bottom; color: #666; font-size: 12px; text-align: left;
          white-space: normal; padding-top: .3em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #666; font-size: 13px; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: 12px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(t: Table) -> str:
    def cls(right: bool) -> str:
        return ' class="r"' if right else ""

    parts = ["<table>"]
    if t.caption:
        parts.append(f"<caption>{_e(t.caption)}</caption>")
    if any(t.header):
        parts.append("<thead><tr>" + "".join(f"<th{cls(r)}>{_e(h)}</th>" for h, r in
                                            zip(t.header, t.right, strict=True)) + "</tr></thead>")
    parts.append("<tbody>")
    for row in t.rows:
        parts.append("<tr>" + "".join(f"<td{cls(r)}>{_e(c)}</td>" for c, r in
                                      zip(row, t.right, strict=True)) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _html_image(b: Image) -> str:
    data = base64.b64encode(b.png.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(b.caption)}">'
            f"<figcaption>{_e(b.caption)}</figcaption></figure>")


def render_html(report: Report) -> str:
    """One self-contained HTML page: inline style, figures as data URIs, no scripts."""
    body = [f"<h1>{_e(report.title)}</h1>", f'<p class="subtitle">{_e(report.subtitle)}</p>']
    for sec in report.sections:
        body.append(f"<section><h2>{_e(sec.title)}</h2>")
        if sec.finding is not None:
            body.append(f'<p class="finding {_e(sec.finding.kind)}">{_e(sec.finding.text)}</p>')
        for b in sec.blocks:
            if isinstance(b, Table):
                body.append(_html_table(b))
            elif isinstance(b, Image):
                body.append(_html_image(b))
            elif isinstance(b, Code):
                pre = f"<pre>{_e(b.text)}</pre>"
                body.append(f"<details><summary>{_e(b.summary)}</summary>{pre}</details>"
                            if b.summary else pre)
            else:
                body.append(f"<p>{_e(b.text)}</p>")
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body) + "\n</body></html>\n"
    )


# ------------------------------------------------------------------ writing


def write_report(runs: Sequence[RunData], out: str | Path, title: str = "") -> ReportFiles:
    """Write ``report.md``, ``report.html`` and ``figures/*.{png,svg}`` into ``out``."""
    from convlab.runs import atomic_write

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        report = build_report(runs, out / "figures", title)
        md, page = out / "report.md", out / "report.html"
        atomic_write(md, render_markdown(report, out))
        atomic_write(page, render_html(report))
    except OSError as e:
        raise ReportError(f"{out}: cannot write the report ({e.strerror or e})") from None
    figures = [p for s in report.sections for b in s.blocks if isinstance(b, Image)
               for p in (b.png, b.svg) if p is not None]
    return ReportFiles(md, page, figures)


def write_grouped_report(
    groups: Sequence[tuple[str, str, Sequence[RunData]]], out: str | Path, title: str,
    intro: str = "", extra: Sequence[Section] = (),
) -> ReportFiles:
    """One document for several groups of runs (a study): each group's sections under a
    heading of its own, figures in ``figures/<group>/`` so their names cannot collide;
    then the ``extra`` sections (a study's probes, their figures already drawn under
    ``out``)."""
    from convlab.runs import atomic_write

    out = Path(out)
    sections: list[Section] = []
    total = 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        if intro:
            sections.append(Section("About this study", None, [Text(intro)]))
        for name, description, runs in groups:
            part = build_report(runs, out / "figures" / name, name)
            total += len(runs)
            sections.append(Section(f"{name}", None, [Text(description)] if description else []))
            sections += [Section(f"{name}: {s.title}", s.finding, s.blocks)
                         for s in part.sections]
        sections += extra
        subtitle = (f"made by convlab {convlab.__version__} on "
                    f"{time.strftime('%Y-%m-%d %H:%M')} from {total} run folders")
        report = Report(title, subtitle, sections)
        md, page = out / "report.md", out / "report.html"
        atomic_write(md, render_markdown(report, out))
        atomic_write(page, render_html(report))
    except OSError as e:
        raise ReportError(f"{out}: cannot write the report ({e.strerror or e})") from None
    figures = [p for s in sections for b in s.blocks if isinstance(b, Image)
               for p in (b.png, b.svg) if p is not None]
    return ReportFiles(md, page, figures)


def report_paths(paths: Sequence[str | Path], out: str | Path | None = None,
                 title: str = "") -> ReportFiles:
    """``convlab report``: find the runs under ``paths`` and write their report to
    ``out`` (default: ``<path>/report`` for one path, ``./report`` for several)."""
    runs = load_runs(paths)
    if out is None:
        out = Path(paths[0]) / "report" if len(paths) == 1 else Path("report")
    return write_report(runs, out, title)


__all__ = [
    "Code", "Image", "Report", "ReportFiles", "Section", "Table", "Text", "build_report",
    "model_summary", "render_html", "render_markdown", "report_paths", "sweep_axes",
    "write_report",
]
