"""The comparison table: flattening, only-differing settings, renderers, finding runs."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from convlab.errors import RunError
from convlab.report.compare import (
    MISSING,
    compare_runs,
    differing_settings,
    flatten,
    render_csv,
    render_markdown,
    render_table,
)
from convlab.report.data import RunData, find_runs, load_runs, run_labels


def cfg(lr: float = 0.1, flip: bool = False, stages: int = 2, desc: str = "") -> dict:
    return {
        "name": "exp", "description": desc,
        "data": {"dataset": "mnist", "augment": {"flip": flip}, "shape": [1, 28, 28]},
        "model": {"name": "cnn", "stages": [{"channels": 8 * (i + 1)} for i in range(stages)],
                  "head": {"hidden": []}},
        "optim": {"name": "sgd", "lr": lr},
    }


def rd(label: str, config: dict, acc: float = 0.9, **kw: object) -> RunData:
    final = {"train.loss": 0.1, "train.top1": 0.99, "test.loss": 0.3, "test.top1": acc}
    return RunData(label, config, final=final, best=dict(final), best_epoch=3, params=1000,
                   **kw)  # type: ignore[arg-type]


def test_flatten_descends_mappings_and_lists_of_mappings_only() -> None:
    flat = flatten(cfg())
    assert flat["optim.lr"] == 0.1
    assert flat["model.stages.1.channels"] == 16  # the spelling --set accepts
    assert flat["data.shape"] == [1, 28, 28]  # a list of plain values stays one value
    assert flat["model.head.hidden"] == []  # an empty list is still a setting
    assert "data.augment" not in flat and flat["data.augment.flip"] is False


def test_only_differing_settings_are_kept() -> None:
    configs = [cfg(lr=0.1), cfg(lr=0.01, flip=True), cfg(lr=0.1)]
    assert differing_settings(configs) == ["data.augment.flip", "optim.lr"]
    assert differing_settings([cfg(), cfg()]) == []
    # a key only some runs have differs: a third stage
    assert differing_settings([cfg(stages=2), cfg(stages=3)]) == ["model.stages.2.channels"]
    # 1 and 1.0 are the same number (YAML writes either); "1" is not
    assert differing_settings([{"a": 1}, {"a": 1.0}]) == []
    assert differing_settings([{"a": 1}, {"a": "1"}]) == ["a"]


def test_compare_runs_columns_and_rows() -> None:
    runs = [rd("r1", cfg(lr=0.1)), rd("r2", cfg(lr=0.01, stages=3), acc=0.95)]
    cmp = compare_runs(runs)
    assert cmp.settings == ["model.stages.2.channels", "optim.lr"]
    keys = [c.key for c in cmp.columns]
    assert keys[:4] == ["run", "status", "set:model.stages.2.channels", "set:optim.lr"]
    assert "final:test.top1" in keys and "best:test.top1" in keys and "best_epoch" in keys
    assert not any("val" in k for k in keys)  # no empty val columns when no run has val
    assert cmp.rows[0]["set:model.stages.2.channels"] is MISSING
    assert cmp.setting_values("optim.lr") == [0.1, 0.01]
    assert cmp.column("final:test.top1") == [0.9, 0.95]
    assert cmp.short_names() == {"model.stages.2.channels": "channels", "optim.lr": "lr"}
    assert cmp.describe(1) == "channels=24, lr=0.01"
    assert cmp.describe(0) == "channels=-, lr=0.1"


def test_run_names_for_legends() -> None:
    runs = [rd(f"trial-{i}/cap/2026-{i}", cfg(lr=lr, desc="x" * (30 * i)))
            for i, lr in enumerate((0.1, 0.01))]
    cmp = compare_runs(runs)
    assert cmp.short_labels() == ["trial-0", "trial-1"]
    assert cmp.descriptions() == ["lr=0.1", "lr=0.01"]  # the long description left out
    assert cmp.descriptions(max_len=5) == ["trial-0", "trial-1"]
    same_exp = compare_runs([rd("cap/2026-a", cfg()), rd("cap/2026-b", cfg())])
    assert same_exp.short_labels() == ["2026-a", "2026-b"]
    assert same_exp.descriptions() == ["2026-a", "2026-b"]  # nothing differs
    # two runs differing only in a long value would share "lr=0.1": labels instead
    twins = compare_runs([rd("a", cfg(desc="x" * 30)), rd("b", cfg()), rd("c", cfg(lr=0.01))])
    assert twins.descriptions() == ["a", "b", "c"]


def test_runs_with_descriptions_are_named_by_them() -> None:
    # a sweep's named grid values: 4-8 vs 8-16 channels, each with two seeds
    runs = [rd(f"t{i}", {**cfg(stages=2 + (i // 2), desc=("narrow", "wide")[i // 2]),
                         "seed": i % 2}) for i in range(4)]
    cmp = compare_runs(runs)
    assert "description" in cmp.settings and "seed" in cmp.settings
    assert cmp.descriptions() == ["narrow, seed=0", "narrow, seed=1", "wide, seed=0",
                                  "wide, seed=1"]  # the channel keys the names cover: out
    one_seed = compare_runs(runs[::2])
    assert one_seed.descriptions() == ["narrow", "wide"]
    assert one_seed.descriptions(max_len=5) == ["t0", "t2"]


def test_short_names_stay_unique() -> None:
    cmp = compare_runs([rd("a", cfg()), rd("b", {**cfg(), "model": {"stages": [
        {"channels": 1}, {"channels": 2}], "head": {"hidden": []}, "name": "cnn"}})])
    assert cmp.short_names() == {"model.stages.0.channels": "0.channels",
                                 "model.stages.1.channels": "1.channels"}


def test_renderers() -> None:
    runs = [rd("r|1", cfg(desc="a|b [/bold]")), rd("r2", cfg(lr=0.01, flip=True))]
    cmp = compare_runs(runs)
    md = render_markdown(cmp)
    lines = md.splitlines()
    assert lines[0].startswith("| run | status | description | data.augment.flip | optim.lr |")
    assert r"r\|1" in md and r"a\|b" in md  # pipes cannot break the table
    cols = {len(re.split(r"(?<!\\)\|", line)) for line in lines}
    assert cols == {len(cmp.columns) + 2}  # every row has as many cells as the header
    assert "| 90.00 |" in md and "| true |" in md
    rows = list(csv.DictReader(io.StringIO(render_csv(cmp))))
    assert rows[0]["final.test.top1"] == "0.9" and rows[1]["optim.lr"] == "0.01"
    assert rows[1]["data.augment.flip"] == "true" and rows[0]["best_epoch"] == "3"
    from rich.console import Console

    console = Console(width=300, record=True)
    console.print(render_table(cmp))
    text = console.export_text()
    assert "| lr " in text.replace("┃", "|") and "a|b [/bold]" in text  # markup stays text


def test_compare_real_sweep_keeps_only_the_swept_keys(sweep_dir: Path,
                                                      run_dirs: list[Path]) -> None:
    runs = load_runs([sweep_dir])
    # natural order (trial-10 after trial-1), labelled below the common folder
    assert [r.label for r in runs] == [str(p.relative_to(sweep_dir)) for p in run_dirs]
    cmp = compare_runs(runs)
    assert set(cmp.settings) == {"description", "model.stages.0.channels",
                                 "model.stages.1.channels", "train.track_grad_norms"}
    assert cmp.setting_values("model.stages.0.channels") == [2, 6, 16]
    assert all(isinstance(v, float) for v in cmp.column("final:val.top1"))
    json.dumps(cmp.rows, default=str)  # plain data


def test_find_runs_expands_folders_and_dedupes(sweep_dir: Path, run_dirs: list[Path]) -> None:
    assert [r.path for r in find_runs([sweep_dir])] == run_dirs
    assert [r.path for r in find_runs([run_dirs[1], sweep_dir / "trial-1"])] == [run_dirs[1]]
    assert [r.path for r in find_runs([run_dirs[0]])] == [run_dirs[0]]
    assert run_labels([run_dirs[0]]) == [f"cap/{run_dirs[0].name}"]


def test_find_runs_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such file or directory"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(RunError, match="not a folder"):
        find_runs([tmp_path / "f.txt"])
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    with pytest.raises(RunError, match="no run folders in it"):
        find_runs([tmp_path / "empty"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    with pytest.raises(RunError, match="not a readable JSON file") as e:
        find_runs([broken])
    assert "\n" not in str(e.value)


def _sweep_like() -> list[RunData]:
    """Six trials of a named grid (head: fc|gap) x lr x seeds, with a validation split."""
    runs = []
    for i, (head, lr, seed) in enumerate([(h, lr, s) for h in ("fc", "gap")
                                          for lr in (0.01, 0.1) for s in (0, 1)][:6]):
        c = cfg(lr=lr, desc=head)
        c["seed"] = seed
        c["model"]["head"] = {"type": "flatten" if head == "fc" else "gap", "hidden": []}
        final = {"train.loss": 0.1, "val.loss": 0.31 + i / 100, "val.top1": 0.9 + i / 100,
                 "test.loss": 0.3, "test.top1": 0.89 + i / 100}
        runs.append(RunData(f"lr-width/trial-{i}/exp/20261201-210755-7340356{i}", c,
                            final=final, best=dict(final), best_epoch=3, params=123_456,
                            summary={"epochs_done": 4}))
    return runs


def test_terminal_view_fits_80_columns_and_leads_with_the_run_name() -> None:
    from rich.console import Console

    from convlab.report.compare import terminal_view

    cmp = compare_runs(_sweep_like())
    view, left_out = terminal_view(cmp, 80)
    keys = [c.key for c in view.columns]
    assert keys[:5] == ["name", "final:val.top1", "final:test.top1", "best:val.top1",
                        "final:val.loss"]
    # the description names the head: its type is folded into it, not a column
    assert view.column("name")[:2] == ["fc, lr=0.01, seed=0", "fc, lr=0.01, seed=1"]
    assert "set:model.head.type" not in keys and "set:model.head.type" in left_out
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(render_table(view))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "gap, lr=0.01, seed=1" in text and "94.00" in text  # whole names and numbers
    full, none_left = terminal_view(cmp, 80, all_=True)
    assert full is cmp and none_left == []


def test_columns_by_name_and_json() -> None:
    from convlab.errors import ConvlabError
    from convlab.report.compare import render_json, terminal_view

    cmp = compare_runs(_sweep_like())
    view, _ = terminal_view(cmp, 80, ["lr", "test %", "final.val.loss", "epochs"])
    assert [c.key for c in view.columns] == ["name", "set:optim.lr", "final:test.top1",
                                             "final:val.loss", "epochs"]
    rows = json.loads(render_json(view))
    assert rows[0] == {"name": "fc, lr=0.01, seed=0", "optim.lr": 0.01,
                       "final.test.top1": 0.89, "final.val.loss": 0.31, "epochs": 4}
    with pytest.raises(ConvlabError, match="--columns 'nope': no such column"):
        terminal_view(cmp, 80, ["nope"])


def test_against_seed_noise() -> None:
    from convlab.report.compare import against_seed_noise

    def run(order: str, seed: int, acc: float) -> RunData:
        c = cfg(desc=order)
        c["seed"] = seed
        c["model"]["head"] = {"hidden": [], "flatten_order": order}
        return RunData(f"t/{order}-{seed}", c, final={"test.top1": acc}, params=10)

    runs = [run("natural", 0, 0.60), run("natural", 1, 0.62), run("natural", 2, 0.61),
            run("permuted", 0, 0.61), run("permuted", 1, 0.60), run("permuted", 2, 0.62)]
    text = against_seed_noise(compare_runs(runs), "model.head.flatten_order")
    assert text == ("model.head.flatten_order: natural 61.00% vs permuted 61.00% (mean of 3 "
                    "seeds); the difference, 0.00 points, is within the spread between "
                    "seeds: no effect beyond noise (2.00 points)")
    runs[3:] = [run("permuted", s, 0.5 + s / 1000) for s in range(3)]
    assert "more than the spread" in against_seed_noise(compare_runs(runs),  # type: ignore[operator]
                                                        "model.head.flatten_order")
    assert against_seed_noise(compare_runs(runs), "optim.lr") is None


def test_a_study_group_over_seeds_says_whether_its_setting_beats_noise(tmp_path: Path) -> None:
    from convlab.report.compare import seed_noise_sentence
    from convlab.report.report import write_grouped_report

    def run(order: str, seed: int, acc: float) -> RunData:
        c = cfg(desc=order)
        c["seed"] = seed
        c["model"]["head"] = {"hidden": [], "flatten_order": order}
        final = {"train.loss": 0.5, "train.top1": 0.7, "test.loss": 1.1, "test.top1": acc}
        return RunData(f"flatten-order/{order}-{seed}", c, final=final, best=dict(final),
                       best_epoch=1, params=10, summary={"epochs_done": 1})

    runs = [run(o, s, 0.6 + s / 100) for o in ("natural", "permuted") for s in range(3)]
    sentence = seed_noise_sentence(runs)
    assert sentence is not None and "within the spread between seeds" in sentence
    assert seed_noise_sentence(runs[:1]) is None
    files = write_grouped_report([("flatten-order", "natural vs permuted", runs)],
                                 tmp_path / "report", "Study capacity (smoke)")
    assert sentence in files.markdown.read_text()
