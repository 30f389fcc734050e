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
    format_cell,
    markdown_table,
    md_escape,
    render_csv,
    right_aligned,
    seed_noise_sentence,
    setting_names,
)
from convlab.report.data import SPLITS, ReportError, RunData, load_runs

# ------------------------------------------------------------------ document model


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    right: list[bool]  # right-align this column (numbers)
    caption: str = ""
    key: int | None = None  # the column of the key metric (must be visible at once)
    css: str = ""  # an HTML class: "comparison" for the comparison table


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


@dataclass(frozen=True)
class Details:
    """Blocks folded under a summary line in HTML (``<details>``), and in Markdown
    (GitHub renders the same element): the full table beside the short one."""

    summary: str
    blocks: list[Table | Text]


@dataclass(frozen=True)
class Link:
    """A file written beside the report (the comparison as CSV)."""

    text: str
    path: Path


Block = Table | Image | Code | Text | Details | Link


@dataclass(frozen=True)
class Section:
    title: str
    finding: fd.Finding | None = None
    blocks: list[Block] = field(default_factory=list)
    level: int = 1  # 1: a top-level section; 2: one inside the section before (a study's group)


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
        default_title = r.description or f"Run {r.label}"
        source = f"run {r.label}"
    else:
        sections = _multi_run_sections(runs, fig_dir)
        described = {r.description for r in runs}
        common = described.pop() if len(described) == 1 else ""
        default_title = (f"{common} ({len(runs)} runs)" if common
                         else f"{len(runs)} runs: {_common_name(runs)}")
        source = f"{len(runs)} run folders"
    subtitle = (f"made by convlab {convlab.__version__} on "
                f"{time.strftime('%Y-%m-%d %H:%M')} from {source}")
    return Report(title or default_title, subtitle, sections)


def _common_name(runs: Sequence[RunData]) -> str:
    """The folder that holds the runs, named for what it is: a sweep's folder, not the
    ``runs/<experiment>`` folders a sweep keeps its trials in (``lr-pair (mnist-lr)``)."""
    paths = [r.path for r in runs if r.path]
    if not paths:
        return ", ".join(sorted({r.experiment for r in runs}))
    folder = Path(os.path.commonpath(paths))
    experiments = {r.experiment for r in runs}
    inner = []
    while folder.name in experiments | {"runs"} and folder.parent != folder:
        inner.append(folder.name)
        folder = folder.parent
    shown = [n for n in inner if n != "runs"]
    return f"{folder.name or 'runs'}" + (f" ({', '.join(shown)})" if shown else "")


def _figure(fig_dir: Path, name: str, caption: str, draw: Any, *args: Any,
            **kwargs: Any) -> Image:
    png, svg = fig_dir / f"{name}.png", fig_dir / f"{name}.svg"
    draw(*args, [png, svg], **kwargs)
    return Image(name, caption, png, svg)


def _single_run_sections(r: RunData, fig_dir: Path) -> list[Section]:
    from convlab.report import plots

    sections = [Section("Settings", fd.settings_finding(r.config, r.params, r.sizes),
                        [_provenance(r), _config_code(r.config)])]
    sections.append(_model_section(r, "Model"))
    results = _results_table(r)
    sections.append(Section("Results", fd.final_metrics_finding(r.final),
                            [results] if results.rows else []))
    short = r.epochs_done <= SHORT_EPOCHS and bool(r.train_steps)
    if r.curves:
        caption = ("Loss and top-1 accuracy: the train mean of each log interval (thin line, "
                   "step count on top) and each split after each epoch (markers)." if short
                   else "Loss and top-1 accuracy of each split after each epoch.")
        img = _figure(fig_dir, "learning_curves", caption, plots.learning_curves, r.curves,
                      steps=r.train_steps if short else None)
        finding = fd.learning_curve_finding(r.curves, r.num_classes)
        if short:
            finding = _joined(fd.step_finding(r.train_steps), finding)
        sections.append(Section("Learning curves", finding, [img]))
    if r.train_steps and not short:
        img = _figure(fig_dir, "train_steps", "Train loss and top-1 accuracy of each log "
                      "interval against the step; dotted lines end the epochs.",
                      plots.step_curves, {r.label: r.train_steps})
        sections.append(Section("Training per step", fd.step_finding(r.train_steps), [img]))
    sections.extend(_grad_section(r, fig_dir))
    sections.extend(_viz_section(r, fig_dir))
    return sections


SHORT_EPOCHS = 2  # runs this short draw their per-step curve as the main figure


def _joined(first: fd.Finding, second: fd.Finding) -> fd.Finding:
    """Two readings of one figure as one sentence pair (one finding per section)."""
    kind = "warning" if "warning" in (first.kind, second.kind) else "info"
    return fd.Finding(f"{first.text} {second.text}", kind, {**first.data, **second.data})


def _multi_run_sections(runs: Sequence[RunData], fig_dir: Path) -> list[Section]:
    from convlab.report import plots

    cmp = compare_runs(runs)
    names = cmp.descriptions()
    settings = setting_names(cmp)  # where seeds repeat settings: rank them over the seeds
    shared = _shared_settings(runs, cmp)
    sections = [Section(
        "Settings", fd.runs_settings_finding(len(runs), cmp.settings, [r.sizes for r in runs]),
        [_config_code(unflatten(shared), "settings shared by all runs that differ from the "
                      "defaults")
         if shared else Text("The runs share no setting that differs from the defaults.")],
    )]
    split = _eval_split(runs)
    header, body = cells(cmp)
    csv_path = fig_dir / "comparison.csv"
    csv_path.write_text(render_csv(cmp))
    sections.append(Section(
        "Comparison",
        fd.comparison_finding(names, [r.final.get(f"{split}.top1") for r in runs],
                              f"final {fd.split_name(split)} top-1", [r.status for r in runs],
                              [r.final.get("train.top1") for r in runs], settings),
        [key_table(cmp, runs, names, split),
         Details("Full table: every differing setting, final and best metrics",
                 [Table(header, body, right_aligned(cmp),
                        "Final metrics (last epoch) and the best epoch by validation (else "
                        "test) top-1; accuracies in %; only the settings that differ between "
                        "runs are shown.")]),
         Link("The comparison as CSV (raw numbers)", csv_path)],
    ))
    with_curves = [(n, r) for n, r in zip(names, runs, strict=True) if r.curves]
    if with_curves:
        short = max(r.epochs_done for _, r in with_curves) <= SHORT_EPOCHS
        steps = {n: r.train_steps for n, r in with_curves if r.train_steps}
        splits = [s for s in SPLITS if any(s in r.curves for _, r in with_curves)]
        caption = ("Learning curves of every run: colour names the run, line style the split; "
                   + ("thin lines are each log interval's train mean." if short and steps
                      else "each point is one epoch."))
        img = _figure(fig_dir, "learning_curves", caption, plots.overlaid_curves,
                      {n: r.curves for n, r in with_curves}, splits=splits,
                      steps=steps if short else None)
        finding = fd.overfitting_finding([n for n, _ in with_curves],
                                         [fd.overfit_of(r.curves) for _, r in with_curves],
                                         [fd.trained_epochs(r.curves) for _, r in with_curves])
        classes = {r.num_classes for _, r in with_curves}
        start = fd.runs_start_phrase([r.curves for _, r in with_curves],
                                     classes.pop() if len(classes) == 1 else None)
        if start:
            finding = _joined(fd.Finding(fd.sentence([start])), finding)
        sections.append(Section("Learning curves", finding, [img]))
        if steps and not short:
            img = _figure(fig_dir, "train_steps", "Train loss and top-1 accuracy of each log "
                          "interval against the step, one colour per run.",
                          plots.step_curves, steps)
            sections.append(Section("Training per step", fd.steps_finding(steps), [img]))
    for i, (axis, xs) in enumerate(sweep_axes(cmp, runs)):
        sections.append(_sweep_section(runs, axis, xs, split, fig_dir, i))
    values = [r.final.get(f"{split}.top1") for r in runs]
    metric = f"final {fd.split_name(split)} top-1"
    if any(v is not None for v in values):
        # a train-minus-held-out gap after fewer than MIN_EPOCHS says nothing yet
        long_enough = min((r.epochs_done for r, v in zip(runs, values, strict=True)
                           if v is not None), default=0) >= fd.MIN_EPOCHS
        img = _figure(fig_dir, "ladder", f"{metric.capitalize()} of each run, in run order "
                      f"(the axis starts at 0%).", plots.ablation_bars, names, values,
                      ylabel=metric)
        train = [r.final.get("train.top1") for r in runs] if long_enough else None
        sections.append(Section("Runs in order", fd.ablation_finding(names, values, metric,
                                                                     train, settings),
                                [img]))
    best = _best_run(runs, split)
    called = names[list(runs).index(best)]
    sections.append(_model_section(best, f"Model of the best run ({called})"))
    for i, (r, n) in enumerate(zip(runs, names, strict=True)):  # every run that tracked them
        sections.extend(_grad_section(r, fig_dir, f" of {n}", f"gradient_norms_{i}"))
    for i, (r, n) in enumerate(zip(runs, names, strict=True)):
        sections.extend(_viz_section(r, fig_dir, f" of {n}", f"viz_{i}"))
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
    # the parameter count of different architectures (a CNN and an MLP) is no capacity axis
    if all(isinstance(p, int) for p in params) and len(set(params)) >= 3 \
            and "model.name" not in cmp.settings:
        axes.append(("parameters", [float(p) for p in params]))  # type: ignore[arg-type]
    for key in cmp.settings:
        if re.search(r"(^|[._])seed$", key):  # repeats, not a quantity to plot against
            continue
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
    differ = set(cmp.settings)
    defaults = flatten(default_config(runs[0].config))
    return {k: v for k, v in flat.items() if k not in differ and k != "description"
            and (k in IDENTITY_KEYS or k not in defaults or not _same(defaults[k], v))}


# what was trained, always shown among the shared settings even when it is the default
IDENTITY_KEYS = ("data.dataset", "model.name", "optim.name", "optim.lr", "schedule.name",
                 "train.epochs", "train.batch_size")


def _same(a: Any, b: Any) -> bool:
    """Equal as config values: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


def default_config(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved config of an experiment that names only this one's dataset, model,
    optimizer and schedule: what the run would have used had it set nothing else."""
    from convlab.config import ExperimentConfig, validate_config

    named = {section: {"dataset" if section == "data" else "name": value}
             for section, key in (("data", "dataset"), ("model", "name"), ("optim", "name"),
                                  ("schedule", "name"))
             if (value := (config.get(section) or {}).get(key)) is not None}
    try:
        return validate_config(named).to_dict()
    except ConvlabError:  # user code that is not importable here: the general defaults
        return ExperimentConfig().to_dict()


def key_table(cmp: Comparison, runs: Sequence[RunData], names: Sequence[str],
              split: str) -> Table:
    """The comparison that fits the page: each run by its description, its parameter
    count, the key metric (final held-out top-1) and a few beside it; the settings go
    to the full table (the names already carry the ones that tell runs apart). Runs
    named only by their folders keep up to ``KEY_SETTINGS`` differing settings here."""
    held = fd.split_name(split)
    by_folder = list(names) == cmp.short_labels()
    short = cmp.short_names()
    shown = [k for k in cmp.settings if k != "description"][:KEY_SETTINGS] if by_folder else []
    cols: list[tuple[str, str, Any]] = [
        (f"final {held} top-1 %", "acc", lambda r: r.final.get(f"{split}.top1")),
        (f"final {held} loss", "loss", lambda r: r.final.get(f"{split}.loss")),
        ("final train top-1 %", "acc", lambda r: r.final.get("train.top1")),
    ]
    if split == "test" and any("val.top1" in r.final for r in runs):
        cols.insert(1, ("final validation top-1 %", "acc", lambda r: r.final.get("val.top1")))
    cols.append(("epochs", "int", lambda r: r.epochs_done))
    bad = any(r.status != "completed" for r in runs)
    header = ["run", *(["status"] if bad else []), *(short[k] for k in shown), "params",
              *(c[0] for c in cols)]
    rows = []
    for i, (r, n) in enumerate(zip(runs, names, strict=True)):
        row = [n, *([r.status] if bad else []),
               *(format_cell(cmp.rows[i].get(f"set:{k}"), "setting") for k in shown),
               format_cell(r.params, "int")]
        row += [format_cell(get(r), kind) for _, kind, get in cols]
        rows.append(row)
    right = [False, *([False] if bad else []), *(False for _ in shown), True,
             *(True for _ in cols)]
    return Table(header, rows, right, "Final metrics of each run (last epoch); accuracies "
                 "in %. The full table below adds every setting that differs and the best "
                 "epochs.", key=header.index(cols[0][0]), css="comparison")


KEY_SETTINGS = 3  # differing settings the short comparison keeps when names cannot say them


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys back into a tree, as a config file nests them (``model.stages.0.channels``
    -> ``model: {stages: [{channels: ...}]}``); numbered keys 0..n-1 become a list."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    def lists(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = {k: lists(v) for k, v in node.items()}
        if out and all(k.isdigit() for k in out):
            if sorted(int(k) for k in out) == list(range(len(out))):
                return [out[str(i)] for i in range(len(out))]
            return {int(k): v for k, v in out.items()}
        return out

    return lists(tree)  # type: ignore[no-any-return]


def _config_code(config: dict[str, Any], summary: str = "resolved config") -> Code:
    import yaml

    return Code(yaml.safe_dump(config, sort_keys=False, default_flow_style=None,
                               allow_unicode=True), summary)


def _provenance(r: RunData) -> Table:
    s, env = r.summary, r.env
    rows = [
        ("run folder", r.path or r.label),
        ("status", f"{r.status}" + (f": {s['message']}" if s.get("message") else "")),
        ("epochs", f"{s.get('epochs_done', '?')}/{s.get('epochs', '?')}"
         + (" (and an evaluation before training, epoch 0)"
            if any(0 in c.get("epoch", []) for c in r.curves.values()) else "")),
        ("images", fd.sizes_phrase(r.sizes) or "-"),
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


VIZ_CAPTIONS = (  # file-name prefix of a ``convlab viz`` figure -> what it shows
    ("confusion", "Confusion matrix on the test set"),
    ("errors", "The most confident errors on the test set"),
    ("filters", "First-layer filters"),
    ("activations", "Feature maps of one image"),
    ("overlay", "Feature maps laid over the image"),
    ("gradcam", "Grad-CAM: where the evidence for a class lies"),
    ("grad_norms", "Gradient norms"),
)


def _viz_section(r: RunData, fig_dir: Path, suffix: str = "",
                 name: str = "viz") -> list[Section]:
    """The figures ``convlab viz`` made in the run folder, copied beside the report."""
    import shutil

    def kind(p: Path) -> int:  # the order of VIZ_CAPTIONS, unknown figures last
        return next((i for i, (pre, _) in enumerate(VIZ_CAPTIONS) if p.stem.startswith(pre)),
                    len(VIZ_CAPTIONS))

    drawn = "total" in r.steps  # the report draws the gradient norms itself
    figures = sorted((p for p in map(Path, r.viz_figures)
                      if not (drawn and p.stem.startswith("grad_norms"))),
                     key=lambda p: (kind(p), p.name))
    if not figures:
        return []
    dest = fig_dir / name
    dest.mkdir(parents=True, exist_ok=True)
    blocks: list[Block] = []
    for src in figures:
        what = VIZ_CAPTIONS[kind(src)][1] if kind(src) < len(VIZ_CAPTIONS) else "Figure"
        copy = dest / src.name
        shutil.copyfile(src, copy)
        blocks.append(Image(f"{name}-{src.stem}", f"{what} ({src.name}).", copy))
    return [Section(f"Figures from convlab viz{suffix}",
                    fd.Finding(f"{len(blocks)} figure{'s' if len(blocks) != 1 else ''} made by "
                               f"convlab viz for this run."), blocks)]


# ------------------------------------------------------------------ Markdown


def _fence(text: str) -> str:
    ticks = max([len(m) for m in re.findall(r"`+", text)] + [2]) + 1
    return "`" * ticks


TOC_MIN_SECTIONS = 8  # a report this long opens with its table of contents


def section_ids(report: Report) -> list[str]:
    """A unique HTML id per section, from its title and its parent's
    (``capacity-loss-against-parameters``)."""
    ids: list[str] = []
    parent = ""
    for sec in report.sections:
        slug = re.sub(r"[^a-z0-9]+", "-", sec.title.lower()).strip("-") or "section"
        nested = sec.level > 1 and parent and not slug.startswith(f"{parent}-")
        base = f"{parent}-{slug}" if nested else slug
        if sec.level == 1:
            parent = slug
        ident, n = base, 2
        while ident in ids:
            ident, n = f"{base}-{n}", n + 1
        ids.append(ident)
    return ids


def _md_blocks(blocks: Sequence[Block], base: Path) -> list[str]:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Table):
            out.append(markdown_table(b.header, b.rows, b.right))
            if b.caption:
                out += [f"*{md_escape(b.caption)}*", ""]
        elif isinstance(b, Details):
            out += ["<details>", f"<summary>{md_escape(b.summary)}</summary>", "",
                    *_md_blocks(b.blocks, base), "</details>", ""]
        elif isinstance(b, Link):
            rel = Path(os.path.relpath(b.path, base)).as_posix()
            out += [f"[{md_escape(b.text)}]({rel})", ""]
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
    return out


def render_markdown(report: Report, base: Path) -> str:
    """Markdown with figures linked relative to ``base`` (the folder of report.md); a
    long report opens with its contents, linked to GitHub-style heading anchors."""
    out = [f"# {md_escape(report.title)}", "", f"*{md_escape(report.subtitle)}*", ""]
    if len(report.sections) >= TOC_MIN_SECTIONS:
        out += ["Contents:", ""]
        out += [f"{'  ' if sec.level > 1 else ''}- [{md_escape(sec.title)}](#{ident})"
                for sec, ident in zip(report.sections, section_ids(report), strict=True)]
        out.append("")
    for sec, ident in zip(report.sections, section_ids(report), strict=True):
        if len(report.sections) >= TOC_MIN_SECTIONS:
            out += [f'<a id="{ident}"></a>', ""]
        out += [f"{'#' * (sec.level + 1)} {md_escape(sec.title)}", ""]
        if sec.finding is not None:
            out += [f"> {md_escape(sec.finding.text)}", ""]
        out += _md_blocks(sec.blocks, base)
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
table.comparison { display: table; }
table.comparison th { white-space: normal; }
table.comparison td:first-child { white-space: normal; min-width: 10em; max-width: 28em; }
th.key, td.key { background: #eef5fb; font-weight: 600; }
nav.toc { background: #fafafa; border: 1px solid #eee; padding: .4em 1em; font-size: 14px; }
nav.toc ul { margin: .2em 0; padding-left: 1.2em; } nav.toc li.sub { font-size: 13px; }
h3 { margin-top: 1.6em; }
details { margin: .5em 0; } summary { cursor: pointer; color: #345; }
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
    def cls(right: bool, i: int) -> str:
        names = [*(["r"] if right else []), *(["key"] if i == t.key else [])]
        return f' class="{" ".join(names)}"' if names else ""

    parts = [f'<table class="{_e(t.css)}">' if t.css else "<table>"]
    if t.caption:
        parts.append(f"<caption>{_e(t.caption)}</caption>")
    if any(t.header):
        parts.append("<thead><tr>" + "".join(
            f"<th{cls(r, i)}>{_e(h)}</th>"
            for i, (h, r) in enumerate(zip(t.header, t.right, strict=True))) + "</tr></thead>")
    parts.append("<tbody>")
    for row in t.rows:
        parts.append("<tr>" + "".join(
            f"<td{cls(r, i)}>{_e(c)}</td>"
            for i, (c, r) in enumerate(zip(row, t.right, strict=True))) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def png_plot_areas(path: Path) -> str:
    """The plot areas a convlab figure records in its PNG (see ``plots.save``); "" for
    other PNG files (a ``convlab viz`` figure)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            return str(getattr(im, "text", {}).get("convlab-plot-areas", ""))
    except OSError:
        return ""


def _html_image(b: Image) -> str:
    data = base64.b64encode(b.png.read_bytes()).decode("ascii")
    areas = png_plot_areas(b.png)
    attr = f' data-plot-areas="{_e(areas)}"' if areas else ""
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(b.caption)}"{attr}>'
            f"<figcaption>{_e(b.caption)}</figcaption></figure>")


def _html_blocks(blocks: Sequence[Block], base: Path | None) -> list[str]:
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Table):
            body.append(_html_table(b))
        elif isinstance(b, Image):
            body.append(_html_image(b))
        elif isinstance(b, Details):
            body.append(f"<details><summary>{_e(b.summary)}</summary>"
                        + "".join(_html_blocks(b.blocks, base)) + "</details>")
        elif isinstance(b, Link):
            href = Path(os.path.relpath(b.path, base)).as_posix() if base else b.path.name
            body.append(f'<p><a href="{_e(href)}">{_e(b.text)}</a></p>')
        elif isinstance(b, Code):
            pre = f"<pre>{_e(b.text)}</pre>"
            body.append(f"<details><summary>{_e(b.summary)}</summary>{pre}</details>"
                        if b.summary else pre)
        else:
            body.append(f"<p>{_e(b.text)}</p>")
    return body


def _html_toc(report: Report, ids: Sequence[str]) -> str:
    items = "".join(
        f'<li{" class=sub" if sec.level > 1 else ""}><a href="#{ident}">{_e(sec.title)}</a></li>'
        for sec, ident in zip(report.sections, ids, strict=True))
    return f'<nav class="toc"><strong>Contents</strong><ul>{items}</ul></nav>'


def render_html(report: Report, base: Path | None = None) -> str:
    """One self-contained HTML page: inline style, figures as data URIs, no scripts;
    ``base`` (the page's folder) resolves links to files beside it. A long report
    opens with its contents."""
    body = [f"<h1>{_e(report.title)}</h1>", f'<p class="subtitle">{_e(report.subtitle)}</p>']
    ids = section_ids(report)
    if len(report.sections) >= TOC_MIN_SECTIONS:
        body.append(_html_toc(report, ids))
    for sec, ident in zip(report.sections, ids, strict=True):
        h = "h2" if sec.level == 1 else "h3"
        body.append(f'<section id="{ident}"><{h}>{_e(sec.title)}</{h}>')
        if sec.finding is not None:
            body.append(f'<p class="finding {_e(sec.finding.kind)}">{_e(sec.finding.text)}</p>')
        body += _html_blocks(sec.blocks, base)
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
        atomic_write(page, render_html(report, out))
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
            blocks = [Text(description)] if description else []
            noise = seed_noise_sentence(runs)  # one setting over seeds: beyond noise?
            sections.append(Section(f"{name}", None, blocks + ([Text(noise)] if noise else [])))
            sections += [Section(f"{name}: {s.title}", s.finding, s.blocks, level=2)
                         for s in part.sections]
        sections += extra
        subtitle = (f"made by convlab {convlab.__version__} on "
                    f"{time.strftime('%Y-%m-%d %H:%M')} from {total} run folders")
        report = Report(title, subtitle, sections)
        md, page = out / "report.md", out / "report.html"
        atomic_write(md, render_markdown(report, out))
        atomic_write(page, render_html(report, out))
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
