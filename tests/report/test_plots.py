"""Every plot writes valid PNG and SVG files from plain data (and from real runs)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from convlab.report import plots
from convlab.report.data import load_runs

CURVES = {
    "train": {"epoch": [1, 2, 3], "loss": [1.0, 0.6, 0.4], "top1": [0.6, 0.8, 0.9]},
    "val": {"epoch": [1, 2, 3], "loss": [0.9, 0.7, 0.75], "top1": [0.7, 0.8, 0.79]},
    "test": {"epoch": [1, 2, 3], "loss": [0.95, 0.72, 0.8], "top1": [0.68, 0.79, 0.78]},
}


def check_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.width > 100 and im.height > 100
        return im.size


def check_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(root.iter())) > 20  # something was drawn


def both(tmp_path: Path, name: str) -> list[Path]:
    return [tmp_path / f"{name}.png", tmp_path / f"{name}.svg"]


def check(paths: list[Path]) -> None:
    png, svg = paths
    check_png(png)
    check_svg(svg)


def test_learning_curves(tmp_path: Path) -> None:
    out = plots.learning_curves(CURVES, both(tmp_path, "lc"), title="run <x>")
    assert out == both(tmp_path, "lc")
    check(out)
    # a single path, only train recorded, a metric missing: still a figure
    check_png(plots.learning_curves({"train": {"loss": [1.0, 0.5]}}, tmp_path / "one.png")[0])


def test_overlaid_curves(tmp_path: Path) -> None:
    runs = {f"lr={lr}": CURVES for lr in (0.1, 0.01, 0.001)}
    check(plots.overlaid_curves(runs, both(tmp_path, "ov"), splits=("train", "val")))
    many = {f"run {i}": CURVES for i in range(14)}  # beyond tab10: a continuous colour map
    check_png(plots.overlaid_curves(many, tmp_path / "many.png")[0])


def test_metric_vs_setting_uses_log_x_for_parameter_counts(tmp_path: Path) -> None:
    params = [1e6, 1e4, 1e5, 1e7]  # unsorted on purpose
    series = {"train loss": [0.3, 1.1, 0.6, 0.02], "test loss": [0.45, 1.2, 0.7, None]}
    check(plots.metric_vs_setting(params, series, both(tmp_path, "sw"), mark_min="test loss"))
    assert plots.use_log_x(params) and not plots.use_log_x([1, 2, 3])
    assert not plots.use_log_x([0, 10, 100])  # zero cannot go on a log axis


def test_ablation_bars(tmp_path: Path) -> None:
    labels = ["baseline", "+ standardize", "+ augment", "+ dropout"]
    check(plots.ablation_bars(labels, [0.90, 0.92, None, 0.95], both(tmp_path, "bars")))
    check_png(plots.ablation_bars(["a", "b"], [0.5, 1.2], tmp_path / "raw.png", ylabel="x",
                                  percent=False)[0])


def test_gradient_norms(tmp_path: Path) -> None:
    steps = list(range(0, 100, 10))
    norms = {"total": [1.0 / (s + 1) for s in steps], "conv": [0.5] * 10,
             "fc": [0.0] + [0.2] * 9}  # a zero cannot be drawn on log y: a gap, no error
    norms.update({f"layer{i}": [0.1 * i + 0.01] * 10 for i in range(20)})
    check(plots.gradient_norms(steps, norms, both(tmp_path, "gn")))


def test_svg_is_deterministic_and_bad_suffix_refused(tmp_path: Path) -> None:
    a = plots.learning_curves(CURVES, tmp_path / "a.svg")[0].read_bytes()
    b = plots.learning_curves(CURVES, tmp_path / "b.svg")[0].read_bytes()
    assert a == b
    with pytest.raises(ValueError, match="expected a .png or .svg"):
        plots.learning_curves(CURVES, tmp_path / "x.jpg")


def test_plots_from_real_runs(sweep_dir: Path, tmp_path: Path) -> None:
    runs = load_runs([sweep_dir])
    check(plots.learning_curves(runs[0].curves, both(tmp_path, "real_lc")))
    check(plots.overlaid_curves({r.label: r.curves for r in runs}, both(tmp_path, "real_ov")))
    steps = runs[0].steps
    assert steps["step"][0] == 0 and "total" in steps and len(steps) > 3
    norms = {k: v for k, v in steps.items() if k not in ("step", "epoch")}
    check(plots.gradient_norms(steps["step"], norms, both(tmp_path, "real_gn")))


def test_user_strings_are_not_parsed_as_tex(tmp_path: Path) -> None:
    bad = r"cost=$\frac{1$ {"  # invalid TeX between two dollars: would raise if parsed
    check_png(plots.learning_curves({bad: CURVES["train"]}, tmp_path / "t1.png", title=bad)[0])
    check_png(plots.overlaid_curves({bad: CURVES}, tmp_path / "t2.png", title=bad)[0])
    check_png(plots.ablation_bars([bad, "b"], [0.5, 0.6], tmp_path / "t3.png", ylabel=bad)[0])
    check_png(plots.metric_vs_setting([1, 2], {bad: [1.0, 2.0]}, tmp_path / "t4.png",
                                      xlabel=bad, mark_min=bad)[0])
    check_png(plots.gradient_norms([0, 1], {"total": [1, 2], bad: [1, 1]}, tmp_path / "t5.png",
                                   title=bad)[0])


# ------------------------------------------------------------------ reading right


def _areas(png: Path) -> list[dict]:
    import json

    with Image.open(png) as im:
        return json.loads(im.text[plots.AREAS_KEY])  # type: ignore[attr-defined]


def _no_overlap(boxes: list) -> bool:
    return all(a.x1 <= b.x0 + 0.5 for a, b in zip(boxes, boxes[1:], strict=False))


def test_log_axis_ticks_do_not_collide() -> None:
    """A learning-rate sweep over 13 values (1e-5 to 10 in 1-3 steps): the tick labels,
    as drawn, do not overlap; values are written compactly."""
    from matplotlib.figure import Figure

    lrs = [v * 10.0 ** k for k in range(-5, 1) for v in (1, 3)] + [10.0]
    ticks = plots.log_ticks(lrs)
    assert len(ticks) <= 8 and ticks == [1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]
    assert plots.log_ticks([0.001, 0.01, 0.1]) == [0.001, 0.01, 0.1]  # the values themselves
    assert [plots.tick_label(v) for v in (3e-4, 0.05, 1, 1500, 2.5e6)] == [
        "3e-4", "0.05", "1", "1.5k", "2.5M"]
    fig = Figure()
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_xticks(ticks, [plots.tick_label(t) for t in ticks])
    fig.set_size_inches(6.4, 3.9)
    fig.draw_without_rendering()
    boxes = sorted((t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()),
                   key=lambda b: b.x0)
    assert len(boxes) == len(ticks) and _no_overlap(boxes)


def test_figures_hold_their_legends_outside_when_crowded(tmp_path: Path) -> None:
    steps = list(range(0, 100, 10))
    norms = {"total": [1.0] * 10, **{f"layer{i}": [0.1 * i + 0.01] * 10 for i in range(54)}}
    png = plots.gradient_norms(steps, norms, tmp_path / "gn.png")[0]
    (area,) = _areas(png)
    assert area["skip"] == []  # no legend inside the plot area
    colors = plots.series_colors(12)
    assert len(set(colors)) == 12  # beyond tab10: no colour repeats
    assert len(set(plots.series_colors(30))) == 30
    many = {f"run {i}": CURVES for i in range(14)}
    png = plots.overlaid_curves(many, tmp_path / "many.png")[0]
    assert all(a["skip"] == [] for a in _areas(png))


def test_short_curves_are_points_on_fitted_axes(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    one = {"train": {"epoch": [1], "loss": [0.9], "top1": [0.7]},
           "test": {"epoch": [1], "loss": [0.5], "top1": [0.8]}}
    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([1], [0.5], **plots._marks(1, "test"))
    assert ax.get_lines()[0].get_marker() == "^"  # the test split's marker
    plots._fit_x(ax, [1.0])
    assert ax.get_xlim() == (0.5, 1.5) and list(ax.get_xticks()) == [1.0]
    assert plots._marks(plots.MARKER_MAX + 1, "train") == {}  # long lines: no markers
    check_png(plots.learning_curves(one, tmp_path / "one.png")[0])
    steps = {"step": [1, 2, 3, 4], "at_epoch": [0.25, 0.5, 0.75, 1.0],
             "train_loss": [2.0, 1.0, 0.1, 0.01], "train_top1": [0.1, 0.5, 0.8, 0.9]}
    check_png(plots.learning_curves(one, tmp_path / "steps.png", steps=steps)[0])
    check_png(plots.step_curves({"a": steps, "b": steps}, tmp_path / "two.png")[0])


def test_bars_start_at_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3-point gap between 31% and 34% is drawn as the small difference it is."""
    from matplotlib.figure import Figure

    captured: list[Figure] = []
    real_save = plots.save

    def keep(fig: Figure, out: plots.Outputs) -> list[Path]:
        captured.append(fig)
        return real_save(fig, out)

    monkeypatch.setattr(plots, "save", keep)
    check_png(plots.ablation_bars(["a", "b"], [0.31, 0.34], tmp_path / "bars.png")[0])
    (ax,) = captured[0].axes
    assert ax.get_ylim()[0] == 0.0
    assert [t.get_text() for t in ax.texts] == ["31.0%", "34.0%"]


def test_repeats_are_averaged_and_long_noisy_curves_binned() -> None:
    assert plots.mean_by_x([(2.0, 1.0), (1.0, 4.0), (2.0, 3.0)]) == [(1.0, 4.0), (2.0, 2.0)]
    xs, ys = list(range(10)), [0.0, 1.0] * 5
    assert plots.binned(xs, ys, 10) == (xs, ys)  # few points pass through
    bx, by = plots.binned(xs, ys, 5)
    assert bx == [0.5, 2.5, 4.5, 6.5, 8.5] and by == [0.5] * 5
    assert len(plots.binned(list(range(1001)), [1.0] * 1001, 60)[0]) <= 60
