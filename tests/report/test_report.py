"""report.md / report.html from real tiny runs, escaping, and the CLI's exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from convlab.report.findings import Finding
from convlab.report.report import (
    Code,
    Report,
    Section,
    Table,
    Text,
    render_html,
    render_markdown,
)


def sections(md: str) -> list[str]:
    return re.findall(r"^## (.+)$", md, flags=re.M)


def test_multi_run_report(multi_report: Any) -> None:
    md = multi_report.markdown.read_text()
    assert sections(md)[:4] == ["Settings", "Comparison", "Learning curves",
                                "Loss against parameters"]
    assert "Runs in order" in sections(md)
    assert any(s.startswith("Model of the best run") for s in sections(md))
    # every section but a failed one opens with its one-sentence reading
    assert md.count("\n> ") >= len(sections(md)) - 1
    assert "The 3 runs differ in 4 settings" in md
    assert "| model.stages.0.channels |" in md  # the comparison shows the swept keys
    assert "| data.dataset |" not in md  # ... and not the shared ones
    # every figure exists in both formats and is linked relatively
    for fig in multi_report.figures:
        assert fig.exists() and fig.stat().st_size > 1000
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (multi_report.markdown.parent / link).exists()
    assert {p.suffix for p in multi_report.figures} == {".png", ".svg"}


def test_single_run_report(single_report: Any) -> None:
    md = single_report.markdown.read_text()
    assert sections(md) == ["Settings", "Model", "Results", "Learning curves",
                            "Gradient norms"]
    assert "| stage1.body.conv1 | Conv2d | 2x12x12 |" in md  # the layer table
    assert re.search(r"\| train \| [\d.e-]+ \| [\d.]+ \|", md)  # the final metrics table
    assert "| val |" in md and "| test |" in md
    assert "was trained on synthetic (192 train / 64 val / 64 test images) for 2 epochs" in md
    assert "| images | 192 train / 64 val / 64 test images |" in md
    # the title is the run's description (escaped), not its folder name
    assert md.startswith(r"# &lt;script&gt;alert(1)&lt;/script&gt; \| a&b")


def test_html_is_self_contained_and_escaped(multi_report: Any, single_report: Any) -> None:
    for files in (multi_report, single_report):
        page = files.html.read_text()
        assert "Content-Security-Policy" in page and "default-src 'none'" in page
        srcs = re.findall(r'\bsrc="([^"]*)"', page)
        assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
        # links only to anchors and to the CSV written beside the page
        hrefs = re.findall(r'\bhref="([^"]*)"', page)
        assert all(h.startswith("#") or h == "figures/comparison.csv" for h in hrefs), hrefs
        assert "<script" not in page.lower() and "<link" not in page.lower()
        assert "http://" not in page.replace("http://www.w3.org", "")
        assert "https://" not in page
    page = single_report.html.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | a&amp;b" in page  # the description
    md = multi_report.markdown.read_text()
    assert "<script>" not in md and r"&lt;script&gt;alert(1)&lt;/script&gt; \| a&b" in md


def test_renderers_escape_every_user_string(tmp_path: Path) -> None:
    evil = '<img src=x onerror="alert(1)">'
    rep = Report(evil, evil, [Section(evil, Finding(evil, "warning"), [
        Table([evil], [[evil]], [False], evil), Code(evil, evil), Text(evil)])])
    page = render_html(rep)
    assert "<img" not in page and "onerror=&quot;" in page
    assert page.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") == 11  # every place
    md = render_markdown(rep, tmp_path)
    assert md.count("<img") == 1  # only inside the fenced code block, where it is text
    assert re.search(r"```+yaml\n<img", md)


# ------------------------------------------------------------------ CLI


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str, str]:
    """Run ``convlab.cli.main`` in this process (no second torch import: fast)."""
    from convlab.cli import main

    monkeypatch.setattr(sys, "argv", ["convlab", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_compare_formats(sweep_dir: Path, run_dirs: list[Path],
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(monkeypatch, capsys, "compare", str(sweep_dir))
    assert code == 0 and "channels" in out and "trial-10" in out and "16" in out
    code, out, _ = cli(monkeypatch, capsys, "compare", *map(str, run_dirs[:2]), "-f", "md")
    assert code == 0 and out.startswith("| run | status | description |")
    assert len(out.strip().splitlines()) == 4  # header, rule, two runs
    code, out, _ = cli(monkeypatch, capsys, "compare", str(sweep_dir), "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("run,status,description,")
    assert len(out.splitlines()) == 4


def test_cli_report_writes_files(run_dirs: list[Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "rep"
    code, out, _ = cli(monkeypatch, capsys, "report", str(run_dirs[1]), "--out", str(out_dir),
                       "--title", "My <run>")
    assert code == 0
    assert out.splitlines() == [str(out_dir / "report.md"), str(out_dir / "report.html")]
    assert "<h1>My &lt;run&gt;</h1>" in (out_dir / "report.html").read_text()


@pytest.mark.parametrize("args", [
    ("compare", "{tmp}/nope"),
    ("compare", "{tmp}/empty"),
    ("report", "{tmp}/nope"),
    ("report", "{tmp}/empty", "--out", "{tmp}/r"),
])
def test_cli_bad_input_is_one_line_exit_2(args: tuple[str, ...], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = cli(monkeypatch, capsys, *(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "r").exists()


def test_cli_error_end_to_end(tmp_path: Path) -> None:
    """The real entry point in a fresh process: one line on stderr, exit code 2."""
    out = subprocess.run([sys.executable, "-m", "convlab.cli", "report", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == f"error: {tmp_path / 'x'}: no such file or directory"


def test_incomplete_run_is_shown_not_fatal(sweep_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A run killed before its first epoch (summary says running, no metrics, no config)
    appears with its status and dashes; the other runs' settings are still compared."""
    import shutil

    from convlab.report.compare import compare_runs
    from convlab.report.data import load_runs
    from convlab.report.report import write_report
    from convlab.runs import Run

    sweep = tmp_path / "sweep"
    shutil.copytree(sweep_dir, sweep)
    killed = Run.create(sweep / "trial-2", "cap", "deadbeef")
    killed.write_summary(status="running", epochs=2, epochs_done=0)
    runs = load_runs([sweep])
    assert [r.status for r in runs] == ["completed", "completed", "running", "completed"]
    cmp = compare_runs(runs)
    assert "data.dataset" not in cmp.settings and "model.stages.0.channels" in cmp.settings
    assert cmp.rows[2]["final:test.top1"] is None
    files = write_report(runs, tmp_path / "out")
    md = files.markdown.read_text()
    assert "1 did not complete: " in md and "(running)" in md
    code, out, _ = cli(monkeypatch, capsys, "compare", str(sweep), "-f", "csv")
    assert code == 0 and ",running," in out


def test_unwritable_output_is_one_line_exit_2(run_dirs: list[Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file.txt").write_text("x")
    code, out, err = cli(monkeypatch, capsys, "report", str(run_dirs[0]), "--out",
                         str(tmp_path / "file.txt" / "r"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "cannot write the report" in err


# ------------------------------------------------------------------ reading right


def test_comparison_leads_with_names_and_key_metrics(multi_report: Any) -> None:
    md = multi_report.markdown.read_text()
    compact = md.split("## Comparison", 1)[1].split("<details>", 1)[0]
    header = next(line for line in compact.splitlines() if line.startswith("| run |"))
    # runs named by their folders (trial-0, ...) keep the settings that tell them apart
    assert header == ("| run | 0.channels | 1.channels | track_grad_norms | params | "
                      "final test top-1 % | final validation top-1 % | final test loss | "
                      "final train top-1 % | epochs |")
    # the full table, with every differing setting, is folded below it, and a CSV beside
    full = md.split("<details>", 1)[1].split("</details>", 1)[0]
    assert "| model.stages.0.channels |" in full and "| best epoch |" in full
    csv = multi_report.markdown.parent / "figures" / "comparison.csv"
    assert csv.read_text().splitlines()[0].startswith("run,status,")
    assert "[The comparison as CSV (raw numbers)](figures/comparison.csv)" in md
    page = multi_report.html.read_text()
    assert '<table class="comparison">' in page and '<th class="r key">final test top-1 %' \
        in page


def test_shared_settings_are_only_those_off_the_defaults(multi_report: Any) -> None:
    md = multi_report.markdown.read_text()
    shared = md.split("Settings shared by all runs that differ from the defaults:", 1)[1]
    shared = shared.split("```", 2)[1]
    assert "name: adam" in shared and "dataset: synthetic" in shared  # off the defaults
    assert "eval_batch_size" not in shared and "label_smoothing" not in shared  # defaults
    assert "description" not in shared


def test_one_epoch_reports_read_right(short_single_report: Any, short_multi_report: Any
                                      ) -> None:
    md = short_single_report.markdown.read_text()
    assert md.startswith("# Adam at lr 0.01\n")  # the description is the title
    lc = md.split("## Learning curves", 1)[1].split("##", 1)[0]
    # the per-step curve is the main figure: no separate per-step section
    assert "Training per step" not in sections(md)
    assert "Train loss over a log interval goes from" in lc and "at step 1 to" in lc
    assert "Before training, validation loss is" not in lc  # test is the held-out split
    assert "Before training, test loss is" in lc and "guessing among 4 classes" in lc
    assert "1 epoch is too few to judge overfitting" in lc
    assert "overfits" not in md
    assert "(and an evaluation before training, epoch 0)" in md
    md = short_multi_report.markdown.read_text()
    assert md.startswith("# 2 runs: lr\n")
    assert "The runs have at most 1 trained epoch: 1 epoch is too few" in md
    assert "None of the" not in md
    assert "Each run has 192 train / 64 val / 64 test images." in md
    assert "| Adam at lr 0.01 |" in md  # runs named by their descriptions


def test_longer_run_gets_a_per_step_section(tmp_path: Path) -> None:
    import convlab
    from conftest import tiny_config
    from convlab.report.data import load_runs
    from convlab.report.report import write_report

    r = convlab.run(tiny_config(train={"epochs": 3, "threads": 1, "log_every": 4}),
                    runs_dir=tmp_path / "runs", quiet=True)
    files = write_report(load_runs([r.path]), tmp_path / "out")
    md = files.markdown.read_text()
    assert sections(md) == ["Settings", "Model", "Results", "Learning curves",
                            "Training per step"]
    assert (tmp_path / "out" / "figures" / "train_steps.png").exists()
    assert "the runs have" not in md.lower()


def test_viz_figures_of_a_run_folder_are_included(run_dirs: list[Path], tmp_path: Path
                                                  ) -> None:
    import shutil

    from PIL import Image as PILImage

    from convlab.report.data import load_runs
    from convlab.report.report import write_report

    run = tmp_path / "cap" / run_dirs[1].name
    shutil.copytree(run_dirs[1], run)
    (run / "figures").mkdir()
    PILImage.new("RGB", (200, 150), (200, 30, 30)).save(run / "figures" / "confusion.png")
    files = write_report(load_runs([run]), tmp_path / "out")
    md = files.markdown.read_text()
    assert sections(md)[-1] == "Figures from convlab viz"
    assert "![Confusion matrix on the test set (confusion.png).](figures/viz/confusion.png)" \
        in md
    assert (tmp_path / "out" / "figures" / "viz" / "confusion.png").exists()
    assert files.html.read_text().count("<img") == 2  # learning curves + the viz figure


def test_long_grouped_report_has_contents(short_dir: Path, sweep_dir: Path, tmp_path: Path
                                          ) -> None:
    from convlab.report.data import load_runs
    from convlab.report.report import write_grouped_report

    files = write_grouped_report(
        [("short", "One epoch.", load_runs([short_dir])),
         ("width", "", load_runs([sweep_dir]))], tmp_path / "out", "Study x", "Intro.")
    md = files.markdown.read_text()
    assert "Contents:" in md and "- [short](#short)" in md
    assert "  - [short: Comparison](#short-comparison)" in md
    assert "  - [width: Comparison](#width-comparison)" in md
    assert "### width: Comparison" in md and "## width" in md
    page = files.html.read_text()
    assert '<nav class="toc">' in page and '<section id="width-comparison"><h3>' in page


def test_parameter_axis_only_within_one_architecture() -> None:
    from convlab.report.compare import compare_runs
    from convlab.report.data import RunData
    from convlab.report.report import sweep_axes

    def run(name: str, width: int, params: int) -> RunData:
        return RunData(f"{name}-{width}", {"model": {"name": name, "width": width}},
                       params=params)

    widths = [run("cnn", w, p) for w, p in ((8, 1_000), (16, 4_000), (32, 16_000))]
    assert [a for a, _ in sweep_axes(compare_runs(widths), widths)] == ["parameters"]
    mixed = [run("cnn", 8, 1_000), run("mlp", 8, 50_000), run("cnn", 16, 4_000)]
    assert "parameters" not in [a for a, _ in sweep_axes(compare_runs(mixed), mixed)]
    seeds = [RunData(f"s{i}", {"seed": i, "data": {"split_seed": i}}) for i in range(3)]
    assert sweep_axes(compare_runs(seeds), seeds) == []  # seeds are repeats, not an axis


def test_shared_settings_nest_like_a_config_file() -> None:
    from convlab.report.report import unflatten

    assert unflatten({"data.dataset": "mnist", "model.stages.0.channels": 8,
                      "model.stages.1.channels": 16, "model.head.hidden": [64],
                      "x.1.y": 2}) == {
        "data": {"dataset": "mnist"},
        "model": {"stages": [{"channels": 8}, {"channels": 16}], "head": {"hidden": [64]}},
        "x": {1: {"y": 2}}}  # stage 0 at its default: the numbers stay keys


def test_short_comparison_keeps_settings_when_runs_are_named_by_folder() -> None:
    from convlab.report.compare import compare_runs
    from convlab.report.data import RunData
    from convlab.report.report import key_table

    runs = [RunData(f"trial-{i}", {"optim": {"lr": lr}, "description": "same"}, params=10,
                    final={"test.top1": 0.5 + i / 10}) for i, lr in enumerate((0.1, 0.01))]
    cmp = compare_runs(runs)
    named = key_table(cmp, runs, ["lr=0.1", "lr=0.01"], "test")
    assert named.header[:2] == ["run", "params"]  # the names say the settings
    by_folder = key_table(cmp, runs, cmp.short_labels(), "test")
    assert by_folder.header[:3] == ["run", "lr", "params"]
    assert [row[1] for row in by_folder.rows] == ["0.1", "0.01"]
    assert by_folder.header[by_folder.key] == "final test top-1 %"
