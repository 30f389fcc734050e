"""The example notebooks in notebooks/ execute top to bottom (nbclient, a real kernel)
and their outputs read as a user would see them: one live display per training, a run
card, a DataFrame, a PNG figure, an inline report; no error, no warning text, no flood.

They train on MNIST subsets (seconds each), read from ``$CONVLAB_TEST_DATA``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook extra is not installed")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra is not installed")
pytest.importorskip("ipykernel", reason="the notebook extra is not installed")
pytest.importorskip("pandas", reason="the notebook extra is not installed")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str, tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run a copy of the notebook in ``tmp_path`` (its runs/ and files land there)."""
    monkeypatch.setenv("CONVLAB_DATA", str(data))  # the kernel inherits the environment
    monkeypatch.delenv("CONVLAB_RUNS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(NOTEBOOKS / name, tmp_path / name)
    nb = nbformat.read(tmp_path / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb


def outputs(nb: Any) -> list[list[Any]]:
    return [c.outputs for c in nb.cells if c.cell_type == "code"]


def cell_with(nb: Any, text: str) -> list[Any]:
    """The outputs of the first code cell whose source contains ``text``."""
    for c in nb.cells:
        if c.cell_type == "code" and text in c.source:
            return c.outputs
    raise AssertionError(f"no cell with {text!r}")


def check_clean(nb: Any) -> None:
    """No error and no stderr text (warnings, tracebacks) anywhere."""
    for outs in outputs(nb):
        for o in outs:
            assert o.output_type != "error", f"{o.ename}: {o.evalue}"
            assert not (o.output_type == "stream" and o.name == "stderr"), o.text


def check_training_cell(outs: list[Any], epochs: int) -> None:
    """A training cell: one display updated in place (the live progress, ending with the
    epoch table and the closing line) and the run card; a handful of items in all."""
    assert len(outs) <= 3, [o.output_type for o in outs]
    live = [o for o in outs if o.output_type == "display_data"]
    assert len(live) == 1
    page = live[0].data["text/html"]
    assert "convlab-progress" in page and "completed: test top1" in page
    assert page.count("<tr>") == epochs + 1  # header + one row per epoch
    card = [o for o in outs if o.output_type == "execute_result"][0].data
    assert "convlab-run" in card["text/html"] and "<svg" in card["text/html"]
    assert card["text/plain"].startswith("Run('mnist-quick/")


def test_quickstart(tmp_path: Path, real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("quickstart.ipynb", tmp_path, real_data, monkeypatch)
    check_clean(nb)
    check_training_cell(cell_with(nb, "convlab.run("), epochs=2)
    frame = cell_with(nb, "run.to_pandas()")[0].data
    assert "<table" in frame["text/html"] and "split" in frame["text/plain"]
    figure = cell_with(nb, "run.plot()")[0].data
    assert "image/png" in figure, "the Figure shows as an image"
    table = cell_with(nb, "render_markdown(summarize")[0].data["text/markdown"]
    assert "Conv2d" in table and "parameters" in table
    probe = cell_with(nb, "equivariance_experiment")[0].data["text/plain"]
    assert "back by" in probe
    assert len(list((tmp_path / "runs" / "mnist-quick").iterdir())) == 1


def test_own_model(tmp_path: Path, real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("own_model.ipynb", tmp_path, real_data, monkeypatch)
    for outs in outputs(nb):  # the object-model run prints a note, not an error
        assert all(o.output_type != "error" for o in outs)
    obj = cell_with(nb, "model=TinyNet(width=8)")
    check_training_cell(obj, epochs=2)
    assert "__main__:TinyNet" in obj[0].data["text/plain"]
    check_training_cell(cell_with(nb, "model.name=nets.py:TinyNet"), epochs=2)
    compared = cell_with(nb, "convlab.compare([run, wide])")[0].data["text/plain"]
    assert "model.name" in compared
    n_params = int(cell_with(nb, "load_model()")[0].data["text/plain"])
    assert n_params == 16 * 9 + 16 + 32 * 16 * 9 + 32 + 32 * 7 * 7 * 10 + 10
    for card in (cell_with(nb, "model=TinyNet")[-1], cell_with(nb, "nets.py:TinyNet")[-1]):
        assert float(card.data["text/plain"].rsplit(" ", 1)[1].rstrip("%)")) > 50, \
            "the notebook's recipe learns"


def test_sweep(tmp_path: Path, real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("sweep.ipynb", tmp_path, real_data, monkeypatch)
    check_clean(nb)
    sweep = cell_with(nb, "convlab.sweep(")
    assert [o.output_type for o in sweep] == ["display_data", "execute_result"], \
        "the sweep's progress is one display"
    assert sweep[1].data["text/plain"] == "{'completed': 2}"
    table = cell_with(nb, "convlab.compare(result)")[0].data["text/plain"]
    assert "low" in table and "high" in table and "0.05" in table
    page = cell_with(nb, "convlab.report(result)")[0].data["text/html"]
    assert page.startswith("<iframe srcdoc=")
    assert (tmp_path / "runs" / "lr-sweep" / "report" / "report.html").exists()
    exported = cell_with(nb, '"--to", "mlflow"')[0].text
    assert "mlflow: 2 sent" in exported
    assert (tmp_path / "runs" / "lr-sweep" / "runs" / "mlflow.db").exists()
    events = list((tmp_path / "runs" / "lr-sweep").rglob("events.out.tfevents.*"))
    assert len(events) == 2, "tracking=[tensorboard]: one event file per trial"


def test_notebooks_are_stored_without_outputs() -> None:
    """Outputs are made by running; a stored output would go stale (and bloat diffs)."""
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["own_model.ipynb", "quickstart.ipynb", "sweep.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code"), name
    assert os.access(NOTEBOOKS, os.R_OK)


# ------------------------------------------------------------------ the pieces, unit-tested


def tiny_run(tmp_path: Path, **sections: Any) -> Any:
    from conftest import tiny_config
    from convlab.train.runner import run_experiment

    return run_experiment(tiny_config(**sections), runs_dir=tmp_path / "runs", quiet=True)


def test_run_repr_html_pandas_plot(tmp_path: Path) -> None:
    run = tiny_run(tmp_path)
    text = repr(run)
    assert text.startswith(f"Run('tiny/{run.path.name}', completed, 2/2 epochs, test.top1 ")
    page = run._repr_html_()
    assert "completed" in page and "test.top1" in page and "parameters" in page
    assert page.count("<polyline") == 4  # loss and top-1, train and test
    frame = run.to_pandas()
    assert list(frame.columns) == ["epoch", "split", "loss", "top1", "top5", "lr", "time_s"]
    assert len(frame) == 4 and frame["top5"].isna().all()  # 4 classes: no top-5
    assert frame.loc[frame.split == "test", "top1"].tolist() == run.metric("test", "top1")
    fig = run.plot()
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_escapes_what_the_run_says(tmp_path: Path) -> None:
    from convlab.runs.display import run_html

    page = run_html("<script>x</script>", {"status": "failed", "message": "<b>boom</b>"}, [])
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;boom" in page


def test_missing_pandas_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from convlab.runs.display import ExtraMissing

    run = tiny_run(tmp_path, train={"epochs": 1, "batch_size": 64, "threads": 1})
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    with pytest.raises(ExtraMissing, match=r"^Run.to_pandas\(\) needs pandas: pip install "
                                           r"'convlab\[notebook\]'$"):
        run.to_pandas()


class FakeHandle:
    def __init__(self, shown: list[Any]) -> None:
        self.shown = shown

    def update(self, view: Any) -> None:
        self.shown.append(view)


def test_notebook_reporter_is_one_display_never_a_flood() -> None:
    """A 3-epoch run of 400 steps each, 10 ms a step: the display is created once and
    replaced about twice a second (12 s of training: ~24 updates, plus the forced last
    epoch and closing line), not 1,200 times."""
    from convlab.train.notebook import NotebookReporter

    now = [0.0]
    shown: list[Any] = []
    displays: list[Any] = []

    def display(view: Any, display_id: bool) -> FakeHandle:
        displays.append(view)
        return FakeHandle(shown)

    rep = NotebookReporter(clock=lambda: now[0], display=display)
    rep.start("tiny: cnn")
    splits = {"train": {"loss": 0.5, "top1": 0.8}, "test": {"loss": 0.4, "top1": 0.85}}
    for epoch in (1, 2, 3):
        rep.epoch_start(epoch, 3, 400)
        for step in range(1, 401):
            now[0] += 0.01
            rep.tick(step)
            if step % 50 == 0:
                rep.batch(step, {"loss": 0.5, "top1": 0.8}, 10.0)
        rep.eval_start("test", 1000)
        rep.epoch_end(epoch, 3, splits, 0.1, 4.0)
    rep.message("completed: test top1 85.00% after 3 epochs in 12.0s")
    rep.close()
    assert len(displays) == 1
    assert 20 <= len(shown) <= 30, len(shown)
    last = shown[-1]
    page = last._repr_html_()
    assert page.count("<tr>") == 4 and "completed: test top1 85.00%" in page
    assert "3/3 epochs" in repr(last)
    mid = [v for v in shown if "step 200/400" in repr(v)]
    assert mid and "ETA" in repr(mid[0]) and "(run " in repr(mid[0])


def test_reporter_choice_in_and_out_of_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    from convlab.train import notebook, progress

    assert not notebook.in_notebook()  # pytest is no kernel
    assert type(progress.make_reporter(None)) is progress.Reporter  # silent by default
    assert type(progress.make_reporter(True)) is progress.Reporter
    monkeypatch.setattr(notebook, "in_notebook", lambda: True)
    assert isinstance(progress.make_reporter(None), notebook.NotebookReporter)
    assert isinstance(progress.make_reporter(False), notebook.NotebookReporter)
    assert type(progress.make_reporter(True)) is progress.Reporter  # quiet when asked


def test_compare_report_sweep_from_python(tmp_path: Path) -> None:
    import convlab

    a = tiny_run(tmp_path)
    b = tiny_run(tmp_path, optim={"name": "adam", "lr": 0.02})
    table = convlab.compare([a, b])  # rows in path order: both may start in one second
    assert sorted(table.index) == sorted([a.path.name, b.path.name])
    for r, lr in ((a, 0.01), (b, 0.02)):
        assert table.loc[r.path.name, "optim.lr"] == lr
        assert table.loc[r.path.name, "final.test.top1"] == r.summary["final"]["test.top1"]
    import convlab.report.data  # noqa: F401 - the subpackage is loaded: still callable

    page = convlab.report(tmp_path / "runs", out=tmp_path / "rep")
    assert page.html.exists() and page.markdown.exists()
    assert page._repr_html_().startswith('<iframe srcdoc="&lt;!DOCTYPE html&gt;')
    result = convlab.sweep({"name": "s", "base": a.config.to_dict(),
                            "grid": {"optim.lr": [0.01, 0.03]}},
                           runs_dir=tmp_path / "sweeps", quiet=True)
    assert result.done and result.counts == {"completed": 2}
    assert len(convlab.compare(result)) == 2
    assert callable(convlab.sweep) and callable(convlab.report)


def test_trackers_in_a_notebook_print_nothing(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """All three trackers in one notebook training (synthetic data): still the one live
    display and the run card; no tracker banner, warning or log line in the output."""
    for extra in ("tensorboard", "mlflow", "wandb"):
        pytest.importorskip(extra, reason=f"the {extra} extra is not installed")
    for var in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'import convlab\n'
        'run = convlab.run("synthetic-smoke", ["train.threads=1",\n'
        '                  "tracking=[tensorboard, mlflow, wandb]"], runs_dir="runs")\nrun')],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}})
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outs = nb.cells[0].outputs
    assert [o.output_type for o in outs] == ["display_data", "execute_result"], outs
    run_dir = next((tmp_path / "runs" / "synthetic-smoke").iterdir())
    assert list((run_dir / "tensorboard").glob("events.*"))
    assert (tmp_path / "runs" / "mlflow.db").exists()
    assert list((run_dir / "wandb").glob("offline-run-*"))
