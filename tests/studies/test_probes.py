"""A study's equivariance probe: its sentence from hand-made tables, and a tiny study
that trains, probes its named run and puts the section with its figures in the report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from conftest import tiny_config
from convlab.analysis.equivariance import EquivarianceResult, LayerEquivariance, Transform
from convlab.studies import StudyError, load_study, run_study
from convlab.studies.probes import equivariance_finding


def result(kind: str, amount: float, rows: list[tuple[str, float, int]],
           head: float | None = None) -> EquivarianceResult:
    layers = [LayerEquivariance(name, (4, 8, 8), jump, 3, err, err, "undone")
              for name, err, jump in rows]
    if head is not None:
        layers.append(LayerEquivariance("fc", (10,), None, None, head, None,
                                        "invariance"))
    img = torch.zeros(1, 8, 8)
    return EquivarianceResult(Transform(kind, amount), img, img, layers)  # type: ignore[arg-type]


def test_finding_when_every_map_follows_the_shift_and_no_rotation_is_undone() -> None:
    shift = result("shift", 4, [("conv", 0.0, 1), ("pool", 1e-17, 2)], head=0.5)
    rotate = result("rotate", 90, [("conv", 0.9, 1), ("pool", 1.1, 2)], head=0.7)
    f = equivariance_finding(shift, rotate)
    assert f.text == ("Shifting the input by 4 pixels shifts the feature maps of all 2 layers "
                      "with it (interior error at most 1e-17); the output scores change by 50% "
                      "(not shift-invariant); a rotation by 90 degrees is undone at no layer "
                      "(interior errors 0.9 to 1.1): the learned kernels are not "
                      "rotation-symmetric.")
    assert f.data["shift_exact"] == 2 and f.data["output_change"] == 0.5


def test_finding_names_the_first_layer_the_shift_breaks_at() -> None:
    shift = result("shift", 3, [("conv", 0.0, 1), ("pool", 0.4, 2), ("conv2", 0.5, 2)])
    rotate = result("rotate", 90, [("conv", 0.0, 1), ("pool", 0.3, 2), ("conv2", 0.2, 2)])
    f = equivariance_finding(shift, rotate)
    assert f.text == ("Shifting the input by 3 pixels shifts the maps of 1 of 3 layers exactly; "
                      "from pool on it does not (its jump 2 does not divide the shift; error "
                      "0.4); a rotation by 90 degrees "
                      "is undone at 1 of 3 layers.")


def _study(tmp_path: Path, run: str = "cnn", group: str = "nets") -> Path:
    base = tiny_config(data={"synthetic": {"shape": [1, 12, 12], "classes": 4,
                                           "train_size": 128, "test_size": 32}},
                       train={"epochs": 1, "threads": 1})
    doc = {
        "name": "probe-study", "description": "a tiny study with a probe", "base": base,
        "scales": {"smoke": {}, "quick": {}, "full": {}},
        "groups": [{"name": "nets", "grid": {"model": {
            "cnn": {"name": "cnn", "stages": [{"channels": 4}, {"channels": 8}]},
            "mlp": {"name": "mlp", "hidden": [16]}}}}],
        "equivariance": [{"group": group, "run": run, "shift": 2, "rotate": 90}],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_study_probes_its_trained_run_and_reports_it(tmp_path: Path) -> None:
    out = run_study(_study(tmp_path), "smoke", runs_dir=tmp_path / "runs", echo=None)
    assert out.completed == 2
    md = out.report_md.read_text()
    assert "## Equivariance of the trained cnn (nets)" in md
    # 12x12 input: the jump is 4 after the second pooling, which a 2-pixel shift is not
    assert ("Shifting the input by 2 pixels shifts the maps of 5 of 6 layers exactly; from "
            "stage2.post.pool on it does not (its jump 4 does not divide the shift; error") in md
    figures = out.report_md.parent / "figures" / "equivariance-1"
    assert (figures / "shift" / "input.png").is_file()
    assert (figures / "rotate" / "errors.csv").is_file()
    html = out.report_html.read_text()
    assert html.count("data:image/png;base64,") >= 6 + 1  # the probe's 6 and the rest


def test_probe_errors_are_one_line_and_come_before_training(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"equivariance\.0\.group: 'nope' is not a group of "
                                         r"this study \(nets\)"):
        load_study(_study(tmp_path, group="nope"))
    with pytest.raises(StudyError, match=r"group nets has no trial named 'resnet' \(its "
                                         r"trials: cnn, mlp\)"):
        run_study(_study(tmp_path, run="resnet"), "smoke", runs_dir=tmp_path / "runs",
                  echo=None)
    assert not (tmp_path / "runs").exists()  # nothing trained, no folder made
