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
    assert "shifted back by" in probe
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
