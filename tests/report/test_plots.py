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
